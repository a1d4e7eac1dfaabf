"""The reply stream of one request, as the worker sends it.

Every frame gets the next sequence number and is published from the worker's one
connection; sequence numbers are assigned and frames queued with no await in between,
so frames stay in order even when the heartbeat task sends one.

The frames made in one pass of the event loop travel as one message (`frames_message`):
a whole (not streamed) answer usually arrives at once, and its `Started`, text, usage
and end then cost the bus, nats-server and the edge one message instead of four; a
stream's chunks that came in one read of the upstream, one message instead of one each.
Frames still held at the end of a pass go then (for a whole answer whose body is not all
here yet, so the edge learns at once that the upstream has started)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sized

import msgspec

from llmbus.bus import Bus, BusUnavailable, Pace, run_eagerly
from llmbus.proto import EVENTS, AnyEvent, Delta, Done, Error, Heartbeat, Started, frames_message

__all__ = ["HELD_BYTES", "Emitter"]

log = logging.getLogger(__name__)

HELD_BYTES = 64 << 10
"""Frames held past this many bytes go without waiting for the end of the pass."""


class Emitter:
    __slots__ = (
        "_bus",
        "_delta_sent",
        "_guard",
        "_held",
        "_held_bytes",
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
        """Frames of the current loop pass, not sent yet."""
        self._held_bytes = 0
        self.beat: asyncio.TimerHandle | None = None
        """The timer of the next heartbeat (the worker's)."""

    async def emit(self, event: AnyEvent) -> None:
        """Stamp `event` with the next sequence number and send it, in order with every
        frame before it. Frames made in one pass of the event loop are held and go as one
        message (the module's docstring) at the end of the pass, except:

        - a stream's first delta, which its client's first token waits on, goes at once
          (`"now"`), not after the rest of the upstream's burst has been parsed, taking
          `Started` along when the upstream sent both together;
        - `Started` of a stream goes at once while the worker has other requests in
          flight, whose work would make the loop's pass long;
        - the end of an answer (`Done`) goes at once while the request is the worker's
          only one: nothing else would share the write, and the request's own teardown
          (the upstream connection back to its pool, limits, statistics) would otherwise
          run first;
        - an error or a heartbeat goes with the pass's other publishes, without waiting.

        A stream's frames after its first delta are written up to the coalescing window
        later (`"window"`), to share a bus write with other streams' frames."""
        held = self._held
        frame = EVENTS.encode(msgspec.structs.replace(event, seq=self.seq))
        held.append(frame)
        self._held_bytes += len(frame)
        self.seq += 1
        kind = type(event)
        if kind is Delta and self._streamed and not self._delta_sent:
            self._delta_sent = True
            await self._send_held("now")
        elif kind is Done:
            await self._send_held("now" if self._alone() else "pass")
        elif kind is Error or kind is Heartbeat:
            await self._send_held("pass")
        elif kind is Started and self._streamed and not self._alone():
            await self._send_held("now")
        elif len(held) == 1:
            asyncio.get_running_loop().call_soon(self._release)
        elif self._held_bytes >= HELD_BYTES:
            # A long pass (an upstream's backlog parsed in one go): a message stays well
            # under the bus's payload limit.
            await self._send_held(self._later())

    def _alone(self) -> bool:
        """Whether this is the worker's only request in flight."""
        return len(self._in_flight) <= 1

    def _later(self) -> Pace:
        """The pace of frames that nothing waits on: a stream's middle frames may wait for
        the coalescing window, a whole answer's go at the end of the pass."""
        return "window" if self._delta_sent else "pass"

    async def _send_held(self, pace: Pace) -> None:
        held, self._held = self._held, []
        if not held:
            return
        self._held_bytes = 0
        self.last_sent = time.monotonic()
        # reply= our guard inbox: if the edge is gone, NATS tells us with a 503 there.
        await self._bus.publish_raw(self.reply, frames_message(held), reply=self._guard, pace=pace)

    def _release(self) -> None:
        """The end of a loop pass in which frames were held: what is still held goes now
        (run eagerly: a task only if the publish has to wait for the socket)."""
        if self._held and not self.closed:
            run_eagerly(self._send_released())

    async def _send_released(self) -> None:
        try:
            await self._send_held(self._later())
        except BusUnavailable:
            # As a heartbeat would be: the next frame, or the edge's own timeout, tells.
            log.debug("held frames not sent: the bus is unavailable")

    async def heartbeat(self) -> None:
        if not self.closed:
            await self.emit(Heartbeat(seq=0))

    def close(self) -> None:
        """No more frames from this worker (the stream ended or moved to another)."""
        self.closed = True
