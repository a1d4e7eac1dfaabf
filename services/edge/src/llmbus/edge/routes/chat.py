"""`POST /v1/chat/completions` in OpenAI's format, streamed or whole (served by
`llmbus.edge.hot`)."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from llmbus.api import (
    ApiError,
    ChunkWriter,
    CompletionBuilder,
    decode_chat_request,
    openai_error_body,
)
from llmbus.proto import ChatRequest, Delta, Done, Usage

__all__ = ["PATH", "ChatCompletions", "OpenAIAnswer", "OpenAIChunkStream"]

PATH = "/v1/chat/completions"


class ChatCompletions:
    """The OpenAI dialect of the relay."""

    id_prefix = "chatcmpl-"
    api = "openai"

    @staticmethod
    def error_body(error: ApiError) -> bytes:
        return openai_error_body(error)

    @staticmethod
    def decode(body: bytes) -> ChatRequest:
        return decode_chat_request(body)

    @staticmethod
    def encoder(answer_id: str, chat: ChatRequest) -> _ChunkStream:
        return _ChunkStream(ChunkWriter(answer_id, chat.model, chat.include_usage))

    @staticmethod
    def builder(answer_id: str, chat: ChatRequest) -> OpenAIAnswer[CompletionBuilder]:
        return OpenAIAnswer(CompletionBuilder(answer_id, chat.model))


class _Writer(Protocol):
    """What an OpenAI-style chunk writer has (chat chunks, `text_completion` chunks)."""

    @property
    def include_usage(self) -> bool: ...

    def finish(self, reason: str) -> bytes: ...

    def usage(self, usage: Usage) -> bytes: ...

    def done(self) -> bytes: ...

    def error(self, body: bytes) -> bytes: ...


W = TypeVar("W", bound=_Writer)


class OpenAIChunkStream(Generic[W]):
    """OpenAI-style chunks as the relay's StreamEncoder: the finish chunk as soon as the
    finish reason is known, the usage chunk (when asked for) as soon as usage is, then
    `[DONE]`, in the order and at the moments an OpenAI-compatible upstream sends them.
    A subclass writes the start and the deltas of its own chunk kind."""

    __slots__ = ("_finished", "_usage_sent", "_writer")

    def __init__(self, writer: W) -> None:
        self._writer = writer
        self._finished = False
        self._usage_sent = False

    def start(self) -> bytes:
        return b""

    def delta(self, event: Delta) -> bytes:
        raise NotImplementedError

    def _finish_once(self, event: Delta) -> bytes:
        if event.finish_reason and not self._finished:
            self._finished = True
            return self._writer.finish(event.finish_reason)
        return b""

    @property
    def ends_at_finish(self) -> bool:
        return not self._writer.include_usage

    def usage(self, event: Usage) -> bytes:
        if self._finished and self._writer.include_usage and not self._usage_sent:
            self._usage_sent = True
            return self._writer.usage(event)
        return b""

    def finish(self, done: Done, usage: Usage | None) -> bytes:
        writer = self._writer
        out = b"" if self._finished else writer.finish(done.finish_reason)
        if usage is not None and writer.include_usage and not self._usage_sent:
            out += writer.usage(usage)
        return out + writer.done()

    def error(self, error: ApiError) -> bytes:
        return self._writer.error(openai_error_body(error))


class _ChunkStream(OpenAIChunkStream[ChunkWriter]):
    """Chat chunks: a role chunk first, then the deltas."""

    __slots__ = ()

    def start(self) -> bytes:
        return self._writer.role()

    def delta(self, event: Delta) -> bytes:
        has_content = event.text or event.reasoning or event.tool_calls or event.reasoning_signature
        out = self._writer.delta(event) if has_content else b""
        return out + self._finish_once(event)


class _Builder(Protocol):
    """What an OpenAI-style whole-answer builder has."""

    finish_reason: str
    usage: Usage | None

    def add(self, event: Delta) -> None: ...

    def build(self) -> bytes: ...


B = TypeVar("B", bound=_Builder)


class OpenAIAnswer(Generic[B]):
    """A whole OpenAI-style answer (`chat.completion`, `text_completion`) as the relay's
    AnswerBuilder."""

    __slots__ = ("_builder",)

    def __init__(self, builder: B) -> None:
        self._builder = builder

    def add(self, event: Delta) -> None:
        self._builder.add(event)

    def build(self, done: Done, usage: Usage | None) -> bytes:
        self._builder.finish_reason = done.finish_reason
        self._builder.usage = usage
        return self._builder.build()
