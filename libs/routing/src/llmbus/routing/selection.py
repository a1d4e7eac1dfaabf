"""Selection strategies: the order in which a plan's targets are tried."""

from __future__ import annotations

from itertools import count

from llmbus.proto import Target

__all__ = ["RoundRobin"]


class RoundRobin:
    """Rotates the start of each priority tier on every request for a model, so the
    credentials and providers of a tier share the load; lower tiers stay as failover."""

    def __init__(self) -> None:
        self._counters: dict[str, count[int]] = {}

    def order(self, model: str, tiers: list[list[Target]]) -> list[Target]:
        if len(tiers) == 1 and len(tiers[0]) == 1:
            return tiers[0]
        counter = self._counters.get(model)
        if counter is None:
            counter = self._counters[model] = count()
        turn = next(counter)
        plan: list[Target] = []
        for tier in tiers:
            start = turn % len(tier)
            plan += tier[start:] + tier[:start]
        return plan
