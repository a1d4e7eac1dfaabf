"""One retry policy for control-plane calls: waiting for Redis or NATS at start, a
worker asking auth for a token while auth restarts, a router fetching auth's state.

Every such call goes through `retry_within`: `stamina`'s exponential backoff with jitter
(from `wait_initial`, doubling up to `wait_max`), for the errors the caller names, and
never longer than the caller's budget: the budget bounds the attempts *and* the backoff,
and one attempt that is still running when it runs out is cancelled. Out of time, the
caller sees the last error an attempt raised (what went wrong, not "timeout").

Upstream calls are not retried here: failover to the next credential or provider is the
router's and the worker's own logic.

Retries count in Prometheus (`stamina_retries_total`, stamina's own hook); the log gets
one line from here when a call first has to wait (`what` names it), not one per attempt.

In tests, `stamina.set_testing(True)` turns the backoff off (one attempt, no waits) for
code that must not wait; tests of the retry behaviour itself leave it on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import stamina
import stamina.instrumentation

from llmbus.bus.errors import BusTimeout, BusUnavailable, NoResponders

__all__ = ["BUS_RETRYABLE", "retry_within"]

T = TypeVar("T")

log = logging.getLogger(__name__)

# stamina's logging hook writes one bare "stamina.retry_scheduled" warning per attempt:
# keep its Prometheus counter only; `retry_within` logs what is retried itself.
stamina.instrumentation.set_on_retry_hooks([stamina.instrumentation.PrometheusOnRetryHook])

BUS_RETRYABLE: tuple[type[Exception], ...] = (NoResponders, BusTimeout, BusUnavailable)
"""Bus failures worth another try on a control-plane request: nobody listening yet (a
service starting or restarting), no answer in time, no connection for the moment. An
error reply (`RemoteError`) is an answer, never retried."""

_MIN_ATTEMPT = 0.01
"""An attempt gets at least this long, so a call right at the end of the budget still
tries rather than failing without trying."""


async def retry_within(
    budget: float | None,
    call: Callable[[float | None], Awaitable[T]],
    *,
    on: type[Exception] | tuple[type[Exception], ...],
    wait_initial: float = 0.05,
    wait_max: float = 1.0,
    what: str = "a control-plane call",
) -> T:
    """`await call(remaining)` until it returns, retrying the errors in `on` with backoff.

    `remaining` is what is left of `budget` in seconds (for the attempt's own timeout), or
    None without a budget (retried until it succeeds or the caller is cancelled). Errors
    not in `on` pass at once. When the budget runs out, the last error of `on` an attempt
    raised passes (`TimeoutError` if no attempt ended before)."""
    loop = asyncio.get_running_loop()
    deadline = None if budget is None else loop.time() + budget
    last: Exception | None = None

    async def attempts() -> T:
        nonlocal last
        async for attempt in stamina.retry_context(
            on=on,
            attempts=None,
            timeout=budget,
            wait_initial=wait_initial,
            wait_max=wait_max,
            wait_jitter=wait_initial,
        ):
            with attempt:
                remaining = None if deadline is None else max(deadline - loop.time(), _MIN_ATTEMPT)
                try:
                    return await call(remaining)
                except on as exc:
                    if last is None:
                        log.info("%s failed (%s); trying again", what, type(exc).__name__)
                    last = exc
                    raise
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    if deadline is None:
        return await attempts()
    try:
        async with asyncio.timeout_at(deadline) as scope:
            return await attempts()
    except TimeoutError:
        if scope.expired() and last is not None:
            raise last from None
        raise
