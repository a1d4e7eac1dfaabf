"""The bus client: typed publish, request/reply and subscriptions over NATS.

Trace context travels in the headers of requests and control messages (not of stream
frames: that would cost 2-3x throughput). Handlers run as tasks, one per message, bounded
by a semaphore, so a long handler never serialises a subscription.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from nats.aio.client import Client as NATS
from nats.aio.client import _validate_subject
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import ConnectionClosedError, NoServersError, OutboundBufferLimitError
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError as NatsNoResponders
from nats.errors import TimeoutError as NatsTimeout
from nats.protocol.command import pub_cmd
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from llmbus.bus.access import inbox_prefix
from llmbus.bus.dispatch import dispatch
from llmbus.bus.eager import finish, run_eagerly
from llmbus.bus.errors import BusTimeout, BusUnavailable, NoResponders, RemoteError
from llmbus.bus.protocol import Delivery, Pace, Subscription
from llmbus.bus.retry import retry_within
from llmbus.proto import ERROR_HEADER, BusError, Endpoint, Topic, error_codec
from llmbus.telemetry import extract, inject, recording

__all__ = ["STOPPING", "NatsBus", "connect", "is_no_responders"]

M = TypeVar("M")
R = TypeVar("R")

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("llmbus.bus")


STOPPING = "the service is stopping"
"""The message of the `CancelledError` a handler gets when its service stops and the drain
time is over (`NatsBus.settle`): a handler may still say so to whoever waits for it."""


def is_no_responders(msg: Delivery) -> bool:
    """True for the empty status-503 message NATS sends to a reply inbox when a publish
    found no subscriber."""
    headers = msg.headers
    return not msg.data and headers is not None and headers.get("Status") == "503"


def _messaging(span: Span, kind: str, operation: str, subject: str, size: int | None = None) -> None:
    """The OpenTelemetry messaging conventions on a bus span: `kind` is the operation's
    type (`send`, `process`), `operation` our own word for it. Nothing on a span that
    records nothing (sampled out)."""
    if not span.is_recording():
        return
    span.set_attribute("messaging.system", "nats")
    span.set_attribute("messaging.operation.type", kind)
    span.set_attribute("messaging.operation.name", operation)
    span.set_attribute("messaging.destination.name", subject)
    if size is not None:
        span.set_attribute("messaging.message.body.size", size)


def _redacted(url: str) -> str:
    """The URL without the password it may carry (`nats://user:pass@host`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def connect(
    url: str, name: str, timeout: float = 10.0, *, user: str = "", password: str = ""
) -> NatsBus:
    """Connect to NATS; reconnect forever afterwards. Fails after `timeout` seconds, or at
    once when the server refuses the credentials.

    With a `user`, the connection's reply inboxes live under that user's own prefix
    (`llmbus.bus.access.inbox_prefix`), the only inboxes its permissions let it read."""
    credentials: dict[str, Any] = {}
    if password:
        credentials = {"user": user, "password": password}
    if user:
        credentials["inbox_prefix"] = inbox_prefix(user)
    where = _redacted(url)
    who = f"user {user!r}" if user else "a connection without credentials"
    refused = asyncio.Event()

    async def closed() -> None:
        log.info("bus connection closed")

    async def disconnected() -> None:
        nc = clients[-1] if clients else None
        if nc is not None and (nc.is_draining or nc.is_closed):
            return  # our own drain at shutdown, not a lost connection
        log.warning("bus disconnected; reconnecting")

    async def reconnected() -> None:
        log.info("bus reconnected")

    async def error(exc: Exception) -> None:
        text = str(exc).lower()
        if "permissions violation" in text:
            # A service tried a subject its NATS user may not use: a bug or an intrusion.
            log.error("bus refused: %s", exc)
        elif "authorization violation" in text:
            refused.set()
            log.error("NATS at %s refused %s", where, who)
        else:
            log.warning("bus error: %s", exc)

    options: dict[str, Any] = {
        "name": name,
        "connect_timeout": 2,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
        "closed_cb": closed,
        "disconnected_cb": disconnected,
        "reconnected_cb": reconnected,
        "error_cb": error,
        **credentials,
    }
    clients: list[NATS] = []

    async def attempt(_: float | None) -> NATS:
        nc = _Client()
        clients.append(nc)
        await nc.connect(url, **options)
        return nc

    async def attempts() -> NATS:
        # One retry policy (`llmbus.bus.retry`): NATS may start after the service.
        return await retry_within(
            None,
            attempt,
            on=(NoServersError, OSError, NatsTimeout),
            wait_max=0.5,
            what=f"connecting to {where}",
        )

    # nats-py retries refused credentials as it retries an absent server: racing the
    # connection with the first refusal fails at once instead of at the timeout.
    connecting = asyncio.ensure_future(asyncio.wait_for(attempts(), timeout))
    refusal = asyncio.ensure_future(refused.wait())
    try:
        await asyncio.wait({connecting, refusal}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        refusal.cancel()
    if refused.is_set() and not connecting.done():
        connecting.cancel()
    try:
        return NatsBus(await connecting)
    except (asyncio.CancelledError, TimeoutError, NatsError) as exc:
        if isinstance(exc, asyncio.CancelledError) and not refused.is_set():
            raise  # our caller is being cancelled, not the connection refused
        if clients:
            await clients[-1].close()
        if refused.is_set():
            raise BusUnavailable(
                f"NATS at {where} refused {who}: check LLMBUS_NATS_USER and LLMBUS_NATS_PASSWORD"
            ) from None
        if isinstance(exc, NatsError):
            raise BusUnavailable(f"cannot connect to NATS at {where}: {exc}") from None
        raise BusUnavailable(f"cannot connect to NATS at {where} within {timeout:g}s") from None


class _Client(NATS):
    """nats-py's client, with three changes on the hot path.

    What the socket delivers is parsed as it arrives (`_Feed`), not handed through a
    stream reader to the read loop's task (a buffer copy, a Future and a loop pass per
    read).

    A publish without headers is queued by a plain call (`publish_now`), not by nats-py's
    chain of coroutines, unless it needs nats-py's own handling.

    What is pending is written by a loop callback at the end of
    the loop's current pass instead of by waking its flusher task (a Future, a queue and
    a task step per flush). Publishes made in one pass still go out in one write; under
    backpressure (the socket's buffer above `_BACKPRESSURE` bytes), when not connected or
    when a flush is forced, nats-py's own flusher does it, waiting for the socket to drain.

    The publish's `Pace` (`NatsBus.publish_raw(pace=...)`) may change when: a `"window"`
    publish (a stream's middle chunks) waits up to `lazy_window` seconds for others to
    share its write, and a `"now"` publish (a streamed request's first frames) is written
    at once; either way a publish writes everything pending before it, so order is kept.
    Under many concurrent streams the window turns one write (and one wakeup of
    nats-server and of the edge) per chunk into one per window; writing a request's first
    frames at once keeps them from waiting behind the rest of a busy pass.

    Tied to nats-py 2.x's internals (`_read_loop`, `_ps`, `_flush_pending`, `_pending`,
    `_pending_data_size`, `_transport`), which the pinned version has;
    tests/integration/test_bus.py covers it."""

    _write_scheduled = False
    _lazy_timer: asyncio.TimerHandle | None = None
    pace: Pace = "pass"
    """Set by `NatsBus.publish_raw` for the publish it makes (read, and reset, by the
    `_flush_pending` that publish calls, with no await in between)."""
    lazy_window = 0.0

    def publish_now(self, subject: str, payload: bytes, reply: str, pace: Pace) -> bool:
        """nats-py's `publish` of a message without headers, with no coroutine: the PUB
        is queued and written at its pace. False, with nothing done, where nats-py's own
        path must take it (it raises, or waits for the socket): not connected, closing or
        draining, a payload over the server's limit, the pending buffer full, the socket
        congested."""
        size = len(payload)
        if (
            not self.is_connected
            or self.is_draining_pubs
            or not subject
            or size > self._max_payload
            or self._congested()
        ):
            return False
        if not self._skip_subject_validation:
            _validate_subject(subject)
            if reply:
                _validate_subject(reply)
        command = pub_cmd(subject, reply, payload)
        if self._max_pending_size > 0 and self._pending_data_size + len(command) > self._max_pending_size:
            return False
        self._pending.append(command)
        self._pending_data_size += len(command)
        stats = self.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += size
        self._schedule(pace)
        return True

    async def _flush_pending(self, force_flush: bool = False) -> Any:
        pace, self.pace = self.pace, "pass"
        if force_flush or not self.is_connected or self._congested():
            return await super()._flush_pending(force_flush)
        self._schedule(pace)
        return None

    def _schedule(self, pace: Pace) -> None:
        """Write what is pending at `pace`."""
        if pace == "now":
            self._write_pending()
        elif self._write_scheduled:
            pass
        elif pace == "window" and self.lazy_window:
            if self._lazy_timer is None:
                self._lazy_timer = asyncio.get_running_loop().call_later(self.lazy_window, self._lazy_write)
        else:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self._write_pending)

    async def _read_loop(self) -> None:
        reader = getattr(self._transport, "_io_reader", None)
        if not isinstance(reader, asyncio.StreamReader):
            await super()._read_loop()  # another transport (websocket): nats-py's own way
            return
        feed = _Feed(self._ps.parse, reader)
        # What arrived before this loop started (after the handshake) goes first; with
        # bytes buffered, the read takes them without waiting.
        unread: bytearray = getattr(reader, "_buffer", bytearray())
        buffered = await reader.read(len(unread)) if unread else b""
        # The protocol calls `feed_data` with every read: the parser gets it at once. The
        # reader then holds nothing, so nats-py's loop below only waits for the end of the
        # connection or an error (`_Feed` sets the parser's on the reader) and handles
        # either as it always does.
        reader.feed_data = feed  # type: ignore[method-assign,assignment]
        try:
            if buffered:
                feed(buffered)
            await super()._read_loop()
        finally:
            feed.stop()

    def _congested(self) -> bool:
        writer = getattr(self._transport, "_io_writer", None)
        if writer is None:
            return True  # another transport (websocket): nats-py's own way
        return bool(writer.transport.get_write_buffer_size() > _BACKPRESSURE)

    def _lazy_write(self) -> None:
        self._lazy_timer = None
        self._write_pending()

    def _write_pending(self) -> None:
        self._write_scheduled = False
        if self._lazy_timer is not None:
            self._lazy_timer.cancel()
            self._lazy_timer = None
        if self._pending_data_size == 0 or not self.is_connected or self._transport is None:
            return
        pending = self._pending
        self._pending = []
        self._pending_data_size = 0
        try:
            self._transport.writelines(pending)
        except OSError as exc:
            task = asyncio.get_running_loop().create_task(self._process_op_err(exc))
            _background.add(task)
            task.add_done_callback(_background.discard)


class _Feed:
    """nats-py's parser (`Parser.parse`, a coroutine), run on every read the moment the
    socket delivers it, from the protocol's `data_received`. The parser hands each message
    to its subscription without waiting for anything (`_Direct`), so the coroutine runs
    to its end in one step. When it does wait (a flush nats-py forces, a full subscription
    queue), a task finishes it and parses what arrives meanwhile after it, in order. An
    error ends the read loop as an error of the read would (`StreamReader.set_exception`)."""

    __slots__ = ("_backlog", "_finishing", "_parse", "_reader")

    def __init__(
        self, parse: Callable[[bytes], Coroutine[Any, Any, None]], reader: asyncio.StreamReader
    ) -> None:
        self._parse = parse
        self._reader = reader
        self._backlog: deque[bytes] = deque()
        self._finishing: asyncio.Task[None] | None = None

    def __call__(self, data: bytes) -> None:
        if self._finishing is not None:
            self._backlog.append(data)
            return
        step = self._parse(data)
        try:
            waiting = step.send(None)
        except StopIteration:
            return
        except Exception as exc:
            self._reader.set_exception(exc)
            return
        self._finishing = asyncio.get_running_loop().create_task(self._finish(step, waiting))

    async def _finish(self, step: Coroutine[Any, Any, None], waiting: Any) -> None:
        try:
            await finish(step, waiting)
            while self._backlog:
                await self._parse(self._backlog.popleft())
        except Exception as exc:
            self._reader.set_exception(exc)
        finally:
            self._finishing = None

    def stop(self) -> None:
        self._backlog.clear()
        if self._finishing is not None:
            self._finishing.cancel()


_BACKPRESSURE = 4 * 1024 * 1024
"""Bytes the socket may hold unsent before publishes wait for it (nats-py's flusher)."""
_background: set[asyncio.Task[None]] = set()


class _Direct(asyncio.Queue[NatsMsg]):
    """A subscription's pending queue that delivers as it is given: nats-py puts each
    message here (`Client._process_msg`) and would have the subscription's task take it
    off; this calls the callback at once instead, so nothing is ever queued (the task
    waits on it forever and ends when the subscription does). Tied to nats-py 2.x's
    subscription internals (`_pending_queue`, `_pending_size`), which the pinned version
    has; tests/integration/test_bus.py covers it."""

    def __init__(self, sub: NatsSubscription, callback: Callable[[NatsMsg], None]) -> None:
        super().__init__()
        self._sub = sub
        self._callback = callback

    def put_nowait(self, item: NatsMsg) -> None:
        self._sub._pending_size -= len(item.data)  # counted by nats-py as pending; it is not
        try:
            self._callback(item)
        except Exception:
            log.exception("callback for %s failed", item.subject)


class NatsBus:
    """The `Bus` over a nats-py connection."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._subscriptions: list[NatsSubscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._handling = 0

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    @property
    def handling(self) -> int:
        # Messages read off the connection and not parsed yet wait as well: handlers run
        # as their message is parsed, one after another for the messages of one read.
        return self._handling + (1 if self.nc._ps.buf else 0)

    def new_inbox(self) -> str:
        return str(self.nc.new_inbox())

    async def publish(
        self,
        topic: Topic[M],
        message: M,
        *,
        reply: str = "",
        traced: bool = True,
        pace: Pace = "pass",
        **tokens: str,
    ) -> None:
        subject = topic.subject(**tokens)
        data = topic.codec.encode(message)
        if not traced or not recording():
            # Without recording, the trace context (the sender's, if any) travels alone.
            await self.publish_raw(subject, data, reply=reply, traced=traced, pace=pace)
            return
        with _tracer.start_as_current_span(f"publish {topic.pattern}", kind=SpanKind.PRODUCER) as span:
            _messaging(span, "send", "publish", subject, len(data))
            await self.publish_raw(subject, data, reply=reply, traced=True, pace=pace)

    async def publish_raw(
        self, subject: str, data: bytes, *, reply: str = "", traced: bool = False, pace: Pace = "pass"
    ) -> None:
        """Publish encoded bytes; used for stream frames (untraced, one task per stream).
        `pace`: when it is written (`Pace`: at the end of this loop pass, at once, or up
        to the coalescing window later)."""
        nc = self.nc
        # No trace context (nothing traced, or no span current): no header block at
        # all. An empty one would still be written, and parsed by every receiver.
        headers = (inject() or None) if traced else None
        if headers is None and isinstance(nc, _Client) and nc.publish_now(subject, data, reply, pace):
            return
        try:
            if pace != "pass" and isinstance(nc, _Client):
                nc.pace = pace
            await nc.publish(subject, data, reply=reply, headers=headers)
        except (ConnectionClosedError, OutboundBufferLimitError) as exc:
            raise BusUnavailable(f"cannot publish on {subject}: {exc}") from None

    def coalesce(self, window: float) -> None:
        """Let `"window"` publishes wait up to `window` seconds to share a write (0: never)."""
        if isinstance(self.nc, _Client):
            self.nc.lazy_window = max(0.0, window)

    async def request(self, endpoint: Endpoint[M, R], message: M, *, timeout: float, **tokens: str) -> R:
        subject = endpoint.subject(**tokens)
        if not recording():
            return await self._request(endpoint, subject, message, timeout)
        with _tracer.start_as_current_span(f"send {endpoint.pattern}", kind=SpanKind.CLIENT) as span:
            _messaging(span, "send", "request", subject)
            return await self._request(endpoint, subject, message, timeout)

    async def _request(self, endpoint: Endpoint[M, R], subject: str, message: M, timeout: float) -> R:
        try:
            data = endpoint.codec.encode(message)
            reply = await self.nc.request(subject, data, timeout=timeout, headers=inject() or None)
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
        traced: bool | None = None,
        eager: bool = False,
    ) -> Subscription:
        """Run `handler(message, delivery)` for each message, inside a consumer span that
        continues the sender's trace. At most `concurrency` run at once; the messages
        beyond wait, in order, for a place. Each handler is started as its message is read
        off the connection (`subscribe_direct`), not from the subscription's own task, as a
        task of its own or, `eager`, eagerly (`run_eagerly`, in a context of its own): it
        runs at once, up to its first wait, and a task finishes it only if it does wait.
        An eager handler has no task of its own until then (`asyncio.current_task()` is
        not its own): one that must be cancellable by itself is not eager.

        `traced`: True, a span for every message (a root span when the sender sent no
        trace context); False, never a span (the sender's context still travels on); None
        (the default), a span for a message that carries a trace context or that someone
        waits on (it has a reply subject), none for fire-and-forget messages published
        untraced: worker status every few seconds, usage counts, settlements and control
        events would otherwise each start a trace of their own."""
        codec = topic.codec
        name = f"process {topic.pattern}"
        running = 0
        waiting: deque[NatsMsg] = deque()

        def spanned(delivery: NatsMsg) -> bool:
            if traced is not None:
                return traced
            headers = delivery.headers
            return bool(delivery.reply) or bool(headers and "traceparent" in headers)

        async def run(delivery: NatsMsg) -> None:
            nonlocal running
            try:
                if not recording() or not spanned(delivery):
                    # No span to make: the sender's trace context, when it sent one, is
                    # made current so that it travels on with what the handler sends.
                    headers = delivery.headers
                    if headers and "traceparent" in headers:
                        otel_context.attach(extract(headers))
                    await dispatch(self, codec, handler, delivery)
                    return
                with _tracer.start_as_current_span(
                    name, context=extract(delivery.headers), kind=SpanKind.CONSUMER
                ) as span:
                    _messaging(span, "process", "process", delivery.subject, len(delivery.data))
                    if queue:
                        span.set_attribute("messaging.consumer.group.name", queue)
                    await dispatch(self, codec, handler, delivery)
            finally:
                running -= 1
                self._handling -= 1
                if waiting:
                    # As a task: started eagerly from the handler before it, a chain of
                    # handlers that do not wait would nest.
                    start(waiting.popleft())

        def start(delivery: NatsMsg) -> None:
            nonlocal running
            running += 1
            task = asyncio.create_task(run(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        def start_eagerly(delivery: NatsMsg) -> None:
            nonlocal running
            running += 1
            try:
                task = run_eagerly(run(delivery), contextvars.copy_context())
            except Exception:
                log.exception("handler for %s failed", delivery.subject)
                return
            if task is not None:
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        begin = start_eagerly if eager else start

        def on_message(delivery: NatsMsg) -> None:
            self._handling += 1
            if running < concurrency:
                begin(delivery)
            else:
                waiting.append(delivery)

        return await self._subscribe_direct(subject or topic.wildcard(), on_message, queue)

    async def subscribe_raw(
        self, subject: str, callback: Callable[[Delivery], Awaitable[None]], *, queue: str = ""
    ) -> Subscription:
        """A plain subscription whose callback runs inline (for inboxes: keep it short)."""
        sub = await self.nc.subscribe(subject, queue=queue, cb=callback)
        self._subscriptions.append(sub)
        return sub

    async def subscribe_direct(
        self, subject: str, callback: Callable[[Delivery], None], *, queue: str = ""
    ) -> Subscription:
        """A subscription whose callback nats-py's read loop calls for each message,
        instead of handing it to the subscription's own task through a queue: one task
        switch less per message (a stream's every chunk, at the inboxes)."""

        return await self._subscribe_direct(subject, callback, queue)

    async def _subscribe_direct(
        self, subject: str, callback: Callable[[NatsMsg], None], queue: str
    ) -> Subscription:
        async def unused(msg: NatsMsg) -> None:  # nats-py wants a callback to start its task
            callback(msg)

        sub = await self.nc.subscribe(subject, queue=queue, cb=unused)
        sub._pending_queue = _Direct(sub, callback)
        self._subscriptions.append(sub)
        return sub

    async def flush(self, timeout: int = 2) -> None:
        try:
            await self.nc.flush(timeout=max(1, timeout))
        except (NatsTimeout, ConnectionClosedError) as exc:
            raise BusUnavailable(f"flush failed: {exc}") from None

    async def settle(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the message handlers running now (the work in
        flight), then cancel those still running; how many were cancelled."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        left = [task for task in self._tasks if not task.done()]
        for task in left:
            task.cancel(STOPPING)
        if left:
            await asyncio.wait(left, timeout=1.0)
        return len(left)

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
