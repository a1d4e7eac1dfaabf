"""Selection strategies: the order in which a plan's targets are tried."""

from __future__ import annotations

from itertools import count

from llmbus.proto import Target

__all__ = ["RoundRobin"]


class RoundRobin:
    """Rotates the plan's start on every request for a model, so credentials and
    providers share the load; the rest of the plan stays as failover."""

    def __init__(self) -> None:
        self._counters: dict[str, count[int]] = {}

    def order(self, model: str, plan: list[Target]) -> list[Target]:
        if len(plan) < 2:
            return plan
        counter = self._counters.get(model)
        if counter is None:
            counter = self._counters[model] = count()
        start = next(counter) % len(plan)
        return plan[start:] + plan[:start]
