"""The two hot routes, `POST /v1/chat/completions` and `POST /v1/messages`, as plain ASGI
in front of FastAPI: no dependency injection, request object, response class or
middleware stack per request (together about a third of the edge's CPU at 32 concurrent
requests). They behave as the FastAPI app would: the same server span, client key check,
body limit, errors in the client's format (`Retry-After` included), metrics, SSE headers,
and a client that goes away mid-stream cancels its call. Every other path and method is
FastAPI's."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from fastapi import FastAPI
from opentelemetry.trace import Span
from starlette.types import Message, Receive, Scope, Send

from llmbus.api import ApiError
from llmbus.edge.calls import Call
from llmbus.edge.context import EdgeContext
from llmbus.edge.deps import authenticate
from llmbus.edge.keys import Caller
from llmbus.edge.limits import ClientGone as BodyClientGone
from llmbus.edge.limits import Concurrency, check_request, limited_receive, read_body, refusal_headers
from llmbus.edge.relay import (
    CONNECTION,
    SSE_HEADERS,
    ClientGone,
    Dialect,
    FanOut,
    cancelled_if_the_client_leaves,
    open_call,
    relay_stream_to_client,
    respond_whole,
)
from llmbus.edge.routes import chat, completions, gemini, messages
from llmbus.edge.server import CONNECTION_KEY
from llmbus.edge.tracing import note_trace, record_status, server_span
from llmbus.proto import AnyEvent
from llmbus.telemetry.logs import log_requests
from llmbus.telemetry.requests import RequestInfo, new_request, reset_request

__all__ = ["EdgeApp", "error_payload"]

log = logging.getLogger("llmbus.edge.app")

_DIALECTS: dict[str, Dialect] = {
    chat.PATH: chat.ChatCompletions(),
    messages.PATH: messages.Messages(),
    completions.PATH: completions.Completions(),
}
_JSON = (b"content-type", b"application/json")


def error_payload(
    error: ApiError, encode: Callable[[ApiError], bytes]
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An error's body in a client API's format (`encode`), and its extra headers."""
    body = encode(error)
    headers = [(b"retry-after", b"%d" % max(1, math.ceil(error.retry_after)))] if error.retry_after else []
    return body, headers


class EdgeApp(FastAPI):
    """FastAPI, with the hot routes answered before its middleware stack, and every
    other route's body read within the same size and time limits."""

    concurrency: Concurrency
    """Chat requests in flight (set by `create_app` from the settings)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # Every response names its request (`x-request-id`, ours; a client's own
        # well-formed `x-request-id` comes back as `x-client-request-id`): the same id is
        # the request id on the bus, on the server span and on every log line about it.
        info, token = new_request(_header(scope, b"x-request-id"))
        ids = [(b"x-request-id", info.id.encode())]
        if info.client_id is not None:
            ids.append((b"x-client-request-id", info.client_id.encode()))
        started = time.perf_counter()
        status = 0
        current = scope.get(CONNECTION_KEY)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), *ids]}
            await send(message)
            if kind == "http.response.body" and current is not None and not message.get("more_body", False):
                # The answer is complete: it goes out now, not after what the rest of the
                # loop's pass does (the request's own teardown first of all).
                current.flush()

        connection = CONNECTION.set(current)
        try:
            await self._http(scope, receive, send_with_id)
        finally:
            if _LOG_REQUESTS and scope["path"] not in _QUIET:
                _log_request(scope, status, started, info)
            CONNECTION.reset(connection)
            reset_request(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "POST":
            # Gemini's paths name the model and method: `/v1beta/models/{model}:…`.
            dialect = _DIALECTS.get(scope["path"]) or gemini.dialect_for(scope)
            if dialect is not None:
                await _serve(self.state.context, self.concurrency, dialect, scope, receive, send)
                return
        if method not in _BODILESS:
            settings = self.state.context.settings
            length = _header(scope, b"content-length")
            receive = limited_receive(
                {"content-length": length} if length is not None else {},
                receive,
                settings.max_body_bytes,
                settings.body_timeout,
            )
        await super().__call__(scope, receive, send)


_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOG_REQUESTS = log_requests()
"""Whether a line is logged per finished request (`LLMBUS_LOG_REQUESTS`)."""
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})
_requests_log = logging.getLogger("llmbus.requests")


def _log_request(scope: Scope, status: int, started: float, info: RequestInfo) -> None:
    """One line per finished request: never a body, a header or the query string."""
    fields: dict[str, object] = {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "request_id": info.id,
    }
    if info.model:
        fields["model"] = info.model
    if info.trace_id:
        fields["trace_id"] = info.trace_id
    if info.client_id is not None:
        fields["client_request_id"] = info.client_id
    others = [bus_id for bus_id in info.bus_ids if bus_id != info.id]
    if others:
        fields["bus_request_ids"] = others
    _requests_log.info(
        "%s %s %d %.1fms",
        scope["method"],
        scope["path"],
        status,
        fields["duration_ms"],
        extra={"fields": fields},
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Progress:
    """Whether the response has started (an error after that cannot be an HTTP status)."""

    __slots__ = ("responded",)

    def __init__(self) -> None:
        self.responded = False


async def _serve(
    context: EdgeContext,
    concurrency: Concurrency,
    dialect: Dialect,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    started = time.perf_counter()
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    with server_span(scope) as span:
        note_trace(span)
        progress = _Progress()
        try:
            # Places among all requests, then among the key's, held until the request
            # ends however it ends (the context managers release them).
            with concurrency.request():
                caller = await authenticate(context, headers)
                with concurrency.key(caller.client.id):
                    await _answer(context, dialect, caller, headers, started, span, progress, receive, send)
        except ApiError as exc:
            if progress.responded:
                raise
            record_status(span, exc.status)
            body, extra = error_payload(exc, dialect.error_body)
            await _respond(send, exc.status, body, [*extra, *refusal_headers(exc), _JSON])
        except (ClientGone, BodyClientGone):
            return
        except Exception as exc:
            if progress.responded:
                raise
            log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
            record_status(span, 500)
            error = ApiError("The server had an error while processing your request.")
            body, extra = error_payload(error, dialect.error_body)
            await _respond(send, 500, body, [*extra, _JSON])


async def _answer(
    context: EdgeContext,
    dialect: Dialect,
    caller: Caller,
    headers: dict[str, str],
    started: float,
    span: Span,
    progress: _Progress,
    receive: Receive,
    send: Send,
) -> None:
    settings = context.settings
    body = await read_body(headers, receive, settings.max_body_bytes, settings.body_timeout)
    try:
        chat = dialect.decode(body)
    except FanOut as fan:  # several requests in one body, answered together

        def responded() -> None:
            record_status(span, 200)
            progress.responded = True

        await fan.serve(context, caller, headers, started, receive, send, responded)
        return
    del body
    check_request(chat, settings)

    async def deliver(whole: bytes) -> None:
        record_status(span, 200)
        progress.responded = True
        await _respond(send, 200, whole, [_JSON])

    async with cancelled_if_the_client_leaves(receive):
        call, first = await open_call(context, chat, caller, headers, api=dialect.api)
        answer_id = dialect.id_prefix + call.request_id
        if not chat.stream:
            await respond_whole(call, first, dialect.builder(answer_id, chat), started, deliver)
            return
    record_status(span, 200)
    progress.responded = True
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    await _stream(call, first, dialect, answer_id, started, receive, send)


async def _stream(
    call: Call,
    first: AnyEvent,
    dialect: Dialect,
    answer_id: str,
    started: float,
    receive: Receive,
    send: Send,
) -> None:
    """Relay the stream; a client that disconnects cancels it."""
    await relay_stream_to_client(call, first, dialect.encoder(answer_id, call.chat), started, receive, send)
