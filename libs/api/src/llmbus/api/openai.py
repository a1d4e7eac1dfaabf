"""The OpenAI client dialect: request validation and translation to the normalized
request; stream chunks and whole completions built from reply-stream events."""

from __future__ import annotations

import time

import msgspec

from llmbus.api.bodies import decode_body
from llmbus.api.errors import InvalidRequest
from llmbus.api.openai_wire import (
    ChatCompletion,
    ChatCompletionRequest,
    CompletionChoice,
    CompletionMessage,
    ContentPart,
    FunctionCall,
    ImageContent,
    RequestMessage,
    ToolCall,
    WireUsage,
)
from llmbus.proto import (
    ChatRequest,
    Delta,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
    Tool,
    Usage,
)
from llmbus.proto import ToolCall as NormalizedToolCall

__all__ = ["ChunkWriter", "CompletionBuilder", "decode_chat_request", "to_wire_messages"]

_request_decoder = msgspec.json.Decoder(ChatCompletionRequest)
_encode = msgspec.json.Encoder().encode


def decode_chat_request(body: bytes) -> ChatRequest:
    """Validate an OpenAI chat-completions body and return the normalized request.

    Raises InvalidRequest naming the offending field (`param`)."""
    wire = decode_body(_request_decoder, body)
    return _normalize(wire)


def _normalize(wire: ChatCompletionRequest) -> ChatRequest:
    messages = [_normalize_message(m, i) for i, m in enumerate(wire.messages)]
    tool_choice: str | NamedToolChoice | None
    if isinstance(wire.tool_choice, str) or wire.tool_choice is None:
        tool_choice = wire.tool_choice
    else:
        tool_choice = NamedToolChoice(name=wire.tool_choice.function.name)
    stop = [wire.stop] if isinstance(wire.stop, str) else list(wire.stop or [])
    return ChatRequest(
        model=wire.model,
        messages=messages,
        stream=bool(wire.stream),
        include_usage=bool(wire.stream_options and wire.stream_options.include_usage),
        max_tokens=wire.max_completion_tokens or wire.max_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        stop=stop,
        seed=wire.seed,
        presence_penalty=wire.presence_penalty,
        frequency_penalty=wire.frequency_penalty,
        user=wire.user,
        tools=[
            Tool(
                name=t.function.name,
                description=t.function.description,
                parameters=t.function.parameters,
                strict=t.function.strict,
            )
            for t in wire.tools or []
        ],
        tool_choice=tool_choice,
        parallel_tool_calls=wire.parallel_tool_calls,
        response_format=wire.response_format,
        reasoning_effort=wire.reasoning_effort,
        metadata=wire.metadata or {},
    )


def _normalize_message(message: RequestMessage, index: int) -> Message:
    content: str | list[TextPart | ImagePart] | None
    if isinstance(message.content, list):
        content = [
            ImagePart(url=part.image_url.url, detail=part.image_url.detail)
            if isinstance(part, ImageContent)
            else TextPart(text=part.text)
            for part in message.content
        ]
    else:
        content = message.content
    if message.role == "tool" and not message.tool_call_id:
        raise InvalidRequest(
            "a tool message needs `tool_call_id`",
            param=f"messages[{index}].tool_call_id",
            code="missing_field",
        )
    return Message(
        role=message.role,
        content=content,
        name=message.name,
        tool_calls=[
            NormalizedToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in message.tool_calls or []
        ],
        tool_call_id=message.tool_call_id,
        reasoning=message.reasoning_content,
    )


def to_wire_messages(messages: list[Message]) -> list[RequestMessage]:
    """Normalized messages in OpenAI's request shape (for OpenAI-compatible upstreams)."""
    out: list[RequestMessage] = []
    for message in messages:
        content: str | list[ContentPart] | None
        if isinstance(message.content, list):
            from llmbus.api.openai_wire import ImageURL, TextContent

            content = [
                ImageContent(image_url=ImageURL(url=part.url, detail=part.detail))
                if isinstance(part, ImagePart)
                else TextContent(text=part.text)
                for part in message.content
            ]
        else:
            content = message.content
        out.append(
            RequestMessage(
                role=message.role,
                content=content,
                name=message.name,
                tool_calls=[
                    ToolCall(
                        id=c.id, type="function", function=FunctionCall(name=c.name, arguments=c.arguments)
                    )
                    for c in message.tool_calls
                ]
                or None,
                tool_call_id=message.tool_call_id,
            )
        )
    return out


class ChunkWriter:
    """Encodes reply-stream events as OpenAI `chat.completion.chunk` SSE events.

    The part of each chunk before the delta is encoded once per stream."""

    __slots__ = ("_created", "_head", "_id", "_model", "_tail_null", "include_usage")

    def __init__(
        self, completion_id: str, model: str, include_usage: bool, created: int | None = None
    ) -> None:
        self._id = completion_id
        self._model = model
        self._created = created or int(time.time())
        self.include_usage = include_usage
        head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": model,
        }
        # b'data: {"id":...,"model":"m","choices":[{"index":0,"delta":'
        self._head = b"data: " + _encode(head)[:-1] + b',"choices":[{"index":0,"delta":'
        self._tail_null = b',"finish_reason":null}]' + (b',"usage":null' if include_usage else b"") + b"}\n\n"

    def role(self) -> bytes:
        return self._head + b'{"role":"assistant","content":""}' + self._tail_null

    def delta(self, event: Delta) -> bytes:
        delta: dict[str, object] = {}
        if event.text:
            delta["content"] = event.text
        if event.reasoning:
            delta["reasoning_content"] = event.reasoning
        if event.tool_calls:
            calls = []
            for call in event.tool_calls:
                item: dict[str, object] = {"index": call.index}
                function: dict[str, str] = {"arguments": call.arguments}
                if call.id:
                    item["id"] = call.id
                    item["type"] = "function"
                if call.name:
                    function["name"] = call.name
                item["function"] = function
                calls.append(item)
            delta["tool_calls"] = calls
        return self._head + _encode(delta) + self._tail_null

    def finish(self, finish_reason: str) -> bytes:
        tail = b',"finish_reason":' + _encode(finish_reason) + b"}]"
        return self._head + b"{}" + tail + (b',"usage":null' if self.include_usage else b"") + b"}\n\n"

    def usage(self, usage: Usage) -> bytes:
        body = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [],
            "usage": _usage(usage),
        }
        return b"data: " + _encode(body) + b"\n\n"

    @staticmethod
    def error(body: bytes) -> bytes:
        """An error event in the stream (the openai SDK raises it as an APIError)."""
        return b"data: " + body + b"\n\n"

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"


def _usage(usage: Usage) -> WireUsage:
    return WireUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
        prompt_tokens_details={"cached_tokens": usage.cached_tokens},
        completion_tokens_details={"reasoning_tokens": usage.reasoning_tokens},
    )


class CompletionBuilder:
    """Collects reply-stream events into one `chat.completion`."""

    def __init__(self, completion_id: str, model: str) -> None:
        self._id = completion_id
        self._model = model
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, list[str]] = {}
        self._call_meta: dict[int, tuple[str, str]] = {}
        self.usage: Usage | None = None
        self.finish_reason = "stop"

    def add(self, event: Delta) -> None:
        if event.text:
            self._text.append(event.text)
        if event.reasoning:
            self._reasoning.append(event.reasoning)
        for call in event.tool_calls:
            parts = self._calls.setdefault(call.index, [])
            parts.append(call.arguments)
            old_id, old_name = self._call_meta.get(call.index, ("", ""))
            self._call_meta[call.index] = (call.id or old_id, call.name or old_name)

    def build(self) -> bytes:
        calls = [
            ToolCall(
                id=self._call_meta[i][0],
                type="function",
                function=FunctionCall(name=self._call_meta[i][1], arguments="".join(p)),
            )
            for i, p in sorted(self._calls.items())
        ]
        message = CompletionMessage(
            content="".join(self._text) if self._text or not calls else None,
            tool_calls=calls or None,
            reasoning_content="".join(self._reasoning) or None,
        )
        completion = ChatCompletion(
            id=self._id,
            created=int(time.time()),
            model=self._model,
            choices=[CompletionChoice(message=message, finish_reason=self.finish_reason)],
            usage=_usage(self.usage) if self.usage else None,
        )
        return _encode(completion)
