"""The upstream HTTP client, behind a small interface: one shared pool per process
(keep-alive, timeouts, gzip, TLS with the same trust store as httpx2). aiohttp, httpx2
and `llmbus.providers.http1` exceptions are translated here and nowhere else. Every call
is a client span of the current trace.

Which client, by measurement (bench/RESULTS.md):
- a call straight to the upstream goes through `llmbus.providers.http1`, a lean
  HTTP/1.1 client on httptools: about 70 µs of CPU per call, one at a time, where
  aiohttp took 200 µs;
- a call through a proxy (a provider's `proxy-url`, or HTTPS_PROXY and the like in the
  environment) goes through aiohttp, which measured cheapest of the general clients
  (client CPU per request 0.14 ms whole and 0.33 ms for a 20-chunk stream at concurrency
  32, against httpx2's 0.68 ms and 0.92 ms);
- tests pass an httpx2 transport (`httpx2.MockTransport`): with one the client runs on
  httpx2 over that transport, with the same interface."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any

import aiohttp
import httpx2
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from yarl import URL

from llmbus.providers.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from llmbus.providers.http1 import Http1Pool

__all__ = ["HttpClient", "UpstreamResponse"]

_tracer = trace.get_tracer("llmbus.providers.http")

_URLS_KEPT = 256
_HTTP1_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
"""The methods the lean client sends (a HEAD answer's body framing differs: aiohttp's)."""


class UpstreamResponse:
    """A response whose body is still to be read. The body is one reader for the whole
    response: a reader that stops early (at `[DONE]`) leaves the rest to `drain`, which
    keeps the connection for reuse. It yields decoded bytes: the client sends
    `Accept-Encoding: gzip, deflate`, and an upstream that compresses is decompressed
    here, chunk by chunk."""

    __slots__ = ("_next", "headers", "status")

    def __init__(
        self, status: int, headers: Mapping[str, str], next_chunk: Callable[[], Awaitable[bytes]]
    ) -> None:
        self.status = status
        self.headers = headers
        self._next = next_chunk
        """The next piece of the body, `b""` at its end."""

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        next_chunk = self._next
        try:
            while chunk := await next_chunk():
                yield chunk
        except (TimeoutError, httpx2.TimeoutException):
            raise UpstreamTimeout("the upstream stopped sending") from None
        except httpx2.DecodingError:
            raise UpstreamProtocolError("the upstream sent a body that does not decompress") from None
        except aiohttp.ClientPayloadError as exc:
            if _is_decoding_error(exc):
                raise UpstreamProtocolError("the upstream sent a body that does not decompress") from None
            raise UpstreamError(
                f"the upstream connection failed: {type(exc).__name__}", retryable=False
            ) from None
        except (httpx2.HTTPError, aiohttp.ClientError) as exc:
            raise UpstreamError(
                f"the upstream connection failed: {type(exc).__name__}", retryable=False
            ) from None

    async def drain(self, limit: int = 64 << 10, timeout: float = 0.5) -> None:
        """Read what is left of the body (after `[DONE]`, the chunked terminator), so the
        connection goes back to the pool instead of being closed; give up quietly after
        `limit` bytes or `timeout` seconds."""
        seen = 0
        try:
            async with asyncio.timeout(timeout):
                while chunk := await self._next():
                    seen += len(chunk)
                    if seen > limit:
                        return
        except (TimeoutError, UpstreamError, httpx2.HTTPError, httpx2.StreamError, aiohttp.ClientError):
            return

    async def read(self, limit: int = 1 << 20) -> bytes:
        body = bytearray()
        async for chunk in self.aiter_bytes():
            body += chunk
            if len(body) > limit:
                break
        return bytes(body)


def _client_span(method: str, host: str, path: str, traced: bool) -> AbstractContextManager[trace.Span]:
    """The call's client span; none when nothing records spans (the no-op provider of a
    process that exports nothing), which saves about 5 µs a call, nor for an untraced call."""
    if not traced or isinstance(trace.get_tracer_provider(), trace.NoOpTracerProvider):
        return nullcontext(trace.INVALID_SPAN)
    return _tracer.start_as_current_span(
        f"{method} {host}",
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": method, "server.address": host, "url.path": path},
    )


def _is_decoding_error(exc: BaseException) -> bool:
    """aiohttp reports a body that does not decompress as a payload error caused by a
    `ContentEncodingError`."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.http_exceptions.ContentEncodingError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "content-encoding" in str(exc).lower()


class HttpClient:
    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        max_connections: int = 512,
        max_keepalive: int = 512,
        keepalive_expiry: float = 60.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """`max_keepalive` bounds the idle connections of the httpx2 client (under a test
        transport); aiohttp keeps every idle connection up to `keepalive_expiry`, at no
        cost per request."""
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._pool: Http1Pool | None = None
        # The proxies of the environment (HTTPS_PROXY, NO_PROXY), as httpx2 honours them:
        # with any set, every call goes through aiohttp, which applies them.
        self._env_proxies = bool(urllib.request.getproxies())
        self._urls: dict[str, tuple[URL, str, str]] = {}
        self._transport = transport
        self._httpx_options: dict[str, Any] = {
            "timeout": httpx2.Timeout(
                connect=connect_timeout, read=read_timeout, write=30.0, pool=connect_timeout
            ),
            "limits": httpx2.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive,
                keepalive_expiry=keepalive_expiry,
            ),
            "follow_redirects": False,
        }
        self._client = (
            httpx2.AsyncClient(transport=transport, **self._httpx_options) if transport is not None else None
        )
        self._proxied: dict[str, httpx2.AsyncClient] = {}

    def _aiohttp(self) -> aiohttp.ClientSession:
        """The shared session, made on first use (aiohttp wants a running loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
                ssl=httpx2.create_ssl_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self._connect_timeout,
                    sock_connect=self._connect_timeout,
                    sock_read=self._read_timeout,
                ),
                auto_decompress=True,
                # Looking for the environment's proxies costs per request: only when some are set.
                trust_env=self._env_proxies,
                skip_auto_headers=("Content-Type",),
            )
        return self._session

    def _http1(self) -> Http1Pool:
        if self._pool is None:
            self._pool = Http1Pool(
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                max_connections=self._max_connections,
                keepalive_expiry=self._keepalive_expiry,
                ssl_context=httpx2.create_ssl_context(),
            )
        return self._pool

    def _httpx_for(self, proxy: str | None) -> httpx2.AsyncClient:
        """The httpx2 client over the test transport, or the one of a proxy (made on
        first use, then kept)."""
        assert self._client is not None
        if not proxy:
            return self._client
        client = self._proxied.get(proxy)
        if client is None:
            client = httpx2.AsyncClient(proxy=proxy, transport=self._transport, **self._httpx_options)
            self._proxied[proxy] = client
        return client

    def _parsed(self, url: str) -> tuple[URL, str, str]:
        """The URL, its host and its path; parsed once per address (they repeat)."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            address = URL(url)
            parsed = self._urls[url] = (address, address.host or "", address.path)
        return parsed

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes = b"",
        proxy: str | None = None,
        limit: int = 1 << 20,
        traced: bool = True,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """A whole small exchange (token endpoints, probes): status, headers and body.
        `traced=False` for a periodic call that no request made (a health probe): a
        client span of its own would be a one-span trace every few seconds."""
        async with self.stream(
            method, url, headers=headers, content=content, proxy=proxy, traced=traced
        ) as response:
            return response.status, response.headers, await response.read(limit)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes,
        proxy: str | None = None,
        traced: bool = True,
    ) -> AsyncIterator[UpstreamResponse]:
        """Send a request and yield its response with the body still unread."""
        address, host, path = self._parsed(url)
        with _client_span(method, host, path, traced) as span:
            if self._client is not None:
                async with self._httpx_stream(span, host, method, url, headers, content, proxy) as upstream:
                    yield upstream
                return
            if not proxy and not self._env_proxies and method in _HTTP1_METHODS:
                pool = self._http1()
                try:
                    connection, origin = await pool.request(method, address, headers, content)
                except UpstreamTimeout:
                    span.set_status(Status(StatusCode.ERROR, "timeout"))
                    raise
                except UpstreamError:
                    span.set_status(Status(StatusCode.ERROR, "unreachable"))
                    raise
                try:
                    status = connection.status
                    span.set_attribute("http.response.status_code", status)
                    if status >= 400:
                        span.set_status(Status(StatusCode.ERROR, str(status)))
                    upstream = UpstreamResponse(status, connection.headers, connection.next_chunk)
                    yield upstream
                    await upstream.drain()
                finally:
                    pool.release(connection, origin)
                return
            try:
                response = await self._aiohttp().request(
                    method,
                    address,
                    headers=headers,
                    data=content or None,
                    proxy=proxy or None,
                    allow_redirects=False,
                )
            except TimeoutError:
                span.set_status(Status(StatusCode.ERROR, "timeout"))
                raise UpstreamTimeout(f"no answer from {host} in time") from None
            except aiohttp.ClientError as exc:
                span.set_status(Status(StatusCode.ERROR, "unreachable"))
                raise UpstreamUnreachable(f"cannot reach {host}: {type(exc).__name__}") from None
            try:
                status = response.status
                span.set_attribute("http.response.status_code", status)
                if status >= 400:
                    span.set_status(Status(StatusCode.ERROR, str(status)))
                upstream = UpstreamResponse(status, response.headers, response.content.readany)
                yield upstream
                await upstream.drain()
            finally:
                response.release()

    @asynccontextmanager
    async def _httpx_stream(
        self,
        span: trace.Span,
        host: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        proxy: str | None,
    ) -> AsyncIterator[UpstreamResponse]:
        client = self._httpx_for(proxy)
        request = client.build_request(method, url, headers=headers, content=content or None)
        try:
            response = await client.send(request, stream=True)
        except httpx2.TimeoutException:
            span.set_status(Status(StatusCode.ERROR, "timeout"))
            raise UpstreamTimeout(f"no answer from {host} in time") from None
        except httpx2.HTTPError as exc:
            span.set_status(Status(StatusCode.ERROR, "unreachable"))
            raise UpstreamUnreachable(f"cannot reach {host}: {type(exc).__name__}") from None
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 400:
            span.set_status(Status(StatusCode.ERROR, str(response.status_code)))
        body = response.aiter_bytes()
        upstream = UpstreamResponse(response.status_code, response.headers, lambda: anext(body, b""))
        try:
            yield upstream
            await upstream.drain()
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._session is not None:
            await self._session.close()
        if self._client is not None:
            await self._client.aclose()
        for client in self._proxied.values():
            await client.aclose()
