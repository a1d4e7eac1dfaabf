"""OpenAI Responses API (`POST /v1/responses`) request types, as clients (the openai SDK,
Codex CLI) send them.

Input items and their content parts are each one flat Struct with every field optional,
checked by `type` when they are normalized (`llmbus.api.responses`): a client may send
an item without `type` (an "easy" message), and an item type the gateway cannot use is
answered with a 400 naming it rather than a decoder's message. Fields no target can use
(`include`, `prompt_cache_key`, `service_tier`, `truncation`, `safety_identifier`, ...)
are accepted and ignored, as unknown fields are."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from llmbus.api.openai_wire import TOKENS_MAX

__all__ = [
    "FunctionTool",
    "InputContent",
    "InputItem",
    "ReasoningConfig",
    "ResponsesRequest",
    "TextConfig",
    "TextFormat",
    "ToolChoiceObject",
]


class _In(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of request types: unknown fields ignored."""


class InputContent(_In, kw_only=True):
    """A content part: `input_text`, `output_text`, `refusal`, `input_image`, `input_file`,
    `summary_text` or `reasoning_text`."""

    type: str
    text: str | None = None
    refusal: str | None = None
    image_url: str | None = None
    file_id: str | None = None
    file_data: str | None = None
    detail: str | None = None


class InputItem(_In, kw_only=True):
    """An input item: `message` (the default), `function_call`, `function_call_output`,
    `custom_tool_call`, `custom_tool_call_output`, `reasoning` or `item_reference`."""

    type: str = "message"
    id: str | None = None
    role: str | None = None
    content: str | list[InputContent] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    input: str | None = None
    output: str | list[InputContent] | None = None
    summary: list[InputContent] | None = None
    encrypted_content: str | None = None
    status: str | None = None


class FunctionTool(_In, kw_only=True):
    """A tool in the Responses API's flat shape: `{"type": "function", "name", ...}`, or a
    custom (free-form input) tool `{"type": "custom", "name", "format"}`. Tools of other
    types (hosted tools) are not the client's to run: they are left out."""

    type: str
    name: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    format: dict[str, Any] | None = None


class ToolChoiceObject(_In, kw_only=True):
    type: str
    name: str | None = None
    mode: str | None = None


class ReasoningConfig(_In, kw_only=True):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class TextFormat(_In, kw_only=True):
    type: str = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = msgspec.field(default=None, name="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_In, kw_only=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponsesRequest(_In, kw_only=True):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    stream: bool | None = None
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1, le=TOKENS_MAX)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | ToolChoiceObject | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningConfig | None = None
    text: TextConfig | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    include: list[str] | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    truncation: str | None = None
    safety_identifier: str | None = None
