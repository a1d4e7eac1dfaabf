"""A client key's RPM and TPM, admitted by auth before the request is routed, so that
every edge replica draws on one count; settled with the real usage when it ends.

The reservation is the prompt's estimate (`llmbus.api.tokens`) plus the completion the
request may ask for: its `max_tokens`, or `DEFAULT_COMPLETION` when it names none.
Keys without RPM or TPM never ask auth, and pay nothing.

When auth cannot answer, the request goes ahead (fail-open, as keys already in the
cache keep working while Redis is down): a key's limits share capacity fairly, and
refusing every request of every limited key would turn an auth outage into a gateway
outage. A counter and a log line (at most one per minute) say that limits are unchecked.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Final

from prometheus_client import Counter

from llmbus.api import RateLimited, estimate_tokens
from llmbus.bus import Bus, BusFailure
from llmbus.edge.keys import Caller
from llmbus.proto import (
    AUTH_QUOTA_RESERVE,
    AUTH_QUOTA_SETTLE,
    ChatRequest,
    QuotaReserve,
    QuotaScope,
    QuotaSettle,
    Usage,
)

__all__ = ["DEFAULT_COMPLETION", "Reservation", "estimate", "reserve", "settle"]

log = logging.getLogger(__name__)

UNCHECKED = Counter(
    "llmbus_edge_limits_unchecked_total", "Requests let through because auth could not check key limits"
)

DEFAULT_COMPLETION: Final = 1024
"""Completion tokens reserved for a request that names no `max_tokens`."""

_WARN_EVERY: Final = 60.0
_warned_at = -_WARN_EVERY


@dataclass(frozen=True, slots=True)
class Reservation:
    request_id: str
    scope: QuotaScope
    reserved: int


def estimate(chat: ChatRequest) -> int:
    """The tokens a request may use: its prompt's estimate and its completion's ceiling."""
    return estimate_tokens(chat) + (chat.max_tokens or DEFAULT_COMPLETION)


async def reserve(bus: Bus, caller: Caller, tokens: int, timeout: float = 1.0) -> Reservation | None:
    """Admit the request against its key's RPM and TPM; None when the key has neither
    (or auth could not check them). Raises RateLimited with the wait."""
    limits = caller.limits
    if not (limits.rpm or limits.tpm):
        return None
    scope = QuotaScope(kind="key", id=caller.client.id, rpm=limits.rpm, tpm=limits.tpm)
    request_id = uuid.uuid4().hex
    try:
        grant = await bus.request(
            AUTH_QUOTA_RESERVE,
            QuotaReserve(request_id=request_id, scopes=[scope], tokens=tokens),
            timeout=timeout,
        )
    except BusFailure as exc:
        _unchecked(exc)
        return None
    if not grant.admitted:
        kind = "tokens" if grant.reason == "tpm" else "requests"
        raise RateLimited(
            f"This API key's limit of {kind} per minute is reached; retry in "
            f"{max(1, round(grant.retry_after))}s.",
            retry_after=max(grant.retry_after, 0.001),
        )
    return Reservation(request_id, scope, tokens)


async def settle(bus: Bus, reservation: Reservation | None, usage: Usage | None, answered: bool) -> None:
    """Correct the reservation: the real usage when the upstream reported it, nothing
    used when the request never got an answer, the estimate otherwise."""
    if reservation is None or reservation.scope.tpm == 0:
        return
    if usage is not None:
        tokens = usage.prompt_tokens + usage.completion_tokens
    elif not answered:
        tokens = 0
    else:
        return
    settlement = QuotaSettle(
        request_id=reservation.request_id,
        scopes=[reservation.scope],
        reserved=reservation.reserved,
        tokens=tokens,
    )
    try:
        await bus.publish(AUTH_QUOTA_SETTLE, settlement, traced=False)
    except BusFailure:
        log.warning("cannot settle the quota of request %s", reservation.request_id)


def _unchecked(exc: Exception) -> None:
    global _warned_at
    UNCHECKED.inc()
    now = time.monotonic()
    if now - _warned_at >= _WARN_EVERY:
        _warned_at = now
        log.warning(
            "client key limits not checked, request let through: auth did not answer (%s)", type(exc).__name__
        )
