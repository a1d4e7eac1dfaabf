"""`POST /v1/completions` (OpenAI's legacy completions), streamed or whole (served by
`llmbus.edge.hot`): the prompt goes through the normalized request like any chat."""

from __future__ import annotations

from llmbus.api import ApiError, openai_error_body
from llmbus.api.completions import TextChunkWriter, TextCompletionBuilder, decode_completion_request
from llmbus.proto import ChatRequest, Delta, Done, Usage

__all__ = ["PATH", "Completions"]

PATH = "/v1/completions"


class Completions:
    """The legacy-completions dialect of the relay."""

    id_prefix = "cmpl-"

    @staticmethod
    def error_body(error: ApiError) -> bytes:
        return openai_error_body(error)

    @staticmethod
    def decode(body: bytes) -> ChatRequest:
        return decode_completion_request(body)

    @staticmethod
    def encoder(answer_id: str, chat: ChatRequest) -> _TextStream:
        return _TextStream(TextChunkWriter(answer_id, chat.model, chat.include_usage))

    @staticmethod
    def builder(answer_id: str, chat: ChatRequest) -> _TextAnswer:
        return _TextAnswer(TextCompletionBuilder(answer_id, chat.model))


class _TextStream:
    """`text_completion` chunks as the relay's StreamEncoder: the text as it comes, the
    finish chunk as soon as the finish reason is known, the usage chunk (when asked
    for), then `[DONE]`."""

    __slots__ = ("_finished", "_usage_sent", "_writer")

    def __init__(self, writer: TextChunkWriter) -> None:
        self._writer = writer
        self._finished = False
        self._usage_sent = False

    def start(self) -> bytes:
        return b""

    def delta(self, event: Delta) -> bytes:
        out = self._writer.text(event.text) if event.text else b""
        if event.finish_reason and not self._finished:
            self._finished = True
            out += self._writer.finish(event.finish_reason)
        return out

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


class _TextAnswer:
    """One `text_completion` as the relay's AnswerBuilder."""

    __slots__ = ("_builder",)

    def __init__(self, builder: TextCompletionBuilder) -> None:
        self._builder = builder

    def add(self, event: Delta) -> None:
        self._builder.add(event)

    def build(self, done: Done, usage: Usage | None) -> bytes:
        self._builder.finish_reason = done.finish_reason
        self._builder.usage = usage
        return self._builder.build()
