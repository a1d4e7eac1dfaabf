"""OpenAI chat-completions wire types, as clients send them and as OpenAI-compatible
upstreams answer. Shared by the edge (client dialect) and the OpenAI-compatible adapter
(upstream dialect)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "TOKENS_MAX",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChunkChoice",
    "ChunkDelta",
    "ChunkFunction",
    "ChunkToolCall",
    "CompletionChoice",
    "CompletionMessage",
    "ContentPart",
    "FunctionCall",
    "FunctionDefinition",
    "ImageContent",
    "ImageURL",
    "NamedToolChoice",
    "RequestMessage",
    "StreamOptions",
    "TextContent",
    "ToolCall",
    "ToolChoiceFunction",
    "ToolDefinition",
    "WireUsage",
]


TOKENS_MAX = 2**31 - 1
"""The largest token count a request may name: beyond any model's window, and within
what every hop encodes (a larger number is a clear 400, not an overflow)."""


class _In(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of request types: unknown fields ignored, unset fields left out when encoded."""


class TextContent(_In, tag="text", tag_field="type", kw_only=True):
    text: str


class ImageURL(_In, kw_only=True):
    url: str
    detail: str | None = None


class ImageContent(_In, tag="image_url", tag_field="type", kw_only=True):
    image_url: ImageURL


ContentPart = TextContent | ImageContent


class FunctionCall(_In, kw_only=True):
    name: str
    arguments: str = ""


class ToolCall(_In, kw_only=True):
    id: str
    type: Literal["function"]
    function: FunctionCall


class RequestMessage(_In, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class FunctionDefinition(_In, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_In, kw_only=True):
    type: Literal["function"]
    function: FunctionDefinition


class ToolChoiceFunction(_In, kw_only=True):
    name: str


class NamedToolChoice(_In, kw_only=True):
    type: Literal["function"]
    function: ToolChoiceFunction


class StreamOptions(_In, kw_only=True):
    include_usage: bool = False


class ChatCompletionRequest(_In, kw_only=True):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[RequestMessage], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=TOKENS_MAX)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1, le=TOKENS_MAX)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=1)] | None = None
    stop: str | list[str] | None = None
    seed: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | None = None
    presence_penalty: Annotated[float, msgspec.Meta(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, msgspec.Meta(ge=-2, le=2)] | None = None
    user: str | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    metadata: dict[str, str] | None = None


class WireUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class CompletionMessage(msgspec.Struct, kw_only=True):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class CompletionChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    message: CompletionMessage
    finish_reason: str | None = None
    logprobs: Any = None


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[CompletionChoice] = []
    usage: WireUsage | None = None


class ChunkFunction(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(msgspec.Struct, kw_only=True, omit_defaults=True):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: ChunkFunction | None = None


class ChunkDelta(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_text: str | None = None
    tool_calls: list[ChunkToolCall] | None = None
    refusal: str | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    delta: ChunkDelta = msgspec.field(default_factory=ChunkDelta)
    finish_reason: str | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = []
    usage: WireUsage | None = None
    error: dict[str, Any] | None = None
