"""Coroutines run at once, as Python 3.12's eager tasks run them, on Python 3.11.

Most of what the hot path awaits (a publish, whose write is scheduled rather than waited
for; a parse of what the socket delivered) finishes without ever waiting. Run from a
loop callback, such a coroutine needs no task (a Task, a loop pass for its first step, a
done callback): it is stepped once, here, and only one that does wait is finished by a
task."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

__all__ = ["finish", "run_eagerly"]

_running: set[asyncio.Task[None]] = set()
"""Tasks finishing coroutines that waited (asyncio keeps only weak references)."""


def run_eagerly(
    coro: Coroutine[Any, Any, None], context: contextvars.Context | None = None
) -> asyncio.Task[None] | None:
    """Run `coro` up to its first wait; if it waits, a task finishes it (returned). An
    exception it raises before waiting is raised here; after, it is the task's.
    `context`: the context it runs in throughout, as a task's own (the caller's, when
    none is given)."""
    try:
        waiting = coro.send(None) if context is None else context.run(coro.send, None)
    except StopIteration:
        return None
    task = asyncio.get_running_loop().create_task(finish(coro, waiting), context=context)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Drive `coro` to its end from a wait it yielded (a Future, or a bare yield), as a
    task would: each time what it waits on is done, it is resumed; cancelling this
    cancels it."""
    while True:
        try:
            if isinstance(waiting, asyncio.Future):
                await asyncio.wait((waiting,))
            else:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            coro.close()
            raise
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
