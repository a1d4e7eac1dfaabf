"""Reply-stream inboxes: one wildcard subscription per process, frames dispatched to the
per-request queue by the inbox's last token (far cheaper than a subscription per request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from llmbus.bus.protocol import Bus, Delivery

__all__ = ["Inbox", "StreamInbox"]

StreamInbox = asyncio.Queue[Delivery]


class Inbox:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.prefix = bus.new_inbox()
        self._streams: dict[str, StreamInbox] = {}

    async def start(self) -> None:
        await self._bus.subscribe_raw(self.prefix + ".*", self._dispatch)

    async def _dispatch(self, msg: Delivery) -> None:
        queue = self._streams.get(msg.subject[len(self.prefix) + 1 :])
        if queue is not None:
            queue.put_nowait(msg)

    @contextmanager
    def open(self, token: str) -> Iterator[tuple[str, StreamInbox]]:
        """A reply subject for one request and the queue its frames arrive on."""
        queue: StreamInbox = asyncio.Queue()
        self._streams[token] = queue
        try:
            yield f"{self.prefix}.{token}", queue
        finally:
            self._streams.pop(token, None)

    def __len__(self) -> int:
        return len(self._streams)
