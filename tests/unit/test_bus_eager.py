"""`run_eagerly`: a coroutine that never waits runs to its end at once, with no task; one
that waits is finished by a task, resumed with what it waited on."""

from __future__ import annotations

import asyncio

import pytest

from llmbus.bus import run_eagerly


async def test_a_coroutine_that_does_not_wait_runs_at_once_without_a_task() -> None:
    done: list[str] = []

    async def publish() -> None:
        done.append("written")

    assert run_eagerly(publish()) is None
    assert done == ["written"]


async def test_a_coroutine_that_waits_is_finished_by_a_task_with_the_result_it_waited_for() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    seen: list[str] = []

    async def step() -> None:
        seen.append("before")
        seen.append(await future)
        await asyncio.sleep(0)  # a bare yield, as well
        seen.append("after")

    task = run_eagerly(step())
    assert task is not None
    assert seen == ["before"]
    future.set_result("answer")
    await task
    assert seen == ["before", "answer", "after"]


async def test_an_error_before_the_first_wait_is_raised_to_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        run_eagerly(fails())


async def test_an_error_after_a_wait_is_the_tasks_and_a_failed_future_raises_inside() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    caught: list[BaseException] = []

    async def waits() -> None:
        try:
            await future
        except KeyError as exc:
            caught.append(exc)
            raise ValueError("after") from exc

    task = run_eagerly(waits())
    assert task is not None
    future.set_exception(KeyError("gone"))
    with pytest.raises(ValueError, match="after"):
        await task
    assert len(caught) == 1


async def test_cancelling_the_task_closes_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    closed: list[bool] = []

    async def waits() -> None:
        try:
            await future
        finally:
            closed.append(True)

    task = run_eagerly(waits())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == [True]
