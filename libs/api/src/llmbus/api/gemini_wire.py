"""Gemini's `generateContent` wire format (Gemini API, `v1beta`), as msgspec Structs:
what the Gemini adapter sends to Google and reads back, and what the Gemini-native
client API (`llmbus.api.gemini`) reads from clients and answers them.

Field names follow Google's JSON (camelCase, through `rename="camel"`); `None` and
empty defaults are left out of what we encode, because the API rejects some empty
objects (a `parts: []` content, a `functionCall` without a name). Decoding ignores the
many fields we do not read (grounding, citations, logprobs, ...); the fields a client
may send and the gateway cannot serve (server-side tools, code execution, cached
content) are typed only so that they can be refused by name.

Sources: the REST reference at ai.google.dev/api/generate-content and the SDK types in
googleapis/python-genai `google/genai/types.py` (`Part`, `FunctionCall`,
`FunctionDeclaration.parameters_json_schema`, `GenerationConfig.response_json_schema`,
`ThinkingConfig`, `GenerateContentResponseUsageMetadata`).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "Blob",
    "Candidate",
    "Content",
    "CountTokensRequest",
    "CountTokensResponse",
    "ErrorBody",
    "ErrorDetail",
    "FileData",
    "FunctionCall",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "FunctionResponse",
    "FunctionResponsePart",
    "GenerateContentRequest",
    "GenerateContentResponse",
    "GenerationConfig",
    "ListModelsResponse",
    "Model",
    "Part",
    "PromptFeedback",
    "SafetyRating",
    "Status",
    "StreamChunk",
    "ThinkingConfig",
    "Tool",
    "ToolConfig",
    "UsageMetadata",
]


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """Base of every Gemini Struct: camelCase names, defaults left out when encoding."""


class Blob(_Wire):
    """`inlineData`: base64 bytes with their media type."""

    mime_type: str
    data: str


class FileData(_Wire):
    """`fileData`: a file by URI (Files API, or a public http(s) URL)."""

    mime_type: str
    file_uri: str


class FunctionCall(_Wire):
    """A call the model made; it arrives whole (arguments are never fragmented in the
    Gemini API). `id` is optional: older models leave it out."""

    name: str
    args: dict[str, Any] = {}
    id: str | None = None


class FunctionResponsePart(_Wire):
    """Media a function returned along with its `response` (Gemini 3)."""

    inline_data: Blob | None = None
    file_data: FileData | None = None


class FunctionResponse(_Wire):
    """The result of a call, sent back in a user turn. `response` must be a JSON object."""

    name: str
    response: dict[str, Any]
    id: str | None = None
    parts: list[FunctionResponsePart] = []


class Part(_Wire):
    """One part of a content; exactly one of the data fields is set. `thought` marks a
    thought summary; `thoughtSignature` is opaque and goes back unchanged."""

    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: dict[str, Any] | None = None
    """Code the model ran with Google's code execution tool (refused by the edge)."""
    code_execution_result: dict[str, Any] | None = None


class Content(_Wire):
    role: str | None = None
    """`user` or `model`; absent in `systemInstruction`."""
    parts: list[Part] = []


class FunctionDeclaration(_Wire):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """An OpenAPI 3.0 Schema object (Google's subset: upper-case `type`, `nullable`,
    `propertyOrdering`); clients send it, the adapter sends `parametersJsonSchema`."""
    parameters_json_schema: dict[str, Any] | None = None
    """Plain JSON Schema (mutually exclusive with the OpenAPI-subset `parameters`)."""


class Tool(_Wire):
    function_declarations: list[FunctionDeclaration] = []
    google_search: dict[str, Any] | None = None
    """Google's server-side tools: they run inside Google, so only Gemini models could
    serve them; the edge refuses them by name."""
    google_search_retrieval: dict[str, Any] | None = None
    code_execution: dict[str, Any] | None = None
    url_context: dict[str, Any] | None = None
    file_search: dict[str, Any] | None = None
    google_maps: dict[str, Any] | None = None
    computer_use: dict[str, Any] | None = None


class FunctionCallingConfig(_Wire):
    mode: str | None = None
    """`AUTO` (the default), `ANY`, `NONE` or `VALIDATED`."""
    allowed_function_names: list[str] | None = None


class ToolConfig(_Wire):
    function_calling_config: FunctionCallingConfig | None = None


class ThinkingConfig(_Wire):
    thinking_budget: int | None = None
    """Tokens; 0 turns thinking off, -1 lets the model decide."""
    include_thoughts: bool | None = None
    thinking_level: str | None = None
    """Gemini 3's alternative to a budget: `MINIMAL`, `LOW`, `MEDIUM` or `HIGH`."""


class GenerationConfig(_Wire):
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str | None = None
    response_json_schema: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None
    """An OpenAPI 3.0 Schema object (the older form of `responseJsonSchema`)."""
    thinking_config: ThinkingConfig | None = None
    candidate_count: int | None = None
    response_modalities: list[str] | None = None
    response_logprobs: bool | None = None


class GenerateContentRequest(_Wire):
    contents: list[Content]
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None
    cached_content: str | None = None
    """A `cachedContents/…` resource of Google's context cache."""
    model: str | None = None
    """Set inside `countTokens`' `generateContentRequest`; the path names it otherwise."""


class SafetyRating(_Wire):
    category: str = ""
    probability: str = ""
    blocked: bool | None = None


class Candidate(_Wire):
    content: Content | None = None
    """Absent when the candidate was blocked before producing anything."""
    finish_reason: str | None = None
    """Set on the candidate's last chunk only: STOP, MAX_TOKENS, SAFETY, ..."""
    finish_message: str | None = None
    index: int = 0
    safety_ratings: list[SafetyRating] = []


class PromptFeedback(_Wire):
    block_reason: str | None = None
    """Set when the prompt itself was blocked; the response then has no candidates."""
    block_reason_message: str | None = None
    safety_ratings: list[SafetyRating] = []


class UsageMetadata(_Wire):
    """Token counts. `promptTokenCount` includes `cachedContentTokenCount`;
    `candidatesTokenCount` excludes `thoughtsTokenCount`."""

    prompt_token_count: int = 0
    candidates_token_count: int = 0
    total_token_count: int = 0
    thoughts_token_count: int = 0
    cached_content_token_count: int = 0
    tool_use_prompt_token_count: int = 0


class GenerateContentResponse(_Wire):
    """A whole answer, or one chunk of a stream (the stream sends a complete
    `GenerateContentResponse` per SSE event, each with its new parts only)."""

    candidates: list[Candidate] = []
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None


class ErrorDetail(_Wire):
    """One entry of `error.details`, typed by `@type` (`google.rpc.ErrorInfo`,
    `google.rpc.RetryInfo`, `google.rpc.QuotaFailure`, ...)."""

    type: str = msgspec.field(default="", name="@type")
    reason: str | None = None
    """`ErrorInfo`: e.g. `API_KEY_INVALID`."""
    domain: str | None = None
    """`ErrorInfo`: who names the reason (`googleapis.com`; `llmbus` for the gateway's)."""
    retry_delay: str | None = None
    """`RetryInfo`: a protobuf Duration in JSON, e.g. `"12s"` or `"29.72s"`."""


class Status(_Wire):
    """`google.rpc.Status` as JSON: HTTP `code`, `message`, canonical `status` name."""

    code: int = 0
    message: str = ""
    status: str = ""
    details: list[ErrorDetail] = []


class ErrorBody(_Wire):
    """Every non-2xx answer: `{"error": {"code", "message", "status", "details"}}`."""

    error: Status


class StreamChunk(GenerateContentResponse):
    """A stream event: a response chunk, or, when the call fails after the stream
    began, `{"error": {...}}` in its place (the shape the google-genai SDK checks for
    in every streamed chunk)."""

    error: Status | None = None


class CountTokensRequest(_Wire):
    """`models/{model}:countTokens`: `contents`, or a whole `generateContentRequest`
    (system instruction and tools included), never both."""

    contents: list[Content] = []
    generate_content_request: GenerateContentRequest | None = None


class CountTokensResponse(msgspec.Struct, rename="camel"):
    total_tokens: int


class Model(_Wire):
    """A `models/{model}` resource: what `GET /v1beta/models` lists."""

    name: str
    base_model_id: str | None = None
    version: str | None = None
    display_name: str | None = None
    description: str | None = None
    input_token_limit: int | None = None
    output_token_limit: int | None = None
    supported_generation_methods: list[str] = []


class ListModelsResponse(_Wire):
    models: list[Model] = []
    next_page_token: str | None = None
