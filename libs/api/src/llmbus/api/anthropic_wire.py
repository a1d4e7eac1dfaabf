"""Anthropic Messages wire types: the request clients send to `POST /v1/messages` and
`/v1/messages/count_tokens`, the whole `message` answered, the stream events and the
error body. Shared by the edge (client dialect) and any Anthropic-speaking upstream.

Request types ignore unknown fields (`cache_control`, `citations`, ...) so that clients
sending newer or cache-related options are not refused for what makes no difference to
the answer; what would change the answer and cannot be honoured (documents, file
sources, server tools) is declared here so that the dialect can refuse it by name.

Content blocks (tagged by `type`)::

    request                              response / stream
    ├── text           TextBlock         ├── text       TextBlock
    ├── image          ImageBlock        ├── thinking   ThinkingBlock
    ├── tool_use       ToolUseBlock      └── tool_use   ToolUseBlock
    ├── tool_result    ToolResultBlock
    ├── thinking       ThinkingBlock
    ├── redacted_thinking RedactedThinkingBlock
    └── document       DocumentBlock (refused)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from llmbus.api.openai_wire import TOKENS_MAX

__all__ = [
    "Base64Source",
    "ContentBlockDeltaEvent",
    "ContentBlockStartEvent",
    "ContentBlockStopEvent",
    "CountTokensRequest",
    "CountTokensResponse",
    "DocumentBlock",
    "ErrorBody",
    "ErrorDetail",
    "FileSource",
    "ImageBlock",
    "ImageSource",
    "InputJsonDelta",
    "JsonOutputFormat",
    "MessageDelta",
    "MessageDeltaEvent",
    "MessageDeltaUsage",
    "MessageParam",
    "MessageStartEvent",
    "MessageStopEvent",
    "MessagesRequest",
    "Metadata",
    "OutputConfig",
    "PingEvent",
    "RedactedThinkingBlock",
    "RequestBlock",
    "ResponseBlock",
    "ResponseMessage",
    "SignatureDelta",
    "StreamDelta",
    "StreamEvent",
    "TextBlock",
    "TextDelta",
    "ThinkingAdaptive",
    "ThinkingBlock",
    "ThinkingConfig",
    "ThinkingDelta",
    "ThinkingDisabled",
    "ThinkingEnabled",
    "ToolChoice",
    "ToolChoiceAny",
    "ToolChoiceAuto",
    "ToolChoiceNone",
    "ToolChoiceTool",
    "ToolDefinition",
    "ToolResultBlock",
    "ToolUseBlock",
    "UrlSource",
    "WireUsage",
]


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of request types: unknown fields ignored, unset fields left out when encoded.

    The three block types that answers carry too (`text`, `thinking`, `tool_use`) encode
    every field, as Anthropic's own stream does (`"input": {}`, `"signature": ""`)."""


# --- content blocks ----------------------------------------------------------------------


class TextBlock(_Wire, tag="text", tag_field="type", kw_only=True, omit_defaults=False):
    text: str


class Base64Source(_Wire, tag="base64", tag_field="type", kw_only=True):
    media_type: str
    data: str


class UrlSource(_Wire, tag="url", tag_field="type", kw_only=True):
    url: str


class FileSource(_Wire, tag="file", tag_field="type", kw_only=True):
    """A file uploaded to Anthropic's Files API: only Anthropic can resolve it."""

    file_id: str


ImageSource = Base64Source | UrlSource | FileSource


class ImageBlock(_Wire, tag="image", tag_field="type", kw_only=True):
    source: ImageSource


class ToolUseBlock(_Wire, tag="tool_use", tag_field="type", kw_only=True, omit_defaults=False):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Wire, tag="tool_result", tag_field="type", kw_only=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None


class ThinkingBlock(_Wire, tag="thinking", tag_field="type", kw_only=True, omit_defaults=False):
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(_Wire, tag="redacted_thinking", tag_field="type", kw_only=True):
    """Thinking the provider encrypted; only the provider that wrote it can read it."""

    data: str


class DocumentBlock(_Wire, tag="document", tag_field="type", kw_only=True):
    """A PDF or plain-text document. Declared so that it is refused by name."""

    source: dict[str, Any] | None = None


RequestBlock = (
    TextBlock
    | ImageBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | DocumentBlock
)

ResponseBlock = TextBlock | ThinkingBlock | ToolUseBlock


# --- the request -------------------------------------------------------------------------


class MessageParam(_Wire, kw_only=True):
    role: Literal["user", "assistant"]
    content: str | list[RequestBlock]


class ToolDefinition(_Wire, kw_only=True):
    """A client tool (`type` absent or `custom`); any other `type` names a server tool
    (`web_search_20250305`, `bash_20250124`, ...) that runs inside Anthropic."""

    name: Annotated[str, msgspec.Meta(min_length=1)]
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class ToolChoiceAuto(_Wire, tag="auto", tag_field="type", kw_only=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Wire, tag="any", tag_field="type", kw_only=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Wire, tag="tool", tag_field="type", kw_only=True):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Wire, tag="none", tag_field="type", kw_only=True):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class ThinkingEnabled(_Wire, tag="enabled", tag_field="type", kw_only=True):
    budget_tokens: Annotated[int, msgspec.Meta(ge=1024, le=TOKENS_MAX)]
    """Anthropic's documented minimum is 1024."""


class ThinkingDisabled(_Wire, tag="disabled", tag_field="type", kw_only=True):
    pass


class ThinkingAdaptive(_Wire, tag="adaptive", tag_field="type", kw_only=True):
    """The model decides how much to think (newer Claude models; Claude Code sends it)."""


ThinkingConfig = ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive


class Metadata(_Wire, kw_only=True):
    user_id: str | None = None


class JsonOutputFormat(_Wire, tag="json_schema", tag_field="type", kw_only=True):
    schema: dict[str, Any]


class OutputConfig(_Wire, kw_only=True):
    """`effort` (low ... max) and `format` (structured output by JSON Schema)."""

    effort: str | None = None
    format: JsonOutputFormat | None = None


class CountTokensRequest(_Wire, kw_only=True):
    """`POST /v1/messages/count_tokens`: the messages request without its sampling
    options (`max_tokens` is not needed to count)."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[MessageParam], msgspec.Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None


class MessagesRequest(CountTokensRequest, kw_only=True):
    """`POST /v1/messages`."""

    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=TOKENS_MAX)]
    stop_sequences: list[str] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0, le=TOKENS_MAX)] | None = None
    stream: bool | None = None
    metadata: Metadata | None = None


class CountTokensResponse(msgspec.Struct, kw_only=True):
    input_tokens: int


# --- the response ------------------------------------------------------------------------


class WireUsage(msgspec.Struct, kw_only=True):
    """Anthropic's usage: `input_tokens` excludes the tokens read from or written to the
    cache; the three together are the whole prompt."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class ResponseMessage(msgspec.Struct, kw_only=True):
    id: str
    type: str = "message"
    role: str = "assistant"
    model: str
    content: list[ResponseBlock] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: WireUsage = msgspec.field(default_factory=WireUsage)


# --- stream events -----------------------------------------------------------------------


class TextDelta(msgspec.Struct, tag="text_delta", tag_field="type", kw_only=True):
    text: str


class InputJsonDelta(msgspec.Struct, tag="input_json_delta", tag_field="type", kw_only=True):
    partial_json: str


class ThinkingDelta(msgspec.Struct, tag="thinking_delta", tag_field="type", kw_only=True):
    thinking: str


class SignatureDelta(msgspec.Struct, tag="signature_delta", tag_field="type", kw_only=True):
    signature: str


StreamDelta = TextDelta | InputJsonDelta | ThinkingDelta | SignatureDelta


class MessageStartEvent(msgspec.Struct, tag="message_start", tag_field="type", kw_only=True):
    message: ResponseMessage


class ContentBlockStartEvent(msgspec.Struct, tag="content_block_start", tag_field="type", kw_only=True):
    index: int
    content_block: ResponseBlock


class ContentBlockDeltaEvent(msgspec.Struct, tag="content_block_delta", tag_field="type", kw_only=True):
    index: int
    delta: StreamDelta


class ContentBlockStopEvent(msgspec.Struct, tag="content_block_stop", tag_field="type", kw_only=True):
    index: int


class MessageDelta(msgspec.Struct, kw_only=True):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class MessageDeltaUsage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Cumulative totals; `input_tokens` and the cache counts are left out when unknown
    (the client then keeps those of `message_start`)."""

    output_tokens: int
    input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class MessageDeltaEvent(msgspec.Struct, tag="message_delta", tag_field="type", kw_only=True):
    delta: MessageDelta
    usage: MessageDeltaUsage


class MessageStopEvent(msgspec.Struct, tag="message_stop", tag_field="type", kw_only=True):
    pass


class PingEvent(msgspec.Struct, tag="ping", tag_field="type", kw_only=True):
    pass


class ErrorDetail(msgspec.Struct, kw_only=True):
    type: str
    message: str


class ErrorBody(msgspec.Struct, tag="error", tag_field="type", kw_only=True):
    """`{"type": "error", "error": {"type", "message"}}`: the body of an error response
    and the data of an `event: error` in a stream."""

    error: ErrorDetail


StreamEvent = (
    MessageStartEvent
    | ContentBlockStartEvent
    | ContentBlockDeltaEvent
    | ContentBlockStopEvent
    | MessageDeltaEvent
    | MessageStopEvent
    | PingEvent
    | ErrorBody
)
