"""The Anthropic client dialect: Messages requests validated and translated to the
normalized request; reply-stream events written back as Anthropic stream events or as
one whole `message`; errors in Anthropic's body.

Where the two shapes differ:
- Anthropic puts tool results inside a user turn; the normalized form has one `tool`
  message per result. Blocks keep their order, so a turn `[tool_result, text]` becomes a
  tool message followed by a user message.
- Anthropic's `input_tokens` excludes cached tokens; the normalized `prompt_tokens`
  includes them.
- A stream is a sequence of content blocks; the normalized events are flat fragments.
  A new block starts whenever the kind of fragment (thinking, text, tool call) or the
  tool call's index changes.
"""

from __future__ import annotations

from typing import Final, Literal, TypeVar

import msgspec

from llmbus.api.anthropic_wire import (
    Base64Source,
    ContentBlockDeltaEvent,
    ContentBlockStartEvent,
    CountTokensRequest,
    DocumentBlock,
    ErrorBody,
    ErrorDetail,
    FileSource,
    ImageBlock,
    JsonOutputFormat,
    MessageDelta,
    MessageDeltaEvent,
    MessageDeltaUsage,
    MessageParam,
    MessagesRequest,
    MessageStartEvent,
    RedactedThinkingBlock,
    RequestBlock,
    ResponseBlock,
    ResponseMessage,
    SignatureDelta,
    TextBlock,
    ThinkingBlock,
    ThinkingEnabled,
    ToolChoice,
    ToolChoiceAny,
    ToolChoiceAuto,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
    WireUsage,
)
from llmbus.api.bodies import decode_body
from llmbus.api.errors import ApiError, InvalidRequest
from llmbus.proto import (
    ChatRequest,
    Delta,
    Done,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "MessageBuilder",
    "MessageStreamWriter",
    "anthropic_error_body",
    "anthropic_error_type",
    "decode_count_tokens_request",
    "decode_messages_request",
    "stop_reason",
]

_Request = TypeVar("_Request", bound=CountTokensRequest)
_messages_decoder = msgspec.json.Decoder(MessagesRequest)
_count_decoder = msgspec.json.Decoder(CountTokensRequest)
_encode = msgspec.json.Encoder().encode


# --- requests ----------------------------------------------------------------------------


def decode_messages_request(body: bytes) -> ChatRequest:
    """Validate a `POST /v1/messages` body and return the normalized request.

    Raises InvalidRequest naming the offending field (`param`)."""
    return _normalize(decode_body(_messages_decoder, body))


def decode_count_tokens_request(body: bytes) -> ChatRequest:
    """Validate a `POST /v1/messages/count_tokens` body (no `max_tokens` needed) and
    return the normalized request, so that counting sees what a request would send."""
    return _normalize(decode_body(_count_decoder, body))


def _normalize(wire: CountTokensRequest) -> ChatRequest:
    messages: list[Message] = []
    if wire.system:
        messages.append(Message(role="system", content=_system(wire.system)))
    for i, message in enumerate(wire.messages):
        messages.extend(_turn(message, f"messages[{i}]"))
    tool_choice, parallel = _tool_choice(wire.tool_choice)
    output = wire.output_config
    request = ChatRequest(
        model=wire.model,
        messages=messages,
        tools=_tools(wire),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        # `adaptive` thinking leaves the depth to the model (and `effort`): nothing to set.
        thinking_budget=wire.thinking.budget_tokens if isinstance(wire.thinking, ThinkingEnabled) else None,
        reasoning_effort=output.effort if output else None,
        response_format=_response_format(output.format) if output and output.format else None,
    )
    if not isinstance(wire, MessagesRequest):
        return request
    stream = bool(wire.stream)
    return msgspec.structs.replace(
        request,
        stream=stream,
        include_usage=stream,
        max_tokens=wire.max_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        top_k=wire.top_k,
        stop=list(wire.stop_sequences or []),
        user=wire.metadata.user_id if wire.metadata else None,
    )


def _response_format(output_format: JsonOutputFormat) -> dict[str, object]:
    """Anthropic's structured output in the normalized (OpenAI) `response_format` shape."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": output_format.schema, "strict": True},
    }


def _system(system: str | list[TextBlock]) -> str | list[TextPart | ImagePart]:
    if isinstance(system, str):
        return system
    return _content([TextPart(text=block.text) for block in system])


def _content(parts: list[TextPart | ImagePart]) -> str | list[TextPart | ImagePart]:
    """One text part is sent as a plain string, which every upstream accepts."""
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    return parts


def _turn(message: MessageParam, param: str) -> list[Message]:
    if isinstance(message.content, str):
        return [Message(role=message.role, content=message.content)]
    if not message.content:
        raise InvalidRequest(
            f"`{param}.content` needs at least one content block",
            param=f"{param}.content",
            code="invalid_value",
        )
    if message.role == "user":
        return _user_turn(message.content, param)
    return [_assistant_turn(message.content, param)]


def _user_turn(blocks: list[RequestBlock], param: str) -> list[Message]:
    out: list[Message] = []
    parts: list[TextPart | ImagePart] = []
    for j, block in enumerate(blocks):
        at = f"{param}.content[{j}]"
        match block:
            case TextBlock():
                parts.append(TextPart(text=block.text))
            case ImageBlock():
                parts.append(_image(block, at))
            case ToolResultBlock():
                if parts:
                    out.append(Message(role="user", content=_content(parts)))
                    parts = []
                out.append(_tool_result(block, at))
            case DocumentBlock():
                raise _document(at)
            case _:
                raise InvalidRequest(
                    f"a `{_block_type(block)}` block belongs in an assistant message",
                    param=f"{at}.type",
                    code="invalid_value",
                )
    if parts:
        out.append(Message(role="user", content=_content(parts)))
    return out


def _assistant_turn(blocks: list[RequestBlock], param: str) -> Message:
    parts: list[TextPart | ImagePart] = []
    calls: list[ToolCall] = []
    thinking: list[str] = []
    signature: str | None = None
    for j, block in enumerate(blocks):
        at = f"{param}.content[{j}]"
        match block:
            case TextBlock():
                parts.append(TextPart(text=block.text))
            case ToolUseBlock():
                calls.append(ToolCall(id=block.id, name=block.name, arguments=_encode(block.input).decode()))
            case ThinkingBlock():
                thinking.append(block.thinking)
                signature = block.signature or signature
            case RedactedThinkingBlock():
                # Encrypted thinking only its writer can read: the normalized form has no
                # place for it, and no other provider could use it.
                pass
            case DocumentBlock():
                raise _document(at)
            case _:
                raise InvalidRequest(
                    f"a `{_block_type(block)}` block belongs in a user message",
                    param=f"{at}.type",
                    code="invalid_value",
                )
    return Message(
        role="assistant",
        content=_content(parts) if parts else None,
        tool_calls=calls,
        reasoning="".join(thinking) if thinking else None,
        reasoning_signature=signature,
    )


def _tool_result(block: ToolResultBlock, param: str) -> Message:
    content: str | list[TextPart | ImagePart]
    if isinstance(block.content, list):
        content = _content(
            [
                _image(part, f"{param}.content[{k}]")
                if isinstance(part, ImageBlock)
                else TextPart(text=part.text)
                for k, part in enumerate(block.content)
            ]
        )
    else:
        content = block.content or ""
    return Message(
        role="tool", tool_call_id=block.tool_use_id, content=content, is_error=bool(block.is_error)
    )


def _image(block: ImageBlock, param: str) -> ImagePart:
    match block.source:
        case Base64Source(media_type=media_type, data=data):
            return ImagePart(url=f"data:{media_type};base64,{data}")
        case FileSource():
            raise InvalidRequest(
                "images from Anthropic's Files API (`source.type: file`) cannot be served through "
                "this gateway: send the image as `base64` or `url`",
                param=f"{param}.source.type",
                code="unsupported_value",
            )
        case _:
            return ImagePart(url=block.source.url)


def _document(param: str) -> InvalidRequest:
    return InvalidRequest(
        "`document` blocks (PDF and text documents) are not supported by this gateway: "
        "send the text as a `text` block",
        param=f"{param}.type",
        code="unsupported_value",
    )


def _block_type(block: RequestBlock) -> str:
    """The block's `type` tag, as the client wrote it."""
    return str(type(block).__struct_config__.tag)


def _tools(wire: CountTokensRequest) -> list[Tool]:
    tools: list[Tool] = []
    for i, tool in enumerate(wire.tools or []):
        if tool.type not in (None, "custom"):
            raise InvalidRequest(
                f"`{tool.type}` is a server tool that runs inside Anthropic and cannot be served "
                "through this gateway: define a client tool with `input_schema` instead",
                param=f"tools[{i}].type",
                code="unsupported_value",
            )
        if tool.input_schema is None:
            raise InvalidRequest(
                f"missing required field `tools[{i}].input_schema`",
                param=f"tools[{i}].input_schema",
                code="invalid_value",
            )
        tools.append(Tool(name=tool.name, description=tool.description, parameters=tool.input_schema))
    return tools


_Mode = Literal["auto", "none", "required"] | NamedToolChoice | None


def _tool_choice(choice: ToolChoice | None) -> tuple[_Mode, bool | None]:
    """The normalized tool choice and `parallel_tool_calls`."""
    match choice:
        case None:
            return None, None
        case ToolChoiceNone():
            return "none", None
        case ToolChoiceAuto():
            return "auto", _parallel(choice.disable_parallel_tool_use)
        case ToolChoiceAny():
            return "required", _parallel(choice.disable_parallel_tool_use)
        case ToolChoiceTool():
            return NamedToolChoice(name=choice.name), _parallel(choice.disable_parallel_tool_use)


def _parallel(disable: bool | None) -> bool | None:
    return False if disable else None


# --- answers -----------------------------------------------------------------------------

_STOP_REASONS: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(done: Done, used_tools: bool) -> tuple[str, str | None]:
    """Anthropic's `stop_reason` and `stop_sequence` for a finish.

    Some upstreams (Gemini) finish a turn that called tools with a plain `stop`; an
    Anthropic client loops on `tool_use`, so a turn with tool calls says so."""
    if done.finish_reason == "stop":
        if done.stop_sequence:
            return "stop_sequence", done.stop_sequence
        if used_tools:
            return "tool_use", None
    return _STOP_REASONS.get(done.finish_reason, "end_turn"), None


def _input_tokens(usage: Usage) -> int:
    return max(usage.prompt_tokens - usage.cached_tokens - usage.cache_creation_tokens, 0)


def _wire_usage(usage: Usage | None) -> WireUsage:
    if usage is None:
        return WireUsage()
    return WireUsage(
        input_tokens=_input_tokens(usage),
        output_tokens=usage.completion_tokens,
        cache_creation_input_tokens=usage.cache_creation_tokens,
        cache_read_input_tokens=usage.cached_tokens,
    )


def _delta_usage(usage: Usage | None) -> MessageDeltaUsage:
    if usage is None:
        return MessageDeltaUsage(output_tokens=0)
    return MessageDeltaUsage(
        output_tokens=usage.completion_tokens,
        input_tokens=_input_tokens(usage),
        cache_creation_input_tokens=usage.cache_creation_tokens,
        cache_read_input_tokens=usage.cached_tokens,
    )


def _arguments(text: str) -> dict[str, object]:
    """A tool call's arguments as an object; arguments cut short (by `max_tokens`) or not
    an object come back as `{}` rather than failing the whole answer."""
    try:
        value = msgspec.json.decode(text) if text else {}
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


_THINKING: Final = 1
_TEXT: Final = 2
_TOOL: Final = 3

_PING: Final = b'event: ping\ndata: {"type":"ping"}\n\n'
_MESSAGE_STOP: Final = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_DELTA_TAIL: Final = b"}}\n\n"


def _event(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


def _delta_head(index: int, kind: bytes, field: bytes) -> bytes:
    """`event: content_block_delta` up to the opening quote of the delta's value."""
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
        + str(index).encode()
        + b',"delta":{"type":"'
        + kind
        + b'","'
        + field
        + b'":'
    )


class MessageStreamWriter:
    """Encodes reply-stream events as Anthropic Messages stream events (SSE bytes).

    Call `start()` once, `delta()` per Delta, then `finish()` or `error()`. The part of a
    delta event before its text is encoded once per content block."""

    __slots__ = (
        "_head",
        "_id",
        "_index",
        "_kind",
        "_model",
        "_next",
        "_signature",
        "_tool_blocks",
        "_tool_index",
    )

    def __init__(self, message_id: str, model: str) -> None:
        self._id = message_id
        self._model = model
        self._next = 0
        self._index = -1
        """The open block's index, -1 when none is open."""
        self._kind = 0
        self._tool_index = -1
        self._head = b""
        self._signature: list[str] = []
        """Fragments of the open thinking block's signature."""
        self._tool_blocks: dict[int, int] = {}
        """Tool-call index → the index of its tool_use block."""

    def start(self) -> bytes:
        """`message_start` (usage not known yet: the final counts come in `message_delta`),
        then a `ping`, as Anthropic sends."""
        message = ResponseMessage(id=self._id, model=self._model)
        return _event(b"message_start", _encode(MessageStartEvent(message=message))) + _PING

    def delta(self, event: Delta) -> bytes:
        out: list[bytes] = []
        if event.reasoning:
            self._open(_THINKING, out)
            out.append(self._head + _encode(event.reasoning) + _DELTA_TAIL)
        if event.reasoning_signature:
            # Sent whole when the block closes: the anthropic SDK keeps the last
            # `signature_delta` rather than joining them, and Anthropic sends one.
            self._open(_THINKING, out)
            self._signature.append(event.reasoning_signature)
        if event.text:
            self._open(_TEXT, out)
            out.append(self._head + _encode(event.text) + _DELTA_TAIL)
        for call in event.tool_calls:
            self._tool_call(call, out)
        return b"".join(out)

    def usage(self, event: Usage) -> bytes:
        """Nothing yet: Anthropic reports usage in `message_delta`, at the finish."""
        return b""

    @property
    def ends_at_finish(self) -> bool:
        """Never: `message_delta` carries the usage, which comes after the finish."""
        return False

    def finish(self, done: Done, usage: Usage | None) -> bytes:
        """Closes the open block, then `message_delta` with the stop reason and the final
        usage (input tokens included), then `message_stop`."""
        out: list[bytes] = []
        self._close(out)
        reason, sequence = stop_reason(done, bool(self._tool_blocks))
        data = _encode(
            MessageDeltaEvent(
                delta=MessageDelta(stop_reason=reason, stop_sequence=sequence), usage=_delta_usage(usage)
            )
        )
        out.append(_event(b"message_delta", data))
        out.append(_MESSAGE_STOP)
        return b"".join(out)

    @staticmethod
    def error(error: ApiError) -> bytes:
        """`event: error`: the anthropic SDK raises it as an APIStatusError."""
        return _event(b"error", anthropic_error_body(error))

    def _open(self, kind: int, out: list[bytes]) -> None:
        if self._kind == kind and self._index >= 0:
            return
        self._close(out)
        block: ResponseBlock
        if kind == _THINKING:
            block = ThinkingBlock(thinking="", signature="")
            head = (b"thinking_delta", b"thinking")
        else:
            block = TextBlock(text="")
            head = (b"text_delta", b"text")
        self._start(kind, block, out)
        self._head = _delta_head(self._index, *head)

    def _start(self, kind: int, block: ResponseBlock, out: list[bytes]) -> None:
        self._index = self._next
        self._next += 1
        self._kind = kind
        data = _encode(ContentBlockStartEvent(index=self._index, content_block=block))
        out.append(_event(b"content_block_start", data))

    def _close(self, out: list[bytes]) -> None:
        if self._index < 0:
            return
        if self._signature:
            delta = SignatureDelta(signature="".join(self._signature))
            data = _encode(ContentBlockDeltaEvent(index=self._index, delta=delta))
            out.append(_event(b"content_block_delta", data))
            self._signature.clear()
        out.append(
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
            + str(self._index).encode()
            + b"}\n\n"
        )
        self._index = -1
        self._kind = 0
        self._tool_index = -1

    def _tool_call(self, call: ToolCallDelta, out: list[bytes]) -> None:
        if self._kind == _TOOL and self._tool_index == call.index:
            head = self._head
        elif (block := self._tool_blocks.get(call.index)) is not None:
            # Fragments of parallel calls interleaved (OpenAI may do so): a block cannot
            # reopen, so the fragment goes to its own block's index, which the client's
            # accumulator addresses by index.
            head = _delta_head(block, b"input_json_delta", b"partial_json")
        else:
            self._close(out)
            tool_id = call.id or f"toolu_{self._id.removeprefix('msg_')}_{call.index}"
            self._start(_TOOL, ToolUseBlock(id=tool_id, name=call.name or "", input={}), out)
            self._tool_index = call.index
            self._tool_blocks[call.index] = self._index
            head = self._head = _delta_head(self._index, b"input_json_delta", b"partial_json")
        if call.arguments:
            out.append(head + _encode(call.arguments) + _DELTA_TAIL)


class _Block:
    __slots__ = ("id", "kind", "name", "signature", "text")

    def __init__(self, kind: int, id: str = "", name: str = "") -> None:
        self.kind = kind
        self.id = id
        self.name = name
        self.text: list[str] = []
        self.signature = ""

    def build(self) -> ResponseBlock:
        text = "".join(self.text)
        if self.kind == _THINKING:
            return ThinkingBlock(thinking=text, signature=self.signature)
        if self.kind == _TOOL:
            return ToolUseBlock(id=self.id, name=self.name, input=_arguments(text))
        return TextBlock(text=text)


class MessageBuilder:
    """Collects reply-stream events into one Anthropic `message`, with content blocks in
    the order the stream would have opened them."""

    def __init__(self, message_id: str, model: str) -> None:
        self._id = message_id
        self._model = model
        self._blocks: list[_Block] = []
        self._tools: dict[int, _Block] = {}

    def add(self, event: Delta) -> None:
        if event.reasoning:
            self._block(_THINKING).text.append(event.reasoning)
        if event.reasoning_signature:
            self._block(_THINKING).signature += event.reasoning_signature
        if event.text:
            self._block(_TEXT).text.append(event.text)
        for call in event.tool_calls:
            block = self._tools.get(call.index)
            if block is None:
                tool_id = call.id or f"toolu_{self._id.removeprefix('msg_')}_{call.index}"
                block = self._tools[call.index] = _Block(_TOOL, tool_id, call.name or "")
                self._blocks.append(block)
            block.text.append(call.arguments)

    def _block(self, kind: int) -> _Block:
        if not self._blocks or self._blocks[-1].kind != kind:
            self._blocks.append(_Block(kind))
        return self._blocks[-1]

    def build(self, done: Done, usage: Usage | None) -> bytes:
        reason, sequence = stop_reason(done, bool(self._tools))
        message = ResponseMessage(
            id=self._id,
            model=self._model,
            content=[block.build() for block in self._blocks],
            stop_reason=reason,
            stop_sequence=sequence,
            usage=_wire_usage(usage),
        )
        return _encode(message)


# --- errors ------------------------------------------------------------------------------

_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """Anthropic's error `type` for an HTTP status (its documented table; other 4xx are
    `invalid_request_error`, as Anthropic says it does, other 5xx `api_error`)."""
    return _ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def anthropic_error_body(error: ApiError) -> bytes:
    """`{"type": "error", "error": {"type", "message"}}`."""
    return _encode(
        ErrorBody(error=ErrorDetail(type=anthropic_error_type(error.status), message=error.message))
    )
