"""The Gemini-native client dialect (Gemini API `v1beta`, as the google-genai SDK and
Gemini CLI speak it): `generateContent` requests validated and translated to the
normalized request; reply-stream events written back as `GenerateContentResponse`
chunks (SSE, or Google's streamed JSON array) or as one whole response; errors as
`google.rpc.Status`; the gateway's models as Gemini `Model` resources.

Where the two shapes differ:
- Gemini has no tool-call ids on its Developer API: a `functionCall` without `id` gets
  one (`call_<turn>_<part>`), and a `functionResponse` answers the call it names by
  `id`, or else the first unanswered call of that name in the model turn before it. A
  response that answers no call is refused, as Google refuses it.
- A `functionResponse.response` of `{"output": text}` or `{"result": text}` is the tool's
  text, `{"error": text}` a failed tool; any other object travels as its JSON.
- `parameters` and `responseSchema` are Google's OpenAPI 3.0 subset (upper-case types,
  `nullable`, `propertyOrdering`): they become plain JSON Schema, which every family
  takes; `parametersJsonSchema` and `responseJsonSchema` pass as they are.
- Answers: reasoning comes back as `thought` parts only when the client asked for
  thoughts (`thinkingConfig.includeThoughts`), as Google does. Tool calls arrive in
  fragments from some families; Gemini sends each call whole, so calls are held until
  the answer ends and sent with the finish reason and the usage, in the last chunk.
- Google's REST examples often write field names in snake_case (`system_instruction`,
  `inline_data`), which its API accepts: so does this decoder.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from llmbus.api.bodies import decode_body, invalid_value
from llmbus.api.errors import ApiError, InvalidRequest
from llmbus.api.gemini_wire import (
    Blob,
    Candidate,
    Content,
    CountTokensRequest,
    ErrorBody,
    ErrorDetail,
    FileData,
    FunctionCall,
    GenerateContentRequest,
    GenerateContentResponse,
    GenerationConfig,
    ListModelsResponse,
    Model,
    Part,
    Status,
    ThinkingConfig,
    Tool,
    ToolConfig,
    UsageMetadata,
)
from llmbus.proto import (
    ChatRequest,
    Delta,
    Done,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmbus.proto import Tool as ChatTool

__all__ = [
    "GEMINI_METHODS",
    "GenerateContent",
    "ResponseBuilder",
    "ResponseStreamWriter",
    "decode_count_tokens",
    "decode_generate_content",
    "finish_reason",
    "gemini_error_body",
    "gemini_model",
    "gemini_models",
    "gemini_status",
    "json_schema",
    "usage_metadata",
]

_Wire = TypeVar("_Wire", GenerateContentRequest, CountTokensRequest)
_encode = msgspec.json.Encoder().encode
_generate_decoder = msgspec.json.Decoder(GenerateContentRequest)
_count_decoder = msgspec.json.Decoder(CountTokensRequest)
_SNAKE_KEY = re.compile(rb'"[a-z][a-z0-9]*_[a-z0-9_]*"\s*:')
_FREE_FORM: Final = frozenset(
    {"args", "response", "parameters", "parametersJsonSchema", "responseSchema", "responseJsonSchema"}
)
"""Keys whose values are the client's own JSON (arguments, results, schemas): their
inner names are never rewritten."""

GEMINI_METHODS: Final = ("generateContent", "streamGenerateContent", "countTokens")
"""What every model the gateway lists supports, in `supportedGenerationMethods`."""


# --- requests ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerateContent:
    """A decoded `generateContent` request: the normalized request, and what the answer
    shows that the normalized request does not carry."""

    chat: ChatRequest
    thoughts: bool = False
    """The client asked for thought summaries (`includeThoughts`)."""


def decode_generate_content(body: bytes, model: str, stream: bool) -> GenerateContent:
    """Validate a `models/{model}:generateContent` (or `:streamGenerateContent`) body
    and return the normalized request. Raises InvalidRequest naming the field."""
    return _normalize(_decode(_generate_decoder, GenerateContentRequest, body), model, stream)


def decode_count_tokens(body: bytes, model: str) -> ChatRequest:
    """Validate a `models/{model}:countTokens` body (`contents`, or a whole
    `generateContentRequest`) and return the normalized request it would send."""
    wire = _decode(_count_decoder, CountTokensRequest, body)
    if wire.generate_content_request is not None:
        if wire.contents:
            raise InvalidRequest(
                "send either `contents` or `generateContentRequest`, not both",
                param="contents",
                code="invalid_value",
            )
        return _normalize(wire.generate_content_request, model, False).chat
    return _normalize(GenerateContentRequest(contents=wire.contents), model, False).chat


def _decode(decoder: msgspec.json.Decoder[_Wire], kind: type[_Wire], body: bytes) -> _Wire:
    if _SNAKE_KEY.search(body) is None:
        return decode_body(decoder, body)
    # Field names in snake_case (Google's REST examples): read as any JSON, renamed.
    raw = decode_body(_any_json, body)
    try:
        return msgspec.convert(_camel_keys(raw), kind)
    except msgspec.ValidationError as exc:
        raise invalid_value(exc) from None
    except RecursionError:
        raise InvalidRequest("the body's JSON nests too deep", code="json_too_deep") from None


_any_json = msgspec.json.Decoder()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _camel_keys(value: object) -> object:
    """Field names in camelCase, as Google's JSON parser reads snake_case too; the
    client's own JSON (`_FREE_FORM`) is left as it is."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            name = _camel(key) if isinstance(key, str) else key
            out[name] = item if name in _FREE_FORM else _camel_keys(item)
        return out
    if isinstance(value, list):
        return [_camel_keys(item) for item in value]
    return value


def _normalize(wire: GenerateContentRequest, model: str, stream: bool) -> GenerateContent:
    if wire.cached_content:
        raise InvalidRequest(
            "`cachedContent` names a cache inside Google's API, which this gateway cannot serve: "
            "send the content itself",
            param="cachedContent",
            code="unsupported_value",
        )
    config = wire.generation_config or GenerationConfig()
    messages: list[Message] = []
    if wire.system_instruction is not None:
        system = _system(wire.system_instruction)
        if system:
            messages.append(Message(role="system", content=system))
    messages += _Contents().read(wire.contents)
    tools, tool_choice = _tools(wire.tools or [], wire.tool_config)
    thinking = config.thinking_config or ThinkingConfig()
    effort, budget = _thinking(thinking)
    chat = ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=stream,
        max_tokens=config.max_output_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        stop=list(config.stop_sequences or []),
        seed=config.seed,
        presence_penalty=config.presence_penalty,
        frequency_penalty=config.frequency_penalty,
        tools=tools,
        tool_choice=tool_choice,
        response_format=_response_format(config),
        reasoning_effort=effort,
        thinking_budget=budget,
    )
    _check_generation(config)
    return GenerateContent(chat=chat, thoughts=bool(thinking.include_thoughts))


def _system(content: Content) -> str | list[TextPart | ImagePart]:
    parts: list[TextPart | ImagePart] = []
    for j, part in enumerate(content.parts):
        if part.text is not None:
            if part.text:
                parts.append(TextPart(text=part.text))
        else:
            raise InvalidRequest(
                "`systemInstruction` takes text parts only",
                param=f"systemInstruction.parts[{j}]",
                code="unsupported_value",
            )
    return _content(parts)


def _content(parts: list[TextPart | ImagePart]) -> str | list[TextPart | ImagePart]:
    """One text part is sent as a plain string, which every upstream accepts."""
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    return parts


class _Contents:
    """Reads `contents` turn by turn, pairing each `functionResponse` with the call it
    answers."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []
        """(id, name) of the calls of the last model turn not yet answered."""

    def read(self, contents: list[Content]) -> list[Message]:
        if not contents:
            raise InvalidRequest("`contents` must not be empty", param="contents", code="invalid_value")
        messages: list[Message] = []
        for i, content in enumerate(contents):
            at = f"contents[{i}]"
            if not content.parts:
                raise InvalidRequest(
                    f"`{at}.parts` must not be empty", param=f"{at}.parts", code="invalid_value"
                )
            role = content.role or "user"
            if role == "model":
                messages.append(self._model_turn(content.parts, i))
            elif role in ("user", "function"):
                messages += self._user_turn(content.parts, at)
            else:
                raise InvalidRequest(
                    f"`{at}.role` is {role!r}; a content's role is `user` or `model`",
                    param=f"{at}.role",
                    code="invalid_value",
                )
        return messages

    def _model_turn(self, parts: list[Part], i: int) -> Message:
        texts: list[TextPart | ImagePart] = []
        thoughts: list[str] = []
        signature: str | None = None
        calls: list[ToolCall] = []
        for j, part in enumerate(parts):
            at = f"contents[{i}].parts[{j}]"
            if part.function_call is not None:
                call = part.function_call
                calls.append(
                    ToolCall(
                        id=call.id or f"call_{i}_{j}",
                        name=call.name,
                        arguments=_encode(call.args).decode(),
                        signature=part.thought_signature,
                    )
                )
            elif part.text is not None:
                if part.thought:
                    thoughts.append(part.text)
                    signature = part.thought_signature or signature
                elif part.text:
                    texts.append(TextPart(text=part.text))
            elif part.thought and part.thought_signature:
                signature = part.thought_signature
            else:
                raise _unsupported_part(part, at, "a model turn")
        self.pending = [(call.id, call.name) for call in calls]
        return Message(
            role="assistant",
            content=_content(texts) if texts else None,
            tool_calls=calls,
            reasoning="".join(thoughts) if thoughts else None,
            reasoning_signature=signature,
        )

    def _user_turn(self, parts: list[Part], param: str) -> list[Message]:
        out: list[Message] = []
        content: list[TextPart | ImagePart] = []
        for j, part in enumerate(parts):
            at = f"{param}.parts[{j}]"
            if part.function_response is not None:
                if content:
                    out.append(Message(role="user", content=_content(content)))
                    content = []
                out.append(self._result(part, at))
            elif part.text is not None:
                if part.text:
                    content.append(TextPart(text=part.text))
            elif part.inline_data is not None:
                content.append(_inline_image(part.inline_data, f"{at}.inlineData"))
            elif part.file_data is not None:
                content.append(_file_image(part.file_data, f"{at}.fileData"))
            else:
                raise _unsupported_part(part, at, "a user turn")
        if content:
            out.append(Message(role="user", content=_content(content)))
        return out

    def _result(self, part: Part, param: str) -> Message:
        result = part.function_response
        assert result is not None
        call_id = self._answered(result.id, result.name)
        if call_id is None:
            raise InvalidRequest(
                f"`{param}.functionResponse` answers no `functionCall` named {result.name!r} "
                "in the model turn before it",
                param=f"{param}.functionResponse",
                code="invalid_value",
            )
        text, failed = _result_text(result.response)
        content: str | list[TextPart | ImagePart] = text
        if result.parts:
            # Images the function returned follow its result (the normalized tool message
            # carries parts as a user message does).
            content = [TextPart(text=text)]
            for k, media in enumerate(result.parts):
                at = f"{param}.functionResponse.parts[{k}]"
                if media.inline_data is not None:
                    content.append(_inline_image(media.inline_data, f"{at}.inlineData"))
                elif media.file_data is not None:
                    content.append(_file_image(media.file_data, f"{at}.fileData"))
                else:
                    raise InvalidRequest(
                        f"`{at}` has neither `inlineData` nor `fileData`", param=at, code="invalid_value"
                    )
        return Message(role="tool", tool_call_id=call_id, name=result.name, content=content, is_error=failed)

    def _answered(self, call_id: str | None, name: str) -> str | None:
        for k, (pending_id, pending_name) in enumerate(self.pending):
            if (call_id and pending_id == call_id) or (not call_id and pending_name == name):
                del self.pending[k]
                return pending_id
        return None


def _result_text(response: dict[str, Any]) -> tuple[str, bool]:
    """A function's result as the tool message's text, and whether the tool failed."""
    if len(response) == 1:
        ((key, value),) = response.items()
        if isinstance(value, str):
            if key in ("output", "result"):
                return value, False
            if key == "error":
                return value, True
    return _encode(response).decode(), False


def _inline_image(blob: Blob, param: str) -> ImagePart:
    if not blob.mime_type.startswith("image/"):
        raise InvalidRequest(
            f"`{param}` is {blob.mime_type}: this gateway serves images only (no audio, video or documents)",
            param=f"{param}.mimeType",
            code="unsupported_value",
        )
    return ImagePart(url=f"data:{blob.mime_type};base64,{blob.data}")


def _file_image(file: FileData, param: str) -> ImagePart:
    parsed = urlsplit(file.file_uri)
    if parsed.scheme not in ("http", "https") or parsed.hostname == "generativelanguage.googleapis.com":
        raise InvalidRequest(
            f"`{param}.fileUri` must be a public http(s) URL: files uploaded to Google's Files API "
            "cannot be served through this gateway (send the image as `inlineData`)",
            param=f"{param}.fileUri",
            code="unsupported_value",
        )
    if not file.mime_type.startswith("image/"):
        raise InvalidRequest(
            f"`{param}` is {file.mime_type}: this gateway serves images only",
            param=f"{param}.mimeType",
            code="unsupported_value",
        )
    return ImagePart(url=file.file_uri)


def _unsupported_part(part: Part, param: str, where: str) -> InvalidRequest:
    if part.executable_code is not None or part.code_execution_result is not None:
        return InvalidRequest(
            "code execution runs inside Google's API and cannot be served through this gateway",
            param=param,
            code="unsupported_value",
        )
    if part.function_call is not None:
        return InvalidRequest(
            f"a `functionCall` belongs in a model turn, not {where}", param=param, code="invalid_value"
        )
    if part.inline_data is not None or part.file_data is not None:
        return InvalidRequest(
            f"images belong in a user turn, not {where}", param=param, code="unsupported_value"
        )
    return InvalidRequest(
        f"`{param}` has no field this gateway can serve (text, inlineData, fileData, functionCall, "
        "functionResponse)",
        param=param,
        code="unsupported_value",
    )


_SERVER_TOOLS: Final = (
    ("google_search", "googleSearch"),
    ("google_search_retrieval", "googleSearchRetrieval"),
    ("code_execution", "codeExecution"),
    ("url_context", "urlContext"),
    ("file_search", "fileSearch"),
    ("google_maps", "googleMaps"),
    ("computer_use", "computerUse"),
)

_Choice = Literal["auto", "none", "required"] | NamedToolChoice | None


def _tools(wire: list[Tool], config: ToolConfig | None) -> tuple[list[ChatTool], _Choice]:
    tools: list[ChatTool] = []
    for i, tool in enumerate(wire):
        for field, name in _SERVER_TOOLS:
            if getattr(tool, field) is not None:
                raise InvalidRequest(
                    f"`{name}` is a tool that runs inside Google's API and cannot be served through "
                    "this gateway: declare functions (`functionDeclarations`) instead",
                    param=f"tools[{i}].{name}",
                    code="unsupported_value",
                )
        if not tool.function_declarations:
            raise InvalidRequest(
                f"`tools[{i}]` declares no functions; this gateway serves `functionDeclarations`",
                param=f"tools[{i}]",
                code="unsupported_value",
            )
        for k, declaration in enumerate(tool.function_declarations):
            if declaration.parameters is not None and declaration.parameters_json_schema is not None:
                raise InvalidRequest(
                    "set either `parameters` or `parametersJsonSchema`, not both",
                    param=f"tools[{i}].functionDeclarations[{k}]",
                    code="invalid_value",
                )
            schema = declaration.parameters_json_schema
            if schema is None and declaration.parameters is not None:
                schema = json_schema(declaration.parameters)
            tools.append(
                ChatTool(
                    name=declaration.name,
                    description=declaration.description,
                    parameters=schema if schema is not None else {"type": "object", "properties": {}},
                )
            )
    calling = config.function_calling_config if config is not None else None
    if calling is None or not tools:
        return tools, None
    mode = (calling.mode or "MODE_UNSPECIFIED").upper()
    if mode in ("AUTO", "VALIDATED"):
        return tools, "auto"
    if mode == "NONE":
        return tools, "none"
    if mode == "MODE_UNSPECIFIED":
        return tools, None
    if mode != "ANY":
        raise InvalidRequest(
            f"`toolConfig.functionCallingConfig.mode` {calling.mode!r} is none of AUTO, ANY, NONE, VALIDATED",
            param="toolConfig.functionCallingConfig.mode",
            code="invalid_value",
        )
    allowed = calling.allowed_function_names or []
    declared = {tool.name for tool in tools}
    for name in allowed:
        if name not in declared:
            raise InvalidRequest(
                f"`allowedFunctionNames` names {name!r}, which no function declaration has",
                param="toolConfig.functionCallingConfig.allowedFunctionNames",
                code="invalid_value",
            )
    if len(allowed) == 1:
        return tools, NamedToolChoice(name=allowed[0])
    if allowed:
        # Several allowed: only those are offered, and one of them must be called.
        return [tool for tool in tools if tool.name in allowed], "required"
    return tools, "required"


_OPENAPI_INTEGERS: Final = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}
)


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Google's OpenAPI 3.0 Schema subset as plain JSON Schema: lower-case `type`,
    `nullable` as a `null` type, `example` as `examples`, int64 counts (strings in
    proto JSON) as numbers; `propertyOrdering` dropped (JSON Schema has no order)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            kind = value.lower()
            if kind != "type_unspecified":
                out["type"] = kind
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _sub_schema(item) for name, item in value.items()}
        elif key == "items":
            out[key] = _sub_schema(value)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [_sub_schema(item) for item in value]
        elif key in _OPENAPI_INTEGERS and isinstance(value, str) and value.isdigit():
            out[key] = int(value)
        elif key == "example":
            out["examples"] = [value]
        elif key not in ("nullable", "propertyOrdering"):
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _sub_schema(value: object) -> object:
    return json_schema(value) if isinstance(value, dict) else value


def _response_format(config: GenerationConfig) -> dict[str, Any] | None:
    mime_type = config.response_mime_type
    if config.response_json_schema is not None and config.response_schema is not None:
        raise InvalidRequest(
            "set either `responseSchema` or `responseJsonSchema`, not both",
            param="generationConfig.responseJsonSchema",
            code="invalid_value",
        )
    schema = config.response_json_schema
    if schema is None and config.response_schema is not None:
        schema = json_schema(config.response_schema)
    if mime_type in (None, "", "text/plain"):
        if schema is not None:
            raise InvalidRequest(
                "a response schema needs `responseMimeType: application/json`",
                param="generationConfig.responseMimeType",
                code="invalid_value",
            )
        return None
    if mime_type != "application/json":
        raise InvalidRequest(
            f"`responseMimeType` {mime_type!r} cannot be served through this gateway; "
            "use text/plain or application/json",
            param="generationConfig.responseMimeType",
            code="unsupported_value",
        )
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


_LEVELS: Final = frozenset({"minimal", "low", "medium", "high"})


def _thinking(config: ThinkingConfig) -> tuple[str | None, int | None]:
    """`reasoning_effort` and `thinking_budget`. A budget of -1 (dynamic) leaves the
    depth to the model, as no budget does."""
    effort: str | None = None
    level = (config.thinking_level or "").lower()
    if level and level != "thinking_level_unspecified":
        if level not in _LEVELS:
            raise InvalidRequest(
                f"`thinkingLevel` {config.thinking_level!r} is none of MINIMAL, LOW, MEDIUM, HIGH",
                param="generationConfig.thinkingConfig.thinkingLevel",
                code="invalid_value",
            )
        effort = level
    budget = config.thinking_budget
    if budget is not None and budget < 0:
        budget = None
    if effort is not None and budget is not None:
        raise InvalidRequest(
            "set either `thinkingBudget` or `thinkingLevel`, not both",
            param="generationConfig.thinkingConfig",
            code="invalid_value",
        )
    return effort, budget


def _check_generation(config: GenerationConfig) -> None:
    if config.candidate_count not in (None, 1):
        raise InvalidRequest(
            f"`candidateCount` is {config.candidate_count}; this gateway answers with one candidate",
            param="generationConfig.candidateCount",
            code="unsupported_value",
        )
    for modality in config.response_modalities or []:
        if modality.upper() != "TEXT":
            raise InvalidRequest(
                f"`responseModalities` asks for {modality}; this gateway answers with text only",
                param="generationConfig.responseModalities",
                code="unsupported_value",
            )
    if config.response_logprobs:
        raise InvalidRequest(
            "log probabilities (`responseLogprobs`) cannot be served through this gateway",
            param="generationConfig.responseLogprobs",
            code="unsupported_value",
        )


# --- answers -----------------------------------------------------------------------------

_FINISH_REASONS: Final = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


def finish_reason(done: Done) -> str:
    """Gemini's `finishReason`: a turn that called functions ends with STOP, as Gemini's
    own do."""
    return _FINISH_REASONS.get(done.finish_reason, "OTHER")


def usage_metadata(usage: Usage) -> UsageMetadata:
    """Gemini's counts: `candidatesTokenCount` leaves out the thinking, which
    `thoughtsTokenCount` has; `promptTokenCount` includes the cached tokens."""
    thoughts = usage.reasoning_tokens
    return UsageMetadata(
        prompt_token_count=usage.prompt_tokens,
        candidates_token_count=max(usage.completion_tokens - thoughts, 0),
        total_token_count=usage.prompt_tokens + usage.completion_tokens,
        thoughts_token_count=thoughts,
        cached_content_token_count=usage.cached_tokens,
    )


def _arguments(text: str) -> dict[str, Any]:
    """A call's arguments as an object; arguments cut short (by the token limit) or not
    an object come back as `{}` rather than failing the whole answer."""
    try:
        value = msgspec.json.decode(text) if text else {}
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _signature(value: str) -> str | None:
    """A signature as a Gemini client can take it: `thoughtSignature` is bytes (base64
    in JSON), which the google-genai SDK decodes; one that is not base64 (from some other
    provider) would fail the whole answer there, so it is left out."""
    if not value:
        return None
    try:
        base64.b64decode(value, altchars=b"-_" if "-" in value or "_" in value else None, validate=True)
    except (binascii.Error, ValueError):
        return None
    return value


class _AnswerCall(FunctionCall, kw_only=True):
    """A call in an answer: `args` always written (`{}` for none), as Gemini does."""

    args: dict[str, Any]


class _Calls:
    """Tool calls gathered from their fragments, by index, in the order they began."""

    __slots__ = ("_calls", "_prefix")

    def __init__(self, response_id: str) -> None:
        self._prefix = f"call_{response_id}_"
        self._calls: dict[int, list[str]] = {}
        """index → [id, name, signature, argument fragments...]"""

    def add(self, call: ToolCallDelta) -> None:
        entry = self._calls.get(call.index)
        if entry is None:
            entry = self._calls[call.index] = [call.id or f"{self._prefix}{call.index}", call.name or "", ""]
        elif call.name and not entry[1]:
            entry[1] = call.name
        if call.signature:
            entry[2] = call.signature
        if call.arguments:
            entry.append(call.arguments)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def parts(self) -> list[Part]:
        return [
            Part(
                function_call=_AnswerCall(id=entry[0], name=entry[1], args=_arguments("".join(entry[3:]))),
                thought_signature=_signature(entry[2]),
            )
            for entry in self._calls.values()
        ]


def _candidate(parts: list[Part], finish: str | None = None) -> list[Candidate]:
    return [Candidate(content=Content(role="model", parts=parts), finish_reason=finish)]


class ResponseStreamWriter:
    """Encodes reply-stream events as `streamGenerateContent` chunks: each event a whole
    `GenerateContentResponse` with the new parts only, as SSE (`alt=sse`) or as the
    elements of one streamed JSON array (Google's default without `alt`).

    `start()` once, `delta()` per Delta, then `finish()` or `error()`."""

    __slots__ = ("_calls", "_first", "_id", "_model", "_signature", "_sse", "_thoughts")

    def __init__(self, response_id: str, model: str, *, thoughts: bool = False, sse: bool = True) -> None:
        self._id = response_id
        self._model = model
        self._thoughts = thoughts
        self._sse = sse
        self._first = True
        self._calls = _Calls(response_id)
        self._signature: list[str] = []

    def _frame(self, data: bytes) -> bytes:
        if self._sse:
            return b"data: " + data + b"\r\n\r\n"
        if self._first:
            self._first = False
            return b"[" + data
        return b",\r\n" + data

    def _chunk(self, parts: list[Part], finish: str | None = None, usage: Usage | None = None) -> bytes:
        response = GenerateContentResponse(
            candidates=_candidate(parts, finish),
            usage_metadata=usage_metadata(usage) if usage is not None else None,
            model_version=self._model,
            response_id=self._id,
        )
        return self._frame(_encode(response))

    def start(self) -> bytes:
        """Nothing: Gemini's stream begins with the first chunk of the answer."""
        return b""

    def delta(self, event: Delta) -> bytes:
        parts: list[Part] = []
        if event.reasoning and self._thoughts:
            parts.append(Part(text=event.reasoning, thought=True))
        if event.reasoning_signature and self._thoughts:
            self._signature.append(event.reasoning_signature)
        if event.text:
            self._signed(parts)
            parts.append(Part(text=event.text))
        for call in event.tool_calls:
            self._calls.add(call)
        return self._chunk(parts) if parts else b""

    def _signed(self, parts: list[Part]) -> None:
        """The signature over the thoughts so far, as an empty thought part carrying it."""
        if self._signature:
            signature = _signature("".join(self._signature))
            self._signature.clear()
            if signature is not None:
                parts.append(Part(text="", thought=True, thought_signature=signature))

    def usage(self, event: Usage) -> bytes:
        """Nothing yet: the counts come with the finish reason, in the last chunk."""
        return b""

    @property
    def ends_at_finish(self) -> bool:
        """Never: the last chunk carries the usage, which comes after the finish."""
        return False

    def finish(self, done: Done, usage: Usage | None) -> bytes:
        """The last chunk: the calls (each whole), the finish reason and the usage."""
        parts: list[Part] = []
        self._signed(parts)
        parts += self._calls.parts()
        out = self._chunk(parts, finish_reason(done), usage)
        return out if self._sse else out + b"]"

    def error(self, error: ApiError) -> bytes:
        """`{"error": {...}}` in place of a chunk: the google-genai SDK raises it as an
        APIError (it checks every chunk for it)."""
        out = self._frame(gemini_error_body(error))
        return out if self._sse else out + b"]"


class _Text:
    __slots__ = ("parts", "signature", "thought")

    def __init__(self, thought: bool) -> None:
        self.thought = thought
        self.parts: list[str] = []
        self.signature = ""


class ResponseBuilder:
    """Collects reply-stream events into one `GenerateContentResponse`: thoughts (when
    asked for) and text in the order they came, then the calls."""

    def __init__(self, response_id: str, model: str, *, thoughts: bool = False) -> None:
        self._id = response_id
        self._model = model
        self._thoughts = thoughts
        self._texts: list[_Text] = []
        self._calls = _Calls(response_id)

    def _text(self, thought: bool) -> _Text:
        if not self._texts or self._texts[-1].thought != thought:
            self._texts.append(_Text(thought))
        return self._texts[-1]

    def add(self, event: Delta) -> None:
        if self._thoughts:
            if event.reasoning:
                self._text(True).parts.append(event.reasoning)
            if event.reasoning_signature:
                self._text(True).signature += event.reasoning_signature
        if event.text:
            self._text(False).parts.append(event.text)
        for call in event.tool_calls:
            self._calls.add(call)

    def build(self, done: Done, usage: Usage | None) -> bytes:
        parts = [
            Part(
                text="".join(text.parts),
                thought=text.thought or None,
                thought_signature=_signature(text.signature),
            )
            for text in self._texts
        ]
        parts += self._calls.parts()
        response = GenerateContentResponse(
            candidates=_candidate(parts, finish_reason(done)),
            usage_metadata=usage_metadata(usage) if usage is not None else None,
            model_version=self._model,
            response_id=self._id,
        )
        return _encode(response)


# --- models ------------------------------------------------------------------------------


class _RouterModel(msgspec.Struct):
    """A model in the router's registry answers (`GET /v1/models`' shape)."""

    id: str
    aliases: list[str] = []
    providers: list[str] = []
    offers: list[_Offer] = []


class _Offer(msgspec.Struct):
    provider: str = ""
    max_tokens: int | None = None
    features: dict[str, bool] = {}


class _RouterModels(msgspec.Struct):
    data: list[_RouterModel] = []


_router_model = msgspec.json.Decoder(_RouterModel)
_router_models = msgspec.json.Decoder(_RouterModels)

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000


def _model(entry: _RouterModel) -> Model:
    served = ", ".join(entry.providers or [offer.provider for offer in entry.offers])
    description = f"{entry.id} through llmbus"
    if served:
        description += f" (providers: {served})"
    if entry.aliases:
        description += f"; aliases: {', '.join(entry.aliases)}"
    limits = [offer.max_tokens for offer in entry.offers if offer.max_tokens]
    methods = list(GEMINI_METHODS)
    if entry.offers and all(offer.features.get("embeddings") for offer in entry.offers):
        # An embedding model answers `POST /v1/embeddings` only.
        description += "; an embedding model, served by POST /v1/embeddings"
        methods = []
    return Model(
        name=f"models/{entry.id}",
        base_model_id=entry.id,
        version="llmbus",
        display_name=entry.id,
        description=description,
        output_token_limit=max(limits) if limits else None,
        supported_generation_methods=methods,
    )


def gemini_models(router_answer: bytes, page_size: int | None, page_token: str) -> bytes:
    """The router's model list (`{"data": [...]}`) as Gemini's `ListModelsResponse`, one
    page of it: `pageToken` is the offset the previous page ended at."""
    models = _router_models.decode(router_answer).data
    size = DEFAULT_PAGE_SIZE if not page_size or page_size < 0 else min(page_size, MAX_PAGE_SIZE)
    start = 0
    if page_token:
        if not page_token.isdigit() or int(page_token) > len(models):
            raise InvalidRequest("`pageToken` is not one this gateway gave", param="pageToken")
        start = int(page_token)
    end = start + size
    page = [_model(entry) for entry in models[start:end]]
    return _encode(ListModelsResponse(models=page, next_page_token=str(end) if end < len(models) else None))


def gemini_model(router_answer: bytes) -> bytes:
    """The router's answer for one model as a Gemini `Model` resource."""
    return _encode(_model(_router_model.decode(router_answer)))


# --- errors ------------------------------------------------------------------------------

_STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_status(status: int) -> str:
    """The canonical `google.rpc.Code` name for an HTTP status (Google's mapping; other
    4xx are INVALID_ARGUMENT, other 5xx INTERNAL)."""
    return _STATUS_NAMES.get(status) or ("INVALID_ARGUMENT" if status < 500 else "INTERNAL")


def gemini_error_body(error: ApiError) -> bytes:
    """`{"error": {"code", "message", "status", "details"}}`: the gateway's error code as
    a `google.rpc.ErrorInfo` reason, and the wait before a retry as `RetryInfo` (which
    Gemini clients read)."""
    details = [
        ErrorDetail(
            type="type.googleapis.com/google.rpc.ErrorInfo", reason=error.code.upper(), domain="llmbus"
        )
    ]
    if error.retry_after:
        details.append(
            ErrorDetail(
                type="type.googleapis.com/google.rpc.RetryInfo",
                retry_delay=f"{max(1, math.ceil(error.retry_after))}s",
            )
        )
    status = Status(
        code=error.status, message=error.message, status=gemini_status(error.status), details=details
    )
    return _encode(ErrorBody(error=status))
