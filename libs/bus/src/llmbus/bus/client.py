"""The bus client: typed publish, request/reply and subscriptions over NATS.

Trace context travels in the headers of requests and control messages (not of stream
frames: that would cost 2-3x throughput). Handlers run as tasks, one per message, bounded
by a semaphore, so a long handler never serialises a subscription.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import ConnectionClosedError, NoServersError, OutboundBufferLimitError
from nats.errors import NoRespondersError as NatsNoResponders
from nats.errors import TimeoutError as NatsTimeout
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from llmbus.bus.dispatch import dispatch
from llmbus.bus.errors import BusTimeout, BusUnavailable, NoResponders, RemoteError
from llmbus.bus.protocol import Delivery, Subscription
from llmbus.proto import ERROR_HEADER, BusError, Endpoint, Topic, error_codec
from llmbus.telemetry import extract, inject

__all__ = ["NatsBus", "connect", "is_no_responders"]

M = TypeVar("M")
R = TypeVar("R")

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("llmbus.bus")


def is_no_responders(msg: Delivery) -> bool:
    """True for the empty status-503 message NATS sends to a reply inbox when a publish
    found no subscriber."""
    headers = msg.headers
    return not msg.data and headers is not None and headers.get("Status") == "503"


async def connect(url: str, name: str, timeout: float = 10.0) -> NatsBus:
    """Connect to NATS; reconnect forever afterwards. Fails after `timeout` seconds."""

    async def closed() -> None:
        log.info("bus connection closed")

    async def disconnected() -> None:
        log.warning("bus disconnected; reconnecting")

    async def reconnected() -> None:
        log.info("bus reconnected")

    async def error(exc: Exception) -> None:
        log.warning("bus error: %s", exc)

    async def attempt() -> NATS:
        while True:
            try:
                return await nats.connect(
                    url,
                    name=name,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    ping_interval=10,
                    max_outstanding_pings=3,
                    closed_cb=closed,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                )
            except (NoServersError, OSError, NatsTimeout):
                await asyncio.sleep(0.25)

    try:
        nc = await asyncio.wait_for(attempt(), timeout)
    except TimeoutError:
        raise BusUnavailable(f"cannot connect to NATS at {url} within {timeout:g}s") from None
    return NatsBus(nc)


class NatsBus:
    """The `Bus` over a nats-py connection."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._subscriptions: list[NatsSubscription] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    def new_inbox(self) -> str:
        return str(self.nc.new_inbox())

    async def publish(
        self,
        topic: Topic[M],
        message: M,
        *,
        reply: str = "",
        traced: bool = True,
        **tokens: str,
    ) -> None:
        subject = topic.subject(**tokens)
        data = topic.codec.encode(message)
        if not traced:
            await self.publish_raw(subject, data, reply=reply)
            return
        with _tracer.start_as_current_span(f"publish {topic.pattern}", kind=SpanKind.PRODUCER) as span:
            span.set_attribute("messaging.system", "nats")
            span.set_attribute("messaging.destination.name", subject)
            await self.publish_raw(subject, data, reply=reply, traced=True)

    async def publish_raw(self, subject: str, data: bytes, *, reply: str = "", traced: bool = False) -> None:
        """Publish encoded bytes; used for stream frames (untraced, one task per stream)."""
        try:
            await self.nc.publish(subject, data, reply=reply, headers=inject() if traced else None)
        except (ConnectionClosedError, OutboundBufferLimitError) as exc:
            raise BusUnavailable(f"cannot publish on {subject}: {exc}") from None

    async def request(self, endpoint: Endpoint[M, R], message: M, *, timeout: float, **tokens: str) -> R:
        subject = endpoint.subject(**tokens)
        with _tracer.start_as_current_span(f"send {endpoint.pattern}", kind=SpanKind.CLIENT) as span:
            span.set_attribute("messaging.system", "nats")
            span.set_attribute("messaging.destination.name", subject)
            try:
                reply = await self.nc.request(
                    subject, endpoint.codec.encode(message), timeout=timeout, headers=inject()
                )
            except NatsNoResponders:
                raise NoResponders(subject) from None
            except NatsTimeout:
                raise BusTimeout(subject, timeout) from None
            except ConnectionClosedError:
                raise BusUnavailable(f"no connection to NATS for {subject}") from None
            if reply.headers and ERROR_HEADER in reply.headers:
                error = error_codec.decode(reply.data)
                raise RemoteError(error.status, error.code, error.message)
            return endpoint.reply.decode(reply.data)

    async def respond(self, delivery: Delivery, endpoint: Endpoint[Any, R], message: R) -> None:
        if delivery.reply:
            await self.publish_raw(delivery.reply, endpoint.reply.encode(message))

    async def respond_error(self, delivery: Delivery, error: BusError) -> None:
        if delivery.reply:
            try:
                await self.nc.publish(
                    delivery.reply, error_codec.encode(error), headers={ERROR_HEADER: error.code}
                )
            except ConnectionClosedError:
                log.warning("cannot send an error reply: no connection")

    async def subscribe(
        self,
        topic: Topic[M],
        handler: Callable[[M, Delivery], Awaitable[None]],
        *,
        queue: str = "",
        concurrency: int = 1024,
        subject: str | None = None,
    ) -> Subscription:
        """Run `handler(message, delivery)` as a task for each message, inside a consumer
        span that continues the sender's trace. At most `concurrency` run at once."""
        limit = asyncio.Semaphore(concurrency)
        codec = topic.codec
        name = f"process {topic.pattern}"

        async def run(delivery: NatsMsg) -> None:
            try:
                with _tracer.start_as_current_span(
                    name, context=extract(delivery.headers), kind=SpanKind.CONSUMER
                ) as span:
                    span.set_attribute("messaging.system", "nats")
                    span.set_attribute("messaging.destination.name", delivery.subject)
                    await dispatch(self, codec, handler, delivery)
            finally:
                limit.release()

        async def on_message(delivery: NatsMsg) -> None:
            await limit.acquire()
            task = asyncio.create_task(run(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        sub = await self.nc.subscribe(subject or topic.wildcard(), queue=queue, cb=on_message)
        self._subscriptions.append(sub)
        return sub

    async def subscribe_raw(
        self, subject: str, callback: Callable[[Delivery], Awaitable[None]], *, queue: str = ""
    ) -> Subscription:
        """A plain subscription whose callback runs inline (for inboxes: keep it short)."""
        sub = await self.nc.subscribe(subject, queue=queue, cb=callback)
        self._subscriptions.append(sub)
        return sub

    async def flush(self, timeout: int = 2) -> None:
        try:
            await self.nc.flush(timeout=max(1, timeout))
        except (NatsTimeout, ConnectionClosedError) as exc:
            raise BusUnavailable(f"flush failed: {exc}") from None

    async def drain(self, timeout: float = 5.0) -> None:
        """Stop taking messages, wait for running handlers, close the connection."""
        for sub in self._subscriptions:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        try:
            await asyncio.wait_for(self.nc.drain(), timeout)
        except Exception:
            await self.nc.close()
