"""The load generator's HTTP/1.1 client: one asyncio protocol per keep-alive connection,
responses parsed by `httptools` (uvicorn's parser), requests written as prepared bytes.

Built to cost the generator as little as possible, so that what the bench measures is the
servers: no per-request header building, no stream objects, no task per request. On this
machine it drives the mock upstream at several thousand requests per second from one
core; the report shows its own CPU per request beside the servers'.

Streamed answers are read as server-sent events: the time of the first `data:` event is
the time to first token, and the time between two events is a chunk gap (events that
arrive in the same read are 0 apart).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["Connection", "Sample", "Target"]

_EVENT = b"data:"
_DONE = b"[DONE]"


@dataclass(frozen=True)
class Target:
    """Where one leg sends its requests, and the bytes of the request."""

    host: str
    port: int
    request: bytes
    stream: bool

    @classmethod
    def chat(cls, url: str, key: str, body: bytes, *, stream: bool) -> Target:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"{url}: a host and a port are needed")
        head = (
            f"POST {parts.path} HTTP/1.1\r\n"
            f"Host: {parts.hostname}:{parts.port}\r\n"
            f"Authorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
            "Accept: */*\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return cls(parts.hostname, parts.port, head.encode() + body, stream)


@dataclass
class Sample:
    """One request: `latency` to the end of the answer and `ttft` to its first event
    (seconds); `gaps` between its events; `error` names what went wrong, if anything."""

    began: float
    latency: float = 0.0
    ttft: float = 0.0
    ended: float = 0.0
    gaps: list[float] = field(default_factory=list)
    error: str = ""


class Connection(asyncio.Protocol):
    """One keep-alive connection that carries one request at a time."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.waiter: asyncio.Future[None] | None = None
        self.sample: Sample | None = None
        self.status = 0
        self.body_size = 0
        self.last_event = 0.0
        self.tail = b""
        self.saw_done = False
        self.broken = False

    @classmethod
    async def open(cls, target: Target, timeout: float = 60.0) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(target, timeout), target.host, target.port)
        return protocol

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(f"bad response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        self._finish("connection closed" + (f": {exc}" if exc else ""))

    # httptools callbacks

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        sample = self.sample
        if sample is None or not self.target.stream:
            return
        # A `data:` split across two reads is found with the tail of the previous one.
        view = self.tail + body
        events = view.count(_EVENT)
        self.tail = body[-(len(_EVENT) - 1) :]
        if not events:
            return
        now = time.perf_counter()
        if not sample.ttft:
            sample.ttft = now - sample.began
        else:
            sample.gaps.append(now - self.last_event)
        sample.gaps.extend([0.0] * (events - 1))
        self.last_event = now
        if not self.saw_done and _DONE in view:
            self.saw_done = True

    def on_message_complete(self) -> None:
        if self.status != 200:
            self._finish(f"HTTP {self.status}")
        elif not self.body_size:
            self._finish("empty answer")
        elif self.target.stream and not self.saw_done:
            self._finish("stream ended without [DONE]")
        else:
            self._finish("")
        if not self.parser.should_keep_alive():
            self.broken = True

    # requests

    def _finish(self, error: str) -> None:
        sample, waiter = self.sample, self.waiter
        if sample is None or waiter is None or waiter.done():
            return
        sample.ended = time.perf_counter()
        sample.latency = sample.ended - sample.began
        sample.error = error
        waiter.set_result(None)

    def _expire(self) -> None:
        self.broken = True
        self._finish(f"no complete answer within {self.timeout:g}s")
        if self.transport is not None:
            self.transport.abort()

    async def send(self) -> Sample:
        """Send the target's request and wait for the whole answer."""
        assert self.transport is not None
        self.status = self.body_size = 0
        self.tail = b""
        self.saw_done = False
        self.waiter = self.loop.create_future()
        sample = self.sample = Sample(began=time.perf_counter())
        timer = self.loop.call_later(self.timeout, self._expire)
        self.transport.write(self.target.request)
        try:
            await self.waiter
        finally:
            timer.cancel()
            self.sample = self.waiter = None
        return sample

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
