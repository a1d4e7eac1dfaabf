"""The edge's HTTP/1.1 protocol: uvicorn's httptools protocol with limits on the
request head, which uvicorn's httptools protocol does not have (its h11 protocol's
`h11_max_incomplete_event_size` is the only head limit uvicorn offers, and h11 is pure
Python, several times slower on the hot path).

A head larger than `max_header_bytes`, or with more than `max_headers` fields, is
answered 431 and its connection closed before the rest is read: the parser is never fed
more than the limit, so four 64 MB headers cost the edge what one 64 KiB head does and
`/healthz` on other connections does not wait for them.

uvicorn takes the class by its import path (`http="llmbus.edge.server:HeadLimitedProtocol"`),
which reaches every process of a multi-process edge; `configure` sets the limits in
each process from its settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, cast

import httptools
from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from llmbus.edge.settings import EdgeSettings

__all__ = ["CONNECTION_KEY", "LINGER_SECONDS", "PROTOCOL", "Connection", "HeadLimitedProtocol"]

LINGER_SECONDS = 2.0
"""How long a connection closed before its request was read whole (a refused body or
head) keeps discarding what the client still sends, so that the client reads the
refusal instead of a reset (the lingering close of nginx and Apache)."""

PROTOCOL = "llmbus.edge.server:HeadLimitedProtocol"

HEADS_REFUSED = Counter(
    "llmbus_edge_heads_refused_total", "Request heads refused for their size, header count or time", ["limit"]
)


_DEFAULTS = EdgeSettings()


class _TooManyHeaders(Exception):
    pass


CONNECTION_KEY = "llmbus.connection"
"""The ASGI scope key of the request's `Connection` (set by `HeadLimitedProtocol`)."""


class Connection:
    """What a request's handler may do with its client's connection beyond ASGI:

    - learn that it is gone, by a callback from the protocol's `connection_lost`: the hot
      routes learn of a disconnect without a task per request waiting on ASGI `receive()`;
    - `flush()`: write what the response has sent so far now, rather than at the end of
      the event loop's pass (a stream's first event, which the client's first token waits
      on: behind a busy pass, it would wait for all of it)."""

    __slots__ = ("flush", "lost", "on_lost")

    def __init__(self, flush: Callable[[], None]) -> None:
        self.flush = flush
        self.lost = False
        self.on_lost: Callable[[], object] | None = None
        """Called once when the connection is lost, if set by then."""

    def fire(self) -> None:
        if self.lost:
            return
        self.lost = True
        if self.on_lost is not None:
            self.on_lost()


class _LingeringTransport:
    """The connection's transport as uvicorn sees it.

    Writes made in one pass of the event loop go out together at its end, in one
    syscall: uvicorn writes a response's head, its body and the end of a chunked body
    each on its own, which would be two or three sends (and as many wakeups of the
    client) for every answer.

    `close()` while the request is still arriving shuts the sending side (the answer goes
    out, then FIN) and discards what comes in until the client closes or
    `LINGER_SECONDS` pass. Closing a socket with unread bytes would send a reset, and the
    client would lose the answer."""

    def __init__(self, inner: asyncio.Transport, protocol: HeadLimitedProtocol) -> None:
        self._inner = inner
        self._protocol = protocol
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._out: list[bytes] = []
        self._loop = asyncio.get_running_loop()
        # The hot methods bound directly: no indirection.
        self.get_extra_info = inner.get_extra_info
        self.pause_reading = inner.pause_reading
        self.resume_reading = inner.resume_reading

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, data: bytes) -> None:
        out = self._out
        if not out:
            self._loop.call_soon(self.flush)
        out.append(data)

    def flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            self._inner.write(out[0] if len(out) == 1 else b"".join(out))

    def write_eof(self) -> None:
        self.flush()
        self._inner.write_eof()

    def is_closing(self) -> bool:
        return self._closing or self._inner.is_closing()

    def close(self) -> None:
        self.flush()
        if self._closing or self._inner.is_closing():
            return
        self._closing = True
        if self._protocol.request_complete or not self._inner.can_write_eof():
            self._inner.close()
            return
        self._protocol.lingering = True
        self._inner.write_eof()
        self._inner.resume_reading()
        self._timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, self._inner.close)

    def close_now(self) -> None:
        self.flush()
        self._inner.close()

    def lost(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class HeadLimitedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that feeds its parser at most `max_header_bytes` of a request
    head and refuses a head with more than `max_headers` fields (431)."""

    max_header_bytes: ClassVar[int] = _DEFAULTS.max_header_bytes
    max_headers: ClassVar[int] = _DEFAULTS.max_headers
    head_timeout: ClassVar[float] = _DEFAULTS.body_timeout
    """Seconds from a connection's first byte (or its opening) to the end of a request
    head: a head trickled byte by byte, or a connection that sends nothing, is answered
    408 and closed."""

    _head_timer: asyncio.TimerHandle | None = None
    _in_head = True
    _head_bytes = 0
    request_complete = True
    """Whether the current request has arrived whole (no request yet counts as whole)."""
    lingering = False
    _lingering: _LingeringTransport | None = None

    @classmethod
    def configure(cls, settings: EdgeSettings) -> None:
        cls.max_header_bytes = settings.max_header_bytes
        cls.max_headers = settings.max_headers
        cls.head_timeout = settings.body_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._lingering = _LingeringTransport(cast(asyncio.Transport, transport), self)
        super().connection_made(self._lingering)  # type: ignore[arg-type]
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lingering is not None:
            self._lingering.lost()
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)
        # As uvicorn tells only its current cycle (`receive()` answers http.disconnect).
        if self.cycle is not None and isinstance(watch := self.cycle.scope.get(CONNECTION_KEY), Connection):
            watch.fire()

    def _flush(self) -> None:
        if self._lingering is not None:
            self._lingering.flush()

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, "head_timeout", "request_timeout", b"The request head did not arrive in time.")

    def eof_received(self) -> None:
        if self.lingering and self._lingering is not None:
            self._lingering.close_now()  # the client is done sending

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.request_complete = False
        self._in_head = True
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def on_headers_complete(self) -> None:
        # Counted once the head is parsed (it is within max_header_bytes already), so no
        # request pays a call per header for the limit.
        if len(self.headers) > self.max_headers:
            raise _TooManyHeaders
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        # The request's task is created but has not run yet: it finds this in its scope.
        self.scope[CONNECTION_KEY] = Connection(self._flush)  # type: ignore[literal-required]

    def on_message_complete(self) -> None:
        self.request_complete = True
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        # The head's bytes are counted from the first byte of a connection and of each
        # request after a whole one (a pipelined head may start inside a chunk already
        # counted as body: it then gets up to one read more, still bounded).
        if self.lingering:
            return  # after a refusal: discarded until the connection closes
        self._unset_keepalive_if_required()
        while data:
            if not self._in_head:
                self._feed(data)
                return
            room = self.max_header_bytes - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
                self._feed(data)
                return
            part, data = data[:room], data[room:]
            self._head_bytes += len(part)
            if part and not self._feed(part):
                return
            if self._in_head:
                self._refuse(
                    431,
                    "header_bytes",
                    "request_header_too_large",
                    b"The request head is larger than the gateway accepts.",
                )
                return

    def _feed(self, data: bytes) -> bool:
        """Feed the parser as uvicorn does; False once the connection is closing."""
        if self.transport.is_closing() or self.parser is None:
            return False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _TooManyHeaders):
                self._refuse(
                    431,
                    "header_count",
                    "request_header_too_large",
                    b"The request has more header fields than the gateway accepts.",
                )
                return False
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return not self.transport.is_closing()

    def _refuse(self, status: int, limit: str, code: str, message: bytes) -> None:
        """A refused head: a JSON error in OpenAI's shape (the path, which would choose
        the dialect, may not have been read), then the connection closed."""
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        HEADS_REFUSED.labels(limit).inc()
        body = b'{"error":{"message":"%s","type":"invalid_request_error","param":null,"code":"%s"}}' % (
            message,
            code.encode(),
        )
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()
