"""The failover plan of one request: its model's targets in the strategy's order, then
its fallback models' targets, within the retry budget (`routing.max_attempts`).

The budget counts every upstream call, the first included. When a model has fallbacks,
the last place of the budget (a budget of 2 or more) is kept for the first fallback
target, so that a pool larger than the budget still ends at its fallback rather than
never reaching it. A
target already in the plan (a fallback served by the same credential and upstream
model) is not repeated.
"""

from __future__ import annotations

from llmbus.proto import Needs, Target
from llmbus.routing.catalog import Catalog
from llmbus.routing.errors import RoutingError
from llmbus.routing.selection import Selector
from llmbus.routing.state import LiveState

__all__ = ["plan"]


def plan(
    catalog: Catalog,
    selector: Selector,
    model: str,
    needs: Needs,
    state: LiveState,
    max_attempts: int,
    now: float | None = None,
) -> list[Target]:
    """At most `max_attempts` targets, never empty; raises the model's own RoutingError
    when neither it nor any fallback can take the request now."""
    primary: list[Target] = []
    failure: RoutingError | None = None
    try:
        primary = selector.order(model, catalog.resolve(model, needs, state, now))
    except RoutingError as exc:
        failure = exc
    backup: list[Target] = []
    for name in catalog.fallbacks(model):
        try:
            backup += selector.order(name, catalog.resolve(name, needs, state, now))
        except RoutingError:
            continue  # that fallback cannot serve either: the next one may
    seen = {_key(t) for t in primary}
    unique: list[Target] = []
    for target in backup:
        if _key(target) not in seen:
            seen.add(_key(target))
            unique.append(target)
    backup = unique
    if not primary and not backup:
        assert failure is not None
        raise failure
    budget = max(1, max_attempts)
    head = primary[: max(1, budget - 1)] if backup and len(primary) >= budget else primary[:budget]
    return head + backup[: budget - len(head)]


def _key(target: Target) -> tuple[str, str, str]:
    return (target.provider, target.credential, target.upstream_model)
