"""Anthropic Messages API wire types (`POST /v1/messages`, `anthropic-version: 2023-06-01`),
as the upstream adapter sends and reads them. Field names follow Anthropic's API reference
and the official SDK (`anthropic.types`).

Request types are tagged unions on `type` that leave unset fields out. Answer types are
deliberately loose where Anthropic keeps adding variants: a content block or a delta is
one Struct with a `type` string and the optional fields of the kinds we use, so that a new
block kind (server tools, citations, compaction, ...) is skipped, not a decoding failure.
Stream events are decoded by their SSE event name, for the same reason.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "AnyToolChoice",
    "AutoToolChoice",
    "Base64Source",
    "ContentBlock",
    "ContentBlockDelta",
    "ContentBlockStart",
    "EnabledThinking",
    "ErrorBody",
    "ErrorDetail",
    "ImageBlock",
    "InputBlock",
    "JsonSchemaFormat",
    "Message",
    "MessageDelta",
    "MessageDeltaFields",
    "MessageStart",
    "MessagesRequest",
    "Metadata",
    "NoToolChoice",
    "OutputConfig",
    "OutputTokensDetails",
    "TextBlock",
    "ThinkingBlock",
    "ToolChoice",
    "ToolDefinition",
    "ToolResultBlock",
    "ToolUseBlock",
    "TurnMessage",
    "UrlSource",
    "WireDelta",
    "WireUsage",
]


class _Out(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of request types: unset (default) fields are left out of the JSON."""


# --- request -----------------------------------------------------------------------------


class TextBlock(_Out, tag="text", tag_field="type", kw_only=True):
    text: str


class Base64Source(_Out, tag="base64", tag_field="type", kw_only=True):
    media_type: str
    data: str


class UrlSource(_Out, tag="url", tag_field="type", kw_only=True):
    url: str


class ImageBlock(_Out, tag="image", tag_field="type", kw_only=True):
    source: Base64Source | UrlSource


class ToolUseBlock(_Out, tag="tool_use", tag_field="type", kw_only=True):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Out, tag="tool_result", tag_field="type", kw_only=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool = False


class ThinkingBlock(_Out, tag="thinking", tag_field="type", kw_only=True):
    """A thinking block sent back on a later turn; the signature must be unchanged."""

    thinking: str
    signature: str


InputBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock


class TurnMessage(_Out, kw_only=True):
    """One turn of `messages`: roles must alternate, user first."""

    role: Literal["user", "assistant"]
    content: list[InputBlock]


class ToolDefinition(_Out, kw_only=True):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class AutoToolChoice(_Out, tag="auto", tag_field="type", kw_only=True):
    disable_parallel_tool_use: bool = False


class AnyToolChoice(_Out, tag="any", tag_field="type", kw_only=True):
    """OpenAI's `required`: some tool must be called."""

    disable_parallel_tool_use: bool = False


class NamedToolChoice(_Out, tag="tool", tag_field="type", kw_only=True):
    name: str
    disable_parallel_tool_use: bool = False


class NoToolChoice(_Out, tag="none", tag_field="type", kw_only=True):
    pass


ToolChoice = AutoToolChoice | AnyToolChoice | NamedToolChoice | NoToolChoice


class EnabledThinking(_Out, tag="enabled", tag_field="type", kw_only=True):
    budget_tokens: int


class Metadata(_Out, kw_only=True):
    user_id: str


class JsonSchemaFormat(_Out, tag="json_schema", tag_field="type", kw_only=True):
    schema: dict[str, Any]


class OutputConfig(_Out, kw_only=True):
    """Structured outputs (generally available: no beta header)."""

    format: JsonSchemaFormat


class MessagesRequest(_Out, kw_only=True):
    model: str
    max_tokens: int
    messages: list[TurnMessage]
    system: list[TextBlock] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    thinking: EnabledThinking | None = None
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None


# --- answers -----------------------------------------------------------------------------


class _In(msgspec.Struct, kw_only=True):
    """Base of answer types: unknown fields are ignored."""


class ContentBlock(_In, kw_only=True):
    """Any content block of an answer; which fields are set depends on `type` (`text`,
    `thinking`, `redacted_thinking`, `tool_use`, server tool blocks, ...)."""

    type: str
    text: str = ""
    thinking: str = ""
    signature: str = ""
    id: str = ""
    name: str = ""
    input: dict[str, Any] | None = None


class OutputTokensDetails(_In, kw_only=True):
    thinking_tokens: int = 0


class WireUsage(_In, kw_only=True):
    """Token counts. In `message_delta` every field is cumulative and any may be absent."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: OutputTokensDetails | None = None


class Message(_In, kw_only=True):
    """A whole answer (`"type": "message"`), also the `message` of `message_start`."""

    id: str = ""
    type: str = "message"
    model: str = ""
    content: list[ContentBlock] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: WireUsage = msgspec.field(default_factory=WireUsage)


class MessageStart(_In, kw_only=True):
    message: Message


class ContentBlockStart(_In, kw_only=True):
    index: int
    content_block: ContentBlock


class WireDelta(_In, kw_only=True):
    """A `content_block_delta`'s delta: `text_delta`, `input_json_delta`, `thinking_delta`,
    `signature_delta`, `citations_delta`, ..."""

    type: str
    text: str = ""
    partial_json: str = ""
    thinking: str = ""
    signature: str = ""


class ContentBlockDelta(_In, kw_only=True):
    index: int
    delta: WireDelta


class MessageDeltaFields(_In, kw_only=True):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class MessageDelta(_In, kw_only=True):
    delta: MessageDeltaFields = msgspec.field(default_factory=MessageDeltaFields)
    usage: WireUsage | None = None


class ErrorDetail(_In, kw_only=True):
    type: str = ""
    message: str = ""


class ErrorBody(_In, kw_only=True):
    """`{"type": "error", "error": {"type", "message"}, "request_id"}`: an error status's
    body, and the data of a mid-stream `event: error`."""

    error: ErrorDetail
    request_id: str | None = None
