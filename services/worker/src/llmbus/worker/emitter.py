"""The reply stream of one request, as the worker sends it.

Every frame gets the next sequence number and is published from the worker's one
connection; sequence numbers are assigned and frames queued with no await in between,
so frames stay in order even when the heartbeat task sends one.

A whole (not streamed) answer's frames made in one pass of the event loop travel as one
message (`frames_message`): the upstream's answer usually arrives all at once, and its
`Started`, text, usage and end then cost the bus, nats-server and the edge one message
instead of four. Frames still held at the end of a pass (the answer's body is not all
here yet) go then, so the edge learns at once that the upstream has started."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sized

import msgspec

from llmbus.bus import Bus, BusUnavailable, Pace
from llmbus.proto import EVENTS, AnyEvent, Delta, Done, Error, Heartbeat, Started, frames_message

__all__ = ["Emitter"]

log = logging.getLogger(__name__)

_sending: set[asyncio.Task[None]] = set()


class Emitter:
    __slots__ = (
        "_bus",
        "_delta_sent",
        "_guard",
        "_held",
        "_in_flight",
        "_streamed",
        "beat",
        "closed",
        "last_sent",
        "reply",
        "seq",
        "started",
    )

    def __init__(
        self, bus: Bus, reply: str, seq: int, guard: str, *, streamed: bool = False, in_flight: Sized = ()
    ) -> None:
        self._bus = bus
        self._streamed = streamed
        self._in_flight = in_flight
        """The worker's requests in flight, this one among them."""
        self.reply = reply
        self.seq = seq
        self._guard = guard
        self.last_sent = 0.0
        self.started = False
        self.closed = False
        self._delta_sent = False
        self._held: list[bytes] = []
        """A whole answer's frames of the current loop pass, not sent yet."""
        self.beat: asyncio.TimerHandle | None = None
        """The timer of the next heartbeat (the worker's)."""

    async def emit(self, event: AnyEvent) -> None:
        """Stamp `event` with the next sequence number and send it (`Pace`). A delta after
        the first may wait a moment to share a bus write (`"window"`). A stream's first
        delta, which its client's first token waits on, is written at once (`"now"`), not
        after the rest of the upstream's burst has been parsed, taking `Started` along when
        the upstream sent both together; `Started` itself goes at once while the worker
        has other requests in flight, whose work would make the loop's pass long.
        The end of an answer (`Done`) is written at once while the request is the
        worker's only one: nothing else would share the write, and the request's own
        teardown (the upstream connection back to its pool, limits, statistics) would
        otherwise run first. Every other event goes at the end of the pass. Each takes
        whatever waits before it along, in order. A whole answer's frames are held and
        sent as one message (the module's docstring)."""
        frame = EVENTS.encode(msgspec.structs.replace(event, seq=self.seq))
        self.seq += 1
        kind = type(event)
        if not self._streamed:
            await self._whole(frame, kind)
            return
        self.last_sent = time.monotonic()
        pace: Pace = "pass"
        if kind is Delta:
            if self._delta_sent:
                pace = "window"
            else:
                self._delta_sent = True
                pace = "now"
        elif kind is Started and not self._alone():
            pace = "now"
        elif kind is Done and self._alone():
            pace = "now"
        # reply= our guard inbox: if the edge is gone, NATS tells us with a 503 there.
        await self._bus.publish_raw(self.reply, frame, reply=self._guard, pace=pace)

    def _alone(self) -> bool:
        """Whether this is the worker's only request in flight."""
        return len(self._in_flight) <= 1

    async def _whole(self, frame: bytes, kind: type) -> None:
        """A whole answer's frame: held until its end, an error or a heartbeat sends
        everything held, or until the end of the loop's pass."""
        held = self._held
        held.append(frame)
        if kind is Done or kind is Error or kind is Heartbeat:
            await self._send_held("now" if kind is Done and self._alone() else "pass")
        elif len(held) == 1:
            asyncio.get_running_loop().call_soon(self._release)

    async def _send_held(self, pace: Pace) -> None:
        held, self._held = self._held, []
        if not held:
            return
        self.last_sent = time.monotonic()
        # reply= our guard inbox: if the edge is gone, NATS tells us with a 503 there.
        await self._bus.publish_raw(self.reply, frames_message(held), reply=self._guard, pace=pace)

    def _release(self) -> None:
        """The end of a loop pass in which frames were held: what is still held goes now,
        from a task of its own (the answer's end did not come in the same pass)."""
        if self._held and not self.closed:
            task = asyncio.get_running_loop().create_task(self._send_released())
            _sending.add(task)
            task.add_done_callback(_sending.discard)

    async def _send_released(self) -> None:
        try:
            await self._send_held("pass")
        except BusUnavailable:
            # As a heartbeat would be: the next frame, or the edge's own timeout, tells.
            log.debug("held frames not sent: the bus is unavailable")

    async def heartbeat(self) -> None:
        if not self.closed:
            await self.emit(Heartbeat(seq=0))

    def close(self) -> None:
        """No more frames from this worker (the stream ended or moved to another)."""
        self.closed = True
