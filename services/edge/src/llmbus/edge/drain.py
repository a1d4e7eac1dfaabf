"""How an edge stops: the answers in flight finish, or end with an error the client reads.

On SIGTERM (or SIGINT) uvicorn stops accepting connections and waits for the requests in
flight, up to its graceful-shutdown timeout, then cancels them: a stream cut that way
just stops, which a client cannot tell from a network fault. The edge therefore watches
the same signals: `drain_seconds` after the first one, every answer still running gets a
`gateway_stopping` error (an error event in a stream, a 503 for an answer not begun) and
its upstream call is cancelled, before uvicorn's own timeout (set a little longer)
would cut it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

from llmbus.bus import Delivery, Inbox

__all__ = ["STOPPING_HEADER", "EdgeDrain", "is_stopping"]

log = logging.getLogger(__name__)

STOPPING_HEADER: Final = "Llmbus-Edge-Stopping"
_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True, slots=True)
class _Stopping:
    """The frame an open stream gets when the edge stops: no data, one header (a real
    frame always has data, so telling them apart costs the hot path nothing)."""

    subject: str = ""
    reply: str = ""
    data: bytes = b""
    headers: Mapping[str, str] | None = None


STOPPING: Final = _Stopping(headers={STOPPING_HEADER: "1"})


def is_stopping(frame: Delivery) -> bool:
    headers = frame.headers
    return headers is not None and STOPPING_HEADER in headers


class EdgeDrain:
    """Chains itself before the signal handlers installed when it is created (uvicorn's,
    inside its server): the first signal starts the countdown, and the earlier handler
    runs as before."""

    def __init__(self, inbox: Inbox, drain_seconds: float) -> None:
        self.inbox = inbox
        self.drain_seconds = drain_seconds
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in _SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread (an in-process test server)
                return

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._timer is None:
            self._loop.call_soon_threadsafe(self.begin)
        previous = self._previous.get(sig)
        if callable(previous):
            handler: Callable[[int, FrameType | None], Any] = previous
            handler(sig, frame)
        elif previous == signal.SIG_DFL and sig == signal.SIGINT:
            raise KeyboardInterrupt

    def begin(self) -> None:
        """Start the countdown (once): the answers in flight have `drain_seconds`."""
        if self._timer is not None:
            return
        log.info("edge stopping: %d answers in flight get %gs to finish", len(self.inbox), self.drain_seconds)
        self._timer = self._loop.call_later(self.drain_seconds, self._interrupt)

    def _interrupt(self) -> None:
        left = self.inbox.interrupt(STOPPING)
        if left:
            log.warning("edge stopping: %d answers still running end with an error", left)
