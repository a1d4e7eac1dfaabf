"""`POST /v1/chat/completions` in OpenAI's format, streamed or whole."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from opentelemetry import trace
from prometheus_client import Counter, Histogram

from llmbus.api import (
    ApiError,
    ChunkWriter,
    CompletionBuilder,
    InvalidRequest,
    decode_chat_request,
    openai_error_body,
)
from llmbus.edge.calls import Call, raise_for
from llmbus.edge.deps import Authenticated, Context
from llmbus.proto import Delta, Done, Error, Started, Usage

__all__ = ["router"]

router = APIRouter()

REQUESTS = Counter("llmbus_edge_requests_total", "Chat requests", ["model", "status"])
DURATION = Histogram("llmbus_edge_request_seconds", "Chat request duration", ["model"])
FIRST_TOKEN = Histogram("llmbus_edge_first_token_seconds", "Time to the first streamed delta", ["model"])

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise InvalidRequest(f"the body is larger than {limit} bytes", code="body_too_large", status=413)
    body = await request.body()
    if len(body) > limit:
        raise InvalidRequest(f"the body is larger than {limit} bytes", code="body_too_large", status=413)
    return body


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, context: Context, client: Authenticated) -> Response:
    started = time.perf_counter()
    chat = decode_chat_request(await _read_body(request, context.settings.max_body_bytes))
    span = trace.get_current_span()
    span.set_attribute("llmbus.model", chat.model)
    span.set_attribute("llmbus.stream", chat.stream)
    settings = context.settings
    call = Call(
        context.bus,
        context.inbox,
        chat,
        client,
        accept_timeout=settings.accept_timeout,
        idle_timeout=settings.idle_timeout,
        request_timeout=settings.request_timeout,
    )
    span.set_attribute("llmbus.request_id", call.request_id)
    try:
        await call.start()
        first = await call.next()
        if isinstance(first, Error):
            raise raise_for(first)
        if isinstance(first, Started):
            span.set_attribute("llmbus.provider", first.provider)
            span.set_attribute("llmbus.upstream_model", first.model)
    except ApiError as exc:
        REQUESTS.labels(chat.model, str(exc.status)).inc()
        await call.close()
        raise
    except BaseException:
        await call.close()
        raise
    if chat.stream:
        return StreamingResponse(_stream(call, started), media_type="text/event-stream", headers=_SSE_HEADERS)
    try:
        return Response(await _collect(call, first), media_type="application/json")
    finally:
        DURATION.labels(chat.model).observe(time.perf_counter() - started)
        await call.close()


async def _collect(call: Call, first: object) -> bytes:
    builder = CompletionBuilder(f"chatcmpl-{call.request_id}", call.chat.model)
    event = first
    while True:
        match event:
            case Delta():
                builder.add(event)
            case Usage():
                builder.usage = event
            case Done():
                builder.finish_reason = event.finish_reason
                REQUESTS.labels(call.chat.model, "200").inc()
                call.finished = True
                return builder.build()
            case Error():
                REQUESTS.labels(call.chat.model, str(event.status)).inc()
                raise raise_for(event)
        event = await call.next()


async def _stream(call: Call, started: float) -> AsyncIterator[bytes]:
    chat = call.chat
    writer = ChunkWriter(f"chatcmpl-{call.request_id}", chat.model, chat.include_usage)
    usage: Usage | None = None
    status = "200"
    first = True
    try:
        yield writer.role()
        while True:
            try:
                event = await call.next()
            except ApiError as exc:
                status = str(exc.status)
                yield writer.error(openai_error_body(exc))
                return
            match event:
                case Delta():
                    if first:
                        FIRST_TOKEN.labels(chat.model).observe(time.perf_counter() - started)
                        first = False
                    yield writer.delta(event)
                case Usage():
                    usage = event
                case Done():
                    call.finished = True
                    yield writer.finish(event.finish_reason)
                    if usage is not None and chat.include_usage:
                        yield writer.usage(usage)
                    yield writer.done()
                    return
                case Error():
                    status = str(event.status)
                    yield writer.error(openai_error_body(raise_for(event)))
                    return
    finally:
        REQUESTS.labels(chat.model, status if call.finished or status != "200" else "499").inc()
        DURATION.labels(chat.model).observe(time.perf_counter() - started)
        await call.close()
