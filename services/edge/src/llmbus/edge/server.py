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

from typing import ClassVar

import httptools
from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from llmbus.edge.settings import EdgeSettings

__all__ = ["PROTOCOL", "HeadLimitedProtocol"]

PROTOCOL = "llmbus.edge.server:HeadLimitedProtocol"

HEADS_REFUSED = Counter(
    "llmbus_edge_heads_refused_total", "Request heads refused for their size or header count", ["limit"]
)


_DEFAULTS = EdgeSettings()


class _TooManyHeaders(Exception):
    pass


class HeadLimitedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that feeds its parser at most `max_header_bytes` of a request
    head and refuses a head with more than `max_headers` fields (431)."""

    max_header_bytes: ClassVar[int] = _DEFAULTS.max_header_bytes
    max_headers: ClassVar[int] = _DEFAULTS.max_headers

    _in_head = True
    _head_bytes = 0
    _header_count = 0

    @classmethod
    def configure(cls, settings: EdgeSettings) -> None:
        cls.max_header_bytes = settings.max_header_bytes
        cls.max_headers = settings.max_headers

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            raise _TooManyHeaders
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        # The head's bytes are counted from the first byte of a connection and of each
        # request after a whole one (a pipelined head may start inside a chunk already
        # counted as body: it then gets up to one read more, still bounded).
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
                self._refuse("header_bytes", b"The request head is larger than the gateway accepts.")
                return

    def _feed(self, data: bytes) -> bool:
        """Feed the parser as uvicorn does; False once the connection is closing."""
        if self.transport.is_closing() or self.parser is None:
            return False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _TooManyHeaders):
                self._refuse("header_count", b"The request has more header fields than the gateway accepts.")
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

    def _refuse(self, limit: str, message: bytes) -> None:
        """431 with a JSON error in OpenAI's shape (the path, which would choose the
        dialect, may not have been read), then the connection closed."""
        HEADS_REFUSED.labels(limit).inc()
        body = (
            b'{"error":{"message":"%s","type":"invalid_request_error","param":null,'
            b'"code":"request_header_too_large"}}' % message
        )
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()
