"""The two hot routes, `POST /v1/chat/completions` and `POST /v1/messages`, as plain ASGI
in front of FastAPI: no dependency injection, request object, response class or
middleware stack per request (together about a third of the edge's CPU at 32 concurrent
requests). They behave as the FastAPI app would: the same server span, client key check,
body limit, errors in the client's format (`Retry-After` included), metrics, SSE headers,
and a client that goes away mid-stream cancels its call. Every other path and method is
FastAPI's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from llmbus.api import ApiError, anthropic_error_body, openai_error_body
from llmbus.edge.calls import Call
from llmbus.edge.context import EdgeContext
from llmbus.edge.deps import authenticate
from llmbus.edge.relay import (
    SSE_HEADERS,
    ClientGone,
    Dialect,
    open_call,
    read_body,
    relay_stream,
    respond_whole,
)
from llmbus.edge.routes import chat, messages
from llmbus.edge.tracing import record_status, server_span
from llmbus.proto import AnyEvent

__all__ = ["EdgeApp", "error_payload"]

log = logging.getLogger("llmbus.edge.app")

_DIALECTS: dict[str, Dialect] = {chat.PATH: chat.ChatCompletions(), messages.PATH: messages.Messages()}
_JSON = (b"content-type", b"application/json")


def error_payload(error: ApiError, anthropic: bool) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An error's body in Anthropic's or OpenAI's format, and its extra headers."""
    body = anthropic_error_body(error) if anthropic else openai_error_body(error)
    headers = [(b"retry-after", b"%d" % max(1, math.ceil(error.retry_after)))] if error.retry_after else []
    return body, headers


class EdgeApp(FastAPI):
    """FastAPI, with the hot routes answered before its middleware stack."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            dialect = _DIALECTS.get(scope["path"])
            if dialect is not None:
                await _serve(self.state.context, dialect, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


@contextlib.asynccontextmanager
async def _cancelled_if_the_client_leaves(receive: Receive) -> AsyncIterator[None]:
    """While the answer is awaited (before its first byte, or a whole answer being
    collected), a client that disconnects cancels the request: the call is closed and the
    worker aborts the upstream call, instead of an upstream that hangs holding it for the
    whole deadline."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def listen() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    listener = asyncio.create_task(listen())
    try:
        yield
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise ClientGone from None
        raise
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _serve(context: EdgeContext, dialect: Dialect, scope: Scope, receive: Receive, send: Send) -> None:
    started = time.perf_counter()
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    with server_span(scope) as span:
        responded = False
        try:
            caller = await authenticate(context, headers)
            chat = dialect.decode(await read_body(headers, receive, context.settings.max_body_bytes))
            async with _cancelled_if_the_client_leaves(receive):
                call, first = await open_call(context, chat, caller)
                answer_id = dialect.id_prefix + call.request_id
                body = (
                    None
                    if chat.stream
                    else await respond_whole(call, first, dialect.builder(answer_id, chat), started)
                )
            if body is not None:
                record_status(span, 200)
                responded = True
                await _respond(send, 200, body, [_JSON])
                return
            record_status(span, 200)
            responded = True
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await _stream(call, first, dialect, answer_id, started, receive, send)
        except ApiError as exc:
            if responded:
                raise
            record_status(span, exc.status)
            body, extra = error_payload(exc, dialect.anthropic)
            await _respond(send, exc.status, body, [*extra, _JSON])
        except ClientGone:
            return
        except Exception as exc:
            if responded:
                raise
            log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
            record_status(span, 500)
            error = ApiError("The server had an error while processing your request.")
            body, extra = error_payload(error, dialect.anthropic)
            await _respond(send, 500, body, [*extra, _JSON])


async def _stream(
    call: Call,
    first: AnyEvent,
    dialect: Dialect,
    answer_id: str,
    started: float,
    receive: Receive,
    send: Send,
) -> None:
    """Relay the stream; a client that disconnects cancels it (as Starlette's
    StreamingResponse does), which closes the call and cancels the upstream request."""
    task = asyncio.current_task()
    assert task is not None
    writing = True
    gone = False

    async def listen() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        if writing:
            gone = True
            task.cancel()

    def written() -> None:
        nonlocal writing
        writing = False
        listener.cancel()

    listener = asyncio.create_task(listen())
    try:
        await relay_stream(call, first, dialect.encoder(answer_id, call.chat), started, send, written)
    except asyncio.CancelledError:
        if not gone or task.uncancel():
            raise
