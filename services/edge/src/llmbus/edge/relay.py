"""What every chat dialect's route shares: the body read within its size limit, the call
started and its first event awaited (so that a failure before the first byte is still an
HTTP error), the reply stream relayed as SSE or collected into one answer, and the
metrics, which count every dialect alike.

A dialect brings only its encoding: a `StreamEncoder` for SSE, an `AnswerBuilder` for a
whole answer. The routes speak plain ASGI (`llmbus.edge.hot`): the stream is written to
`send` as it comes, one message per event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Protocol

from opentelemetry import trace
from prometheus_client import Counter, Histogram
from starlette.types import Receive, Send

from llmbus.api import ApiError
from llmbus.edge.calls import Call, client_timeouts, raise_for, report_refusal, report_usage
from llmbus.edge.context import EdgeContext
from llmbus.edge.keys import Caller
from llmbus.edge.limits import apply_key_limits
from llmbus.edge.quota import estimate, reserve, settle
from llmbus.edge.server import Connection
from llmbus.proto import AnyEvent, ChatRequest, Delta, Done, Error, Started, Usage
from llmbus.telemetry.requests import request_id

__all__ = [
    "CONNECTION",
    "DURATION",
    "FIRST_TOKEN",
    "REQUESTS",
    "SSE_HEADERS",
    "AnswerBuilder",
    "ClientGone",
    "Dialect",
    "FanOut",
    "StreamEncoder",
    "cancelled_if_the_client_leaves",
    "open_call",
    "relay_stream",
    "relay_stream_to_client",
    "respond_whole",
]

REQUESTS = Counter("llmbus_edge_requests_total", "Chat requests", ["model", "status"])
UNROUTED = "_unrouted"
"""The model label of requests that no provider took (unknown models, refused keys)."""
DURATION = Histogram("llmbus_edge_request_seconds", "Chat request duration", ["model"])
FIRST_TOKEN = Histogram("llmbus_edge_first_token_seconds", "Time to the first streamed delta", ["model"])

SSE_HEADERS = [
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"content-type", b"text/event-stream; charset=utf-8"),
]
"""The headers of an SSE response (as Starlette's StreamingResponse wrote them)."""


class Dialect(Protocol):
    """What a chat route of one client API brings: its request decoder, its encodings
    and the prefix of its answers' ids (`chatcmpl-`, `msg_`)."""

    id_prefix: str
    api: str
    """The client API's name in usage records: `openai`, `anthropic`, `gemini`, `completions`."""

    def error_body(self, error: ApiError) -> bytes:
        """An error answered before the stream began, in the client API's own body."""
        ...

    def decode(self, body: bytes) -> ChatRequest: ...

    def encoder(self, answer_id: str, chat: ChatRequest) -> StreamEncoder: ...

    def builder(self, answer_id: str, chat: ChatRequest) -> AnswerBuilder: ...


class ClientGone(Exception):
    """The client went away before its request was read: nobody to answer."""


CONNECTION: ContextVar[Connection | None] = ContextVar("llmbus_connection", default=None)
"""The current request's `Connection`, when the edge's own protocol serves it (set by
`EdgeApp`); without it, a task per request waits on `receive()` for the disconnect."""


class _Cancelling:
    """Cancels the current task when the client's connection is lost, until `stop()`."""

    __slots__ = ("_listener", "_task", "_watch", "fired")

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self.fired = False
        self._listener: asyncio.Task[None] | None = None
        self._watch = watch = CONNECTION.get()
        if watch is None:
            self._listener = asyncio.create_task(self._listen(receive))
        elif watch.lost:
            self._fire()
        else:
            watch.on_lost = self._fire

    def _fire(self) -> None:
        self.fired = True
        self._task.cancel()

    async def _listen(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._fire()

    def stop(self) -> None:
        """The client may leave from now on without cancelling anything."""
        if self._watch is not None:
            self._watch.on_lost = None
        elif self._listener is not None:
            self._listener.cancel()

    async def stopped(self) -> None:
        self.stop()
        if self._listener is not None:
            await asyncio.gather(self._listener, return_exceptions=True)

    def absorbs(self) -> bool:
        """Whether a CancelledError the task got is this one's (the client left) and no
        other cancellation is pending."""
        return self.fired and self._task.uncancel() == 0


class _UntilTheClientLeaves:
    __slots__ = ("_cancelling", "_receive")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._cancelling: _Cancelling | None = None

    async def __aenter__(self) -> None:
        self._cancelling = _Cancelling(self._receive)

    async def __aexit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> None:
        cancelling = self._cancelling
        assert cancelling is not None
        await cancelling.stopped()
        if kind is not None and issubclass(kind, asyncio.CancelledError) and cancelling.absorbs():
            raise ClientGone from None


def cancelled_if_the_client_leaves(receive: Receive) -> _UntilTheClientLeaves:
    """While the answer is awaited (before its first byte, or a whole answer being
    collected), a client that disconnects cancels the request: the call is closed and the
    worker aborts the upstream call, instead of an upstream that hangs holding it for the
    whole deadline. Raises ClientGone then."""
    return _UntilTheClientLeaves(receive)


class FanOut(Exception):
    """Raised by a dialect's `decode` for a body that is several requests at once (legacy
    completions with a list of prompts): the hot path lets `serve` answer it. `responded`
    is called just before the response starts (an error after it is no HTTP status)."""

    async def serve(
        self,
        context: EdgeContext,
        caller: Caller,
        headers: Mapping[str, str],
        started: float,
        receive: Receive,
        send: Send,
        responded: Callable[[], None],
    ) -> None:
        raise NotImplementedError


class StreamEncoder(Protocol):
    """A dialect's SSE encoding of one reply stream."""

    def start(self) -> bytes:
        """What the client receives before the first delta."""
        ...

    def delta(self, event: Delta) -> bytes: ...

    def usage(self, event: Usage) -> bytes:
        """What the client hears of usage when it arrives (before the end, if anything)."""
        ...

    @property
    def ends_at_finish(self) -> bool:
        """Whether the client's stream is complete once the finish reason is written
        (nothing it asked for comes after): the relay then ends it at once."""
        ...

    def finish(self, done: Done, usage: Usage | None) -> bytes:
        """The end of a good stream; `usage` is the last Usage event, if any came."""
        ...

    def error(self, error: ApiError) -> bytes:
        """The end of a stream that failed after its first byte."""
        ...


class AnswerBuilder(Protocol):
    """A dialect's whole (non-streamed) answer, collected from the reply stream."""

    def add(self, event: Delta) -> None: ...

    def build(self, done: Done, usage: Usage | None) -> bytes: ...


_CLIENT_GONE = "client_closed_request"
"""The error code of a request whose client went away before its answer ended (499)."""


async def open_call(
    context: EdgeContext,
    chat: ChatRequest,
    caller: Caller,
    headers: Mapping[str, str] | None = None,
    *,
    api: str = "",
) -> tuple[Call, AnyEvent]:
    """Publish the request and wait for its first event (normally `Started`).

    `headers` (the request's, lower-case names) may shorten its deadlines
    (`x-llmbus-timeout`, the SDKs' announced timeouts); `api` names the client API in the
    request's usage record. Raises the ApiError of a request that the caller's key does
    not allow, and of a failure before the first byte (no worker, unknown model, upstream
    refused), counted, recorded and with the call closed."""
    settings = context.settings
    began = time.perf_counter()
    try:
        total, first_byte = client_timeouts(
            headers or {}, chat.stream, settings.request_timeout, settings.first_byte_timeout
        )
        chat = apply_key_limits(chat, caller.limits)
        tokens = estimate(chat)
        reservation = await reserve(context.bus, caller, tokens)
    except ApiError as exc:
        report_refusal(context.usage, caller.client, chat, api, began, exc)
        raise
    span = trace.get_current_span()
    span.set_attribute("llmbus.model", chat.model)
    span.set_attribute("llmbus.stream", chat.stream)
    call = Call(
        context.bus,
        context.inbox,
        chat,
        caller.client,
        accept_timeout=settings.accept_timeout,
        idle_timeout=settings.idle_timeout,
        request_timeout=total,
        first_byte_timeout=first_byte,
        tokens=tokens,
        reservation=reservation,
        usage=context.usage,
        api=api,
    )
    if call.request_id != request_id():  # another call of the same HTTP request
        span.add_event("llmbus.call", {"llmbus.bus_request_id": call.request_id})
    routed = False
    seen: AnyEvent | None = None
    try:
        await call.start()
        first = seen = await call.next()
        # Only a model some provider serves becomes a metrics label: any name a client
        # sends would otherwise grow /metrics without bound.
        routed = isinstance(first, Started) or (isinstance(first, Error) and bool(first.provider))
        if isinstance(first, Error):
            raise raise_for(first)
        if isinstance(first, Started):
            call.provider = first.provider
            span.set_attribute("llmbus.provider", first.provider)
            span.set_attribute("llmbus.upstream_model", first.model)
    except ApiError as exc:
        REQUESTS.labels(chat.model if routed else UNROUTED, str(exc.status)).inc()
        await call.close()
        report_usage(call, seen, None, exc.status, exc.code)
        await settle(call.bus, call.reservation, None, answered=False)
        raise
    except BaseException as exc:
        await call.close()
        if isinstance(exc, asyncio.CancelledError):
            report_usage(call, seen, None, 499, _CLIENT_GONE)
        else:
            report_usage(call, seen, None, 500, "internal_error")
        await settle(call.bus, call.reservation, None, answered=False)
        raise
    return call, first


async def respond_whole(
    call: Call,
    first: AnyEvent,
    builder: AnswerBuilder,
    started: float,
    deliver: Callable[[bytes], Awaitable[None]] | None = None,
) -> bytes:
    """The reply stream collected into one JSON answer. Given `deliver`, the answer is
    handed to it as soon as it is built, and the request's records (metrics, usage, the
    quota's settlement) are made after it: the client does not wait for them."""
    model = call.chat.model
    status = "200"
    error = ""
    usage: Usage | None = None
    event = first
    try:
        while True:
            match event:
                case Delta():
                    builder.add(event)
                case Usage():
                    usage = event
                case Done():
                    call.finished = True
                    body = builder.build(event, usage)
                    if deliver is not None:
                        await deliver(body)
                    return body
                case Error():
                    raise raise_for(event)
            event = await call.next()
    except ApiError as exc:
        status, error = str(exc.status), exc.code
        raise
    finally:
        if not call.finished and status == "200":
            status, error = "499", _CLIENT_GONE
        REQUESTS.labels(model, status).inc()
        DURATION.labels(model).observe(time.perf_counter() - started)
        await call.close()
        report_usage(call, first, usage, int(status), error)
        await settle(call.bus, call.reservation, usage, answered=isinstance(first, Started))


async def _answer_complete(
    call: Call,
    encoder: StreamEncoder,
    finish: Delta,
    pending: list[bytes],
    send: Send,
    written: Callable[[], object],
) -> Usage | None:
    """The client's answer is complete at its finish reason (it asked for no usage, so
    nothing but the end follows): end its response now rather than when the upstream's
    usage and end arrive, then read the rest of the reply stream for the accounting.
    Returns the usage, if it came."""
    pending.append(encoder.finish(Done(seq=0, finish_reason=finish.finish_reason), None))
    await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
    written()  # the client may go now: that no longer cancels the upstream call
    usage: Usage | None = None
    try:
        while True:
            event = await call.next()
            if isinstance(event, Usage):
                usage = event
            elif isinstance(event, Done | Error):
                break
    except ApiError:
        pass  # the answer was complete; only its usage is lost
    call.finished = True
    return usage


async def relay_stream_to_client(
    call: Call, first: AnyEvent, encoder: StreamEncoder, started: float, receive: Receive, send: Send
) -> None:
    """`relay_stream`, with a client that disconnects before the last event cancelling it
    (as Starlette's StreamingResponse does), which closes the call and cancels the
    upstream request."""
    cancelling = _Cancelling(receive)
    try:
        await relay_stream(call, first, encoder, started, send, cancelling.stop)
    except asyncio.CancelledError:
        if not cancelling.absorbs():
            raise


async def relay_stream(
    call: Call,
    first: AnyEvent,
    encoder: StreamEncoder,
    started: float,
    send: Send,
    written: Callable[[], object],
) -> None:
    """The reply stream written to `send` as SSE, after the response has started; a
    failure after the first byte ends it with the dialect's error event. The last event
    ends the response (`more_body` false); `written()` is called once nothing more will
    be sent, before the call is closed."""
    model = call.chat.model
    usage: Usage | None = None
    status = "200"
    error = ""
    awaiting_first_delta = True
    event = first
    # Events whose frames have arrived already go out in one write: no wait for any
    # frame, one syscall instead of one per event when a stream comes in bursts.
    pending = [encoder.start()]
    # The response's head and first events are written at once, not at the end of the
    # loop's pass: the client's first token waits on them.
    connection = CONNECTION.get()
    flush = connection.flush if connection is not None else None
    try:
        while True:
            match event:
                case Delta():
                    if awaiting_first_delta:
                        call.first_token_at = time.perf_counter()
                        FIRST_TOKEN.labels(model).observe(call.first_token_at - started)
                        awaiting_first_delta = False
                    pending.append(encoder.delta(event))
                    if event.finish_reason and encoder.ends_at_finish:
                        usage = await _answer_complete(call, encoder, event, pending, send, written)
                        return
                case Usage():
                    usage = event
                    pending.append(encoder.usage(event))
                case Done():
                    call.finished = True
                    pending.append(encoder.finish(event, usage))
                    break
                case Error():
                    status, error = str(event.status), event.code
                    pending.append(encoder.error(raise_for(event)))
                    break
            try:
                ready = call.next_nowait()
                if ready is None:
                    body = b"".join(pending)
                    pending.clear()
                    if body:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                        if flush is not None:
                            flush()
                            if not awaiting_first_delta:
                                flush = None
                    ready = await call.next()
                event = ready
            except ApiError as exc:
                status, error = str(exc.status), exc.code
                pending.append(encoder.error(exc))
                break
        await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
    finally:
        written()
        if not call.finished and status == "200":
            status, error = "499", _CLIENT_GONE
        REQUESTS.labels(model, status).inc()
        DURATION.labels(model).observe(time.perf_counter() - started)
        await call.close()
        report_usage(call, first, usage, int(status), error)
        await settle(call.bus, call.reservation, usage, answered=isinstance(first, Started))
