"""`POST /v1/chat/completions` in OpenAI's format, streamed or whole."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmbus.api import (
    ApiError,
    ChunkWriter,
    CompletionBuilder,
    decode_chat_request,
    openai_error_body,
)
from llmbus.edge.deps import Authenticated, Context
from llmbus.edge.relay import open_call, read_body, respond_stream, respond_whole
from llmbus.proto import Delta, Done, Usage

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, context: Context, client: Authenticated) -> Response:
    started = time.perf_counter()
    chat = decode_chat_request(await read_body(request, context.settings.max_body_bytes))
    call, first = await open_call(context, chat, client)
    completion_id = f"chatcmpl-{call.request_id}"
    if chat.stream:
        encoder = _ChunkStream(ChunkWriter(completion_id, chat.model, chat.include_usage))
        return respond_stream(call, first, encoder, started)
    return await respond_whole(
        call, first, _Completion(CompletionBuilder(completion_id, chat.model)), started
    )


class _ChunkStream:
    """OpenAI's chunks as the relay's StreamEncoder: a role chunk first, then the
    finish chunk, the usage chunk when asked for, and `[DONE]`."""

    __slots__ = ("_writer",)

    def __init__(self, writer: ChunkWriter) -> None:
        self._writer = writer

    def start(self) -> bytes:
        return self._writer.role()

    def delta(self, event: Delta) -> bytes:
        return self._writer.delta(event)

    def finish(self, done: Done, usage: Usage | None) -> bytes:
        writer = self._writer
        out = writer.finish(done.finish_reason)
        if usage is not None and writer.include_usage:
            out += writer.usage(usage)
        return out + writer.done()

    def error(self, error: ApiError) -> bytes:
        return self._writer.error(openai_error_body(error))


class _Completion:
    """OpenAI's `chat.completion` as the relay's AnswerBuilder."""

    __slots__ = ("_builder",)

    def __init__(self, builder: CompletionBuilder) -> None:
        self._builder = builder

    def add(self, event: Delta) -> None:
        self._builder.add(event)

    def build(self, done: Done, usage: Usage | None) -> bytes:
        self._builder.finish_reason = done.finish_reason
        self._builder.usage = usage
        return self._builder.build()
