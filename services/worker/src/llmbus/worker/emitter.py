"""The reply stream of one request, as the worker sends it.

Every frame gets the next sequence number and is published from the worker's one
connection; sequence numbers are assigned and frames queued with no await in between,
so frames stay in order even when the heartbeat task sends one."""

from __future__ import annotations

import asyncio
import time

import msgspec

from llmbus.bus import Bus, Pace
from llmbus.proto import EVENTS, AnyEvent, Delta, Heartbeat, Started

__all__ = ["Emitter"]


class Emitter:
    __slots__ = (
        "_bus",
        "_delta_sent",
        "_guard",
        "_streamed",
        "beat",
        "closed",
        "last_sent",
        "reply",
        "seq",
        "started",
    )

    def __init__(self, bus: Bus, reply: str, seq: int, guard: str, *, streamed: bool = False) -> None:
        self._bus = bus
        self._streamed = streamed
        self.reply = reply
        self.seq = seq
        self._guard = guard
        self.last_sent = 0.0
        self.started = False
        self.closed = False
        self._delta_sent = False
        self.beat: asyncio.TimerHandle | None = None
        """The timer of the next heartbeat (the worker's)."""

    async def emit(self, event: AnyEvent) -> None:
        """Stamp `event` with the next sequence number and send it (`Pace`). A delta after
        the first may wait a moment to share a bus write (`"window"`). A streamed
        request's `Started` and first delta, which its client's first token waits on, are
        written at once (`"now"`); every other event at the end of the loop's pass. Each
        takes whatever waits before it along, in order."""
        frame = EVENTS.encode(msgspec.structs.replace(event, seq=self.seq))
        self.seq += 1
        self.last_sent = time.monotonic()
        pace: Pace = "pass"
        kind = type(event)
        if kind is Delta:
            if self._delta_sent:
                pace = "window"
            else:
                self._delta_sent = True
                if self._streamed:
                    pace = "now"
        elif kind is Started and self._streamed:
            pace = "now"
        # reply= our guard inbox: if the edge is gone, NATS tells us with a 503 there.
        await self._bus.publish_raw(self.reply, frame, reply=self._guard, pace=pace)

    async def heartbeat(self) -> None:
        if not self.closed:
            await self.emit(Heartbeat(seq=0))

    def close(self) -> None:
        """No more frames from this worker (the stream ended or moved to another)."""
        self.closed = True
