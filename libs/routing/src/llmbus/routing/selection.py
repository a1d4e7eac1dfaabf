"""Selection strategies: the order in which a request's candidates are tried.

- `priority`: the highest priority tier first; inside a tier, round-robin.
- `round-robin`: every candidate in turn, priorities ignored.
- `fill-first`: always the same order (priority, then config order): the first
  candidate takes every request until it fails or cools down.
"""

from __future__ import annotations

from itertools import count

from llmbus.config import Strategy
from llmbus.proto import Target
from llmbus.routing.catalog import Candidates

__all__ = ["Selector"]


class Selector:
    def __init__(self, strategy: Strategy = "priority") -> None:
        self.strategy = strategy
        self._counters: dict[str, count[int]] = {}

    def _turn(self, model: str) -> int:
        counter = self._counters.get(model)
        if counter is None:
            counter = self._counters[model] = count()
        return next(counter)

    def order(self, model: str, candidates: Candidates) -> list[Target]:
        """The failover plan: the healthy candidates in the strategy's order, then the
        fallback ones (failed health check, no live worker) in config order."""
        return self._order(model, candidates.tiers) + candidates.fallback

    def _order(self, model: str, tiers: list[list[Target]]) -> list[Target]:
        if not tiers:
            return []
        if len(tiers) == 1 and len(tiers[0]) == 1:
            return list(tiers[0])
        if self.strategy == "fill-first":
            return [target for tier in tiers for target in tier]
        if self.strategy == "round-robin":
            flat = [target for tier in tiers for target in tier]
            start = self._turn(model) % len(flat)
            return flat[start:] + flat[:start]
        turn = self._turn(model)
        plan: list[Target] = []
        for tier in tiers:
            start = turn % len(tier)
            plan += tier[start:] + tier[:start]
        return plan
