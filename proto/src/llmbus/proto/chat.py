"""The normalized chat request: what the edge builds from any client dialect and a worker
turns into its provider's wire format.

It follows the OpenAI chat shape (most upstreams speak it) with typed parts, so that no
translator ever walks an untyped dict.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from llmbus.proto.base import Msg

__all__ = [
    "ChatRequest",
    "ContentPart",
    "ImagePart",
    "Message",
    "NamedToolChoice",
    "Role",
    "TextPart",
    "Tool",
    "ToolCall",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]


class TextPart(Msg, tag="text", tag_field="type", frozen=True, kw_only=True):
    text: str


class ImagePart(Msg, tag="image_url", tag_field="type", frozen=True, kw_only=True):
    """An image, either a URL or a `data:<media type>;base64,...` URL."""

    url: str
    detail: str | None = None


ContentPart = TextPart | ImagePart


class ToolCall(Msg, frozen=True, kw_only=True):
    """A complete tool call made by the assistant; `arguments` is a JSON document as text."""

    id: str
    name: str
    arguments: str = ""
    signature: str | None = None
    """An opaque signature the provider attached to the call (Gemini's
    `thoughtSignature`), sent back unchanged on the next turn."""


class Message(Msg, frozen=True, kw_only=True):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    """The provider's signature over `reasoning` (Anthropic thinking blocks), sent back
    unchanged."""
    is_error: bool = False
    """On a tool message: the tool failed (Anthropic `is_error`, Kiro `status: error`)."""


class Tool(Msg, frozen=True, kw_only=True):
    """A function the model may call; `parameters` is a JSON Schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedToolChoice(Msg, frozen=True, kw_only=True):
    """Forces one named tool."""

    name: str


class ChatRequest(Msg, frozen=True, kw_only=True):
    """A chat request in the normalized form. `model` is the name the client asked for."""

    model: str
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = []
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    tools: list[Tool] = []
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    thinking_budget: int | None = None
    """Tokens the model may spend thinking (Anthropic `thinking.budget_tokens`, Gemini
    `thinkingBudget`); None leaves thinking to `reasoning_effort` or the provider."""
    top_k: int | None = None

    def has_images(self) -> bool:
        return any(
            isinstance(part, ImagePart)
            for message in self.messages
            if isinstance(message.content, list)
            for part in message.content
        )
