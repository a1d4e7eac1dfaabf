"""The upstream HTTP client: one shared httpx2 client per process (keep-alive pool,
timeouts), behind a small interface. httpx2 exceptions are translated here and nowhere
else. Every call is a client span of the current trace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmbus.providers.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

__all__ = ["HttpClient", "UpstreamResponse"]

_tracer = trace.get_tracer("llmbus.providers.http")


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    _response: httpx2.Response
    _raw: AsyncIterator[bytes] | None = None
    """One iterator over the body for the whole response: a reader that stops early (at
    `[DONE]`) leaves the rest to `drain`, which keeps the connection for reuse. It yields
    decoded bytes: the client sends `Accept-Encoding: gzip, deflate`, and an upstream
    that compresses is decompressed here, chunk by chunk."""

    def _body(self) -> AsyncIterator[bytes]:
        if self._raw is None:
            self._raw = self._response.aiter_bytes()
        return self._raw

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        body = self._body()
        try:
            while True:
                try:
                    chunk = await anext(body)
                except StopAsyncIteration:
                    return
                yield chunk
        except httpx2.TimeoutException:
            raise UpstreamTimeout("the upstream stopped sending") from None
        except httpx2.DecodingError:
            raise UpstreamProtocolError("the upstream sent a body that does not decompress") from None
        except httpx2.HTTPError as exc:
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
                async for chunk in self._body():
                    seen += len(chunk)
                    if seen > limit:
                        return
        except (TimeoutError, httpx2.HTTPError, httpx2.StreamError):
            return

    async def read(self, limit: int = 1 << 20) -> bytes:
        body = bytearray()
        async for chunk in self.aiter_bytes():
            body += chunk
            if len(body) > limit:
                break
        return bytes(body)


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
        self._options: dict[str, Any] = {
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
        self._transport = transport
        self._client = httpx2.AsyncClient(transport=transport, **self._options)
        self._proxied: dict[str, httpx2.AsyncClient] = {}

    def _client_for(self, proxy: str | None) -> httpx2.AsyncClient:
        """The shared client, or the one of a proxy (made on first use, then kept)."""
        if not proxy:
            return self._client
        client = self._proxied.get(proxy)
        if client is None:
            client = httpx2.AsyncClient(proxy=proxy, transport=self._transport, **self._options)
            self._proxied[proxy] = client
        return client

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes = b"",
        proxy: str | None = None,
        limit: int = 1 << 20,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """A whole small exchange (token endpoints, probes): status, headers and body."""
        async with self.stream(method, url, headers=headers, content=content, proxy=proxy) as response:
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
    ) -> AsyncIterator[UpstreamResponse]:
        """Send a request and yield its response with the body still unread."""
        client = self._client_for(proxy)
        parsed = httpx2.URL(url)
        with _tracer.start_as_current_span(f"{method} {parsed.host}", kind=SpanKind.CLIENT) as span:
            span.set_attribute("http.request.method", method)
            span.set_attribute("server.address", parsed.host)
            span.set_attribute("url.path", parsed.path)
            request = client.build_request(method, url, headers=headers, content=content or None)
            try:
                response = await client.send(request, stream=True)
            except httpx2.TimeoutException:
                span.set_status(Status(StatusCode.ERROR, "timeout"))
                raise UpstreamTimeout(f"no answer from {parsed.host} in time") from None
            except httpx2.HTTPError as exc:
                span.set_status(Status(StatusCode.ERROR, "unreachable"))
                raise UpstreamUnreachable(f"cannot reach {parsed.host}: {type(exc).__name__}") from None
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_status(Status(StatusCode.ERROR, str(response.status_code)))
            upstream = UpstreamResponse(response.status_code, response.headers, response)
            try:
                yield upstream
                await upstream.drain()
            finally:
                await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
        for client in self._proxied.values():
            await client.aclose()
