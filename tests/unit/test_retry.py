"""The one retry policy of control-plane calls (`llmbus.bus.retry_within`), with stamina's
real backoff (short waits): retried errors, errors passed at once, and a budget that bounds
the attempts, the waits and an attempt still running."""

from __future__ import annotations

import asyncio

import pytest

from llmbus.bus import BUS_RETRYABLE, NoResponders, RemoteError, retry_within


class Flaky:
    """Fails with `error` `failures` times, then answers; remembers what each attempt got."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.budgets: list[float | None] = []

    async def __call__(self, remaining: float | None) -> str:
        self.budgets.append(remaining)
        if len(self.budgets) <= self.failures:
            raise self.error
        return "answer"


async def test_a_retryable_error_is_tried_again_until_the_call_answers() -> None:
    call = Flaky(3, NoResponders("auth.v1.tokens.get"))
    assert await retry_within(5.0, call, on=BUS_RETRYABLE, wait_initial=0.01, wait_max=0.02) == "answer"
    assert len(call.budgets) == 4
    budgets = [b for b in call.budgets if b is not None]
    assert len(budgets) == 4
    assert budgets == sorted(budgets, reverse=True), "each attempt gets what is left"
    assert all(0 < b <= 5.0 for b in budgets)


async def test_an_answer_that_is_an_error_is_not_retried() -> None:
    call = Flaky(5, RemoteError(404, "credential_not_found", "no such credential"))
    with pytest.raises(RemoteError):
        await retry_within(5.0, call, on=BUS_RETRYABLE, wait_initial=0.01)
    assert len(call.budgets) == 1


async def test_out_of_budget_the_last_error_passes() -> None:
    call = Flaky(10_000, NoResponders("auth.v1.tokens.get"))
    with pytest.raises(NoResponders):
        await retry_within(0.3, call, on=BUS_RETRYABLE, wait_initial=0.01, wait_max=0.05)
    assert 2 <= len(call.budgets) < 10_000


async def test_an_attempt_still_running_when_the_budget_ends_is_cancelled() -> None:
    attempts: list[float | None] = []
    cancelled = asyncio.Event()

    async def first_fails_then_hangs(remaining: float | None) -> str:
        attempts.append(remaining)
        if len(attempts) == 1:
            raise NoResponders("control.v1.registry")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    with pytest.raises(NoResponders):
        await retry_within(0.3, first_fails_then_hangs, on=BUS_RETRYABLE, wait_initial=0.01)
    assert cancelled.is_set()
    assert len(attempts) == 2


async def test_without_a_budget_attempts_go_on_and_get_no_deadline() -> None:
    call = Flaky(5, ConnectionRefusedError())
    assert await retry_within(None, call, on=OSError, wait_initial=0.001, wait_max=0.002) == "answer"
    assert call.budgets == [None] * 6
