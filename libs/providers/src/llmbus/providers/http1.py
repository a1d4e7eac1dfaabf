"""A lean HTTP/1.1 client for the upstream calls that go straight to the upstream (no
proxy): one asyncio protocol per keep-alive connection, responses parsed by `httptools`
(uvicorn's parser, llhttp), connections pooled per origin.

Why not aiohttp for these: against the mock upstream on loopback, one call at a time,
aiohttp's client cost about 200 µs of CPU and 420 µs of wall time per call on the bench
machine, this one about 70 µs and 250 µs (bench/RESULTS.md). aiohttp stays for calls
through a proxy (`HttpClient`).

What it does, as the upstream calls need it:
- keep-alive pooling per origin: idle connections reused last-in first-out, dropped after
  `keepalive_expiry` seconds or when the server closed them, at most `max_connections`
  in use at once (a call waits for a free one);
- a connect timeout (TCP connect and TLS handshake) and a read timeout (for the head, and
  between two pieces of the body);
- TLS with the given context, the server's name checked;
- bodies framed by Content-Length, chunked, or read until the server closes;
- gzip and deflate bodies decompressed piece by piece (it sends
  `Accept-Encoding: gzip, deflate` unless the caller names an encoding);
- backpressure: reading pauses while more than `_HIGH_WATER` bytes wait unread.

Failures are the providers' errors: `UpstreamUnreachable` (no connection, or closed before
the answer began), `UpstreamTimeout`, `UpstreamProtocolError` (a malformed answer or a body
that does not decompress) and `UpstreamError` (the connection failed mid-body)."""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import Mapping
from typing import Final

import httptools
from multidict import CIMultiDict
from yarl import URL

from llmbus.providers.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

__all__ = ["Http1Pool", "Http1Response"]

_HIGH_WATER: Final = 1 << 20
"""Unread body bytes above which the connection stops reading until the caller catches up."""
_LOW_WATER: Final = 256 << 10
_USER_AGENT: Final = b"llmbus"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Decoder:
    """A gzip or deflate body, decompressed piece by piece. `deflate` is the zlib format,
    or raw deflate from servers that send that instead (as browsers and httpx accept)."""

    __slots__ = ("_first", "_zlib")

    def __init__(self, encoding: str) -> None:
        self._first = encoding == "deflate"
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding != "deflate" else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> bytes:
        try:
            out = self._zlib.decompress(data)
        except zlib.error:
            if not self._first:
                raise
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data)
        self._first = False
        return out

    def flush(self) -> bytes:
        return self._zlib.flush()


class Http1Response(asyncio.Protocol):
    """One keep-alive connection and the answer it is reading: `status` and `headers`
    once the head has arrived, then the body from `next_chunk()`."""

    def __init__(self, read_timeout: float) -> None:
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self._chunks: deque[bytes] = deque()
        self._unread = 0
        self._paused = False
        self._head = False
        self._informational = False
        self._complete = False
        self._keep_alive = False
        self._framed = False
        self._decoder: _Decoder | None = None
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._in_flight = False

    # --- the connection --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self._in_flight or self._complete:
            return
        if self._head and not self._framed:
            self._end()  # a body without framing ends when the server closes
        elif self._head:
            self._fail(UpstreamError("the upstream connection failed: closed mid-body", retryable=False))
        else:
            self._fail(UpstreamUnreachable("the upstream closed the connection before answering"))

    def data_received(self, data: bytes) -> None:
        if not self._in_flight:
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("the upstream switched protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"the upstream sent a malformed answer: {exc}"))
            self.close()

    def pause_writing(self) -> None:
        pass  # requests are small and written whole

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks ---------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints): the real one follows
            self._informational = True
            self.headers = CIMultiDict()
            return
        self.status = status
        self._head = True
        headers = self.headers
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._framed = chunked or "content-length" in headers
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._decoder = _Decoder(encoding)
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decode(body)
            except zlib.error:
                self._fail(UpstreamProtocolError("the upstream sent a body that does not decompress"))
                self.close()
                return
            if not body:
                return
        self._chunks.append(body)
        self._unread += len(body)
        if self._unread > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._keep_alive = self._parser.should_keep_alive()  # llhttp forgets it after this call
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error:
                self._fail(UpstreamProtocolError("the upstream sent a body that does not decompress"))
                return
            if tail:
                self._chunks.append(tail)
        self._end()

    # --- the caller's side -----------------------------------------------------------

    def send(self, request: bytes) -> None:
        """Start a new exchange on this (fresh or idle) connection."""
        assert self._transport is not None
        self.status = 0
        self.headers = CIMultiDict()
        self._chunks.clear()
        self._unread = 0
        self._head = self._informational = self._complete = self._keep_alive = self._framed = False
        self._decoder = None
        self._error = None
        self._in_flight = True
        self._transport.write(request)

    async def head(self) -> None:
        """Wait for the answer's status line and headers (within the read timeout)."""
        while not self._head:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def next_chunk(self) -> bytes:
        """The next piece of the (decoded) body, `b""` at its end."""
        chunks = self._chunks
        while not chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            await self._wait()
        chunk = chunks.popleft()
        self._unread -= len(chunk)
        if self._paused and self._unread < _LOW_WATER and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    @property
    def reusable(self) -> bool:
        """Whether the answer was read whole on a connection the server keeps open."""
        return (
            self._complete
            and self._error is None
            and not self.lost
            and self._keep_alive
            and self._transport is not None
            and not self._transport.is_closing()
        )

    def done(self) -> None:
        """The caller is done with this exchange."""
        self._in_flight = False
        if self._paused and self._transport is not None and not self._transport.is_closing():
            self._paused = False
            self._transport.resume_reading()

    def close(self) -> None:
        self.lost = True
        if self._transport is not None:
            self._transport.close()

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(self._read_timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None:
            self._error = error
        self._wake()


_Origin = tuple[str, str, int]


class Http1Pool:
    """Keep-alive connections per origin (scheme, host, port)."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        keepalive_expiry: float,
        ssl_context: ssl.SSLContext,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive_expiry = keepalive_expiry
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[_Origin, list[Http1Response]] = {}
        self._heads: dict[tuple[str, _Origin], bytes] = {}

    async def request(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes
    ) -> tuple[Http1Response, _Origin]:
        """Send a request and wait for its answer's head. The caller reads the body and
        then hands the connection back with `release`, whatever happened."""
        scheme = url.scheme
        host = url.raw_host or ""
        port = url.port or _DEFAULT_PORTS.get(scheme, 80)
        origin = (scheme, host, port)
        request = self._request_bytes(method, url, origin, headers, body)
        await self._slots.acquire()
        connection: Http1Response | None = None
        try:
            connection = self._idle_connection(origin) or await self._connect(origin)
            connection.send(request)
            try:
                await connection.head()
            except TimeoutError:
                raise UpstreamTimeout(f"no answer from {host} in time") from None
        except BaseException:
            if connection is not None:
                connection.done()
                connection.close()
            self._slots.release()
            raise
        return connection, origin

    def release(self, connection: Http1Response, origin: _Origin) -> None:
        connection.done()
        self._slots.release()
        if not connection.reusable:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle = self._idle.setdefault(origin, [])
        # Drop what the server closed or what has idled too long, oldest first.
        expired = connection.idle_since - self._keepalive_expiry
        while idle and (idle[0].lost or idle[0].idle_since < expired):
            idle.pop(0).close()
        idle.append(connection)

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    def _idle_connection(self, origin: _Origin) -> Http1Response | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        expired = time.monotonic() - self._keepalive_expiry
        while idle:
            connection = idle.pop()
            if not connection.lost and connection.idle_since >= expired:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: _Origin) -> Http1Response:
        scheme, host, port = origin
        tls = scheme == "https"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: Http1Response(self._read_timeout),
                    host,
                    port,
                    ssl=self._ssl if tls else None,
                    server_hostname=host if tls else None,
                    ssl_handshake_timeout=self._connect_timeout if tls else None,
                )
        except TimeoutError:
            raise UpstreamTimeout(f"no answer from {host} in time") from None
        except OSError as exc:  # refused, unreachable, no such host, TLS failures
            raise UpstreamUnreachable(f"cannot reach {host}: {type(exc).__name__}") from None
        return connection

    def _request_bytes(
        self, method: str, url: URL, origin: _Origin, headers: Mapping[str, str], body: bytes
    ) -> bytes:
        """The request's head (the part that is the same for every call to one address
        is made once) with the caller's headers and the body."""
        key = (method, origin)
        head = self._heads.get(key)
        if head is None:
            scheme, host, port = origin
            authority = host if port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
            if ":" in host:  # an IPv6 literal
                authority = f"[{host}]" if port == _DEFAULT_PORTS.get(scheme) else f"[{host}]:{port}"
            head = f"Host: {authority}\r\n".encode("ascii")
            if len(self._heads) < 256:
                self._heads[key] = head
        target = url.raw_path_qs or "/"
        parts = [f"{method} {target} HTTP/1.1\r\n".encode("ascii"), head]
        named: set[str] = set()
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
                raise ValueError(f"header {name!r} has a line break or a colon in it")
            lowered = name.lower()
            if lowered in ("host", "content-length", "transfer-encoding", "connection"):
                continue  # framing is this client's
            named.add(lowered)
            parts.append(f"{name}: {value}\r\n".encode())
        if "accept-encoding" not in named:
            parts.append(b"Accept-Encoding: gzip, deflate\r\n")
        if "accept" not in named:
            parts.append(b"Accept: */*\r\n")
        if "user-agent" not in named:
            parts.append(b"User-Agent: " + _USER_AGENT + b"\r\n")
        if body or method in ("POST", "PUT", "PATCH"):
            parts.append(b"Content-Length: %d\r\n" % len(body))
        parts.append(b"\r\n")
        parts.append(body)
        return b"".join(parts)
