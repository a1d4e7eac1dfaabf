"""Kiro's wire types: the `generateAssistantResponse` body and the payloads of the
event-stream frames it answers with. Field names are camelCase on the wire.

Request (only what we send; every list is left out when empty):

    GenerateAssistantResponseRequest {conversationState, profileArn?}
    └── ConversationState {chatTriggerType, agentTaskType, agentContinuationId,
        │                  conversationId, currentMessage, history?}
        ├── currentMessage: {userInputMessage}
        └── history: [{userInputMessage} | {assistantResponseMessage}]
            UserInputMessage {content, modelId, origin, images?, userInputMessageContext?}
            ├── images: [{format, source: {bytes}}]
            └── userInputMessageContext {tools?, toolResults?}
                ├── tools: [{toolSpecification: {name, description, inputSchema: {json}}}]
                └── toolResults: [{toolUseId, status, content: [{text}]}]
            AssistantResponseMessage {content, toolUses?: [{toolUseId, name, input}]}

Events (`:event-type` names the payload; some clients saw it wrapped as
`{"<event type>": {...}}`, which `decode_event` accepts too).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

__all__ = [
    "AssistantResponseEvent",
    "AssistantResponseMessage",
    "ContextUsageEvent",
    "ConversationState",
    "CurrentMessage",
    "ErrorBody",
    "GenerateAssistantResponseRequest",
    "HistoryEntry",
    "Image",
    "ImageSource",
    "InputSchema",
    "MessageStopEvent",
    "MetadataEvent",
    "MeteringEvent",
    "ReasoningContentEvent",
    "TextContent",
    "TokenUsage",
    "ToolEntry",
    "ToolResult",
    "ToolSpecification",
    "ToolUse",
    "ToolUseEvent",
    "UserInputMessage",
    "UserInputMessageContext",
    "decode_event",
]


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Defaults are left out of the JSON, so constants the service wants on every
    request (`chatTriggerType`, `origin`) have none."""


class InputSchema(_Wire):
    json: dict[str, Any]


class ToolSpecification(_Wire):
    name: str
    description: str
    input_schema: InputSchema


class ToolEntry(_Wire):
    tool_specification: ToolSpecification


class TextContent(_Wire):
    text: str


class ToolResult(_Wire):
    tool_use_id: str
    status: Literal["success", "error"]
    content: list[TextContent]


class ImageSource(_Wire):
    bytes: str
    """Base64."""


class Image(_Wire):
    format: Literal["png", "jpeg", "gif", "webp"]
    source: ImageSource


class UserInputMessageContext(_Wire):
    tools: list[ToolEntry] = []
    tool_results: list[ToolResult] = []


class UserInputMessage(_Wire):
    content: str
    model_id: str
    origin: str
    images: list[Image] = []
    user_input_message_context: UserInputMessageContext | None = None


class ToolUse(_Wire):
    tool_use_id: str
    name: str
    input: dict[str, Any]


class AssistantResponseMessage(_Wire):
    content: str
    tool_uses: list[ToolUse] = []


class HistoryEntry(_Wire):
    """Exactly one of the two is set."""

    user_input_message: UserInputMessage | None = None
    assistant_response_message: AssistantResponseMessage | None = None


class CurrentMessage(_Wire):
    user_input_message: UserInputMessage


class ConversationState(_Wire):
    conversation_id: str
    agent_continuation_id: str
    current_message: CurrentMessage
    chat_trigger_type: str
    agent_task_type: str
    history: list[HistoryEntry] = []


class GenerateAssistantResponseRequest(_Wire):
    conversation_state: ConversationState
    profile_arn: str | None = None


# Events.


class AssistantResponseEvent(_Wire):
    content: str = ""


class ToolUseEvent(_Wire):
    tool_use_id: str = ""
    name: str = ""
    input: str | dict[str, Any] | None = None
    """A JSON fragment; some service versions send the whole input as an object."""
    stop: bool = False


class ReasoningContentEvent(_Wire):
    text: str = ""
    signature: str = ""


class ContextUsageEvent(_Wire):
    context_usage_percentage: float = 0.0


class MeteringEvent(_Wire):
    unit: str = ""
    unit_plural: str = ""
    usage: float = 0.0


class TokenUsage(_Wire):
    uncached_input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


class MetadataEvent(_Wire):
    """`metadataEvent`, sent by newer runtimes: real token counts."""

    token_usage: TokenUsage | None = None


class MessageStopEvent(_Wire):
    stop_reason: str = ""


class ErrorBody(msgspec.Struct, kw_only=True):
    """AWS JSON errors: `{"__type": "...#ValidationException", "message", "reason"}`
    over HTTP; in-band, `_type` instead of `__type`; `Message` in some services."""

    message: str = ""
    Message: str = ""
    type_: str = msgspec.field(default="", name="__type")
    in_band_type: str = msgspec.field(default="", name="_type")
    reason: str | None = None

    @property
    def text(self) -> str:
        return self.message or self.Message

    @property
    def kind(self) -> str:
        """The exception's short name: `ValidationException`."""
        return (self.type_ or self.in_band_type).rsplit("#", 1)[-1].split(":", 1)[0]


E = TypeVar("E", bound=msgspec.Struct)


def decode_event(payload: bytes, event_type: str, kind: type[E]) -> E:
    """The payload as `kind`, bare or wrapped in `{"<event type>": ...}`. Raises
    msgspec's DecodeError or ValidationError."""
    if payload.startswith(b'{"' + event_type.encode() + b'"'):
        return msgspec.json.decode(payload, type=dict[str, kind])[event_type]  # type: ignore[valid-type]
    return msgspec.json.decode(payload, type=kind)
