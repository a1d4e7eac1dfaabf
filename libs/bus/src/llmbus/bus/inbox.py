"""Reply-stream inboxes: one wildcard subscription per process, frames dispatched to the
per-request stream by the inbox's last token (far cheaper than a subscription per request).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from llmbus.bus.protocol import Bus, Delivery

__all__ = ["Inbox", "StreamInbox"]


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class StreamInbox:
    """The frames of one reply stream, in arrival order: a queue for one reader whose
    timed wait costs a timer, not a task (`asyncio.wait_for` wraps every wait in a task:
    about 4 µs a frame)."""

    __slots__ = ("_frames", "_waiter")

    def __init__(self) -> None:
        self._frames: deque[Delivery] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, frame: Delivery) -> None:
        self._frames.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._frames

    def qsize(self) -> int:
        return len(self._frames)

    def get_nowait(self) -> Delivery:
        """The next frame; raises asyncio.QueueEmpty when none has arrived."""
        if not self._frames:
            raise asyncio.QueueEmpty
        return self._frames.popleft()

    async def get(self) -> Delivery:
        """The next frame, waiting as long as it takes."""
        while not self._frames:
            await self._wait(None)
        return self._frames.popleft()

    async def get_within(self, timeout: float) -> Delivery:
        """The next frame; raises TimeoutError when none arrives within `timeout` seconds."""
        if not self._frames:
            await self._wait(max(timeout, 0.0))
        return self._frames.popleft()

    async def _wait(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None


class Inbox:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.prefix = bus.new_inbox()
        self._start = len(self.prefix) + 1
        self._streams: dict[str, StreamInbox] = {}

    async def start(self) -> None:
        await self._bus.subscribe_direct(self.prefix + ".*", self._dispatch)

    def _dispatch(self, msg: Delivery) -> None:
        stream = self._streams.get(msg.subject[self._start :])
        if stream is not None:
            stream.put_nowait(msg)

    @contextmanager
    def open(self, token: str) -> Iterator[tuple[str, StreamInbox]]:
        """A reply subject for one request and the stream its frames arrive on."""
        stream = StreamInbox()
        self._streams[token] = stream
        try:
            yield f"{self.prefix}.{token}", stream
        finally:
            self._streams.pop(token, None)

    def interrupt(self, frame: Delivery) -> int:
        """Hand `frame` to every open stream (a service that stops tells its readers
        so); returns how many there were."""
        streams = list(self._streams.values())
        for stream in streams:
            stream.put_nowait(frame)
        return len(streams)

    def __len__(self) -> int:
        return len(self._streams)
