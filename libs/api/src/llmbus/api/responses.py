"""The OpenAI Responses API dialect (`POST /v1/responses`): request validation and
translation to the normalized request; the Response object and its stream of events
built from reply-stream events.

A request becomes a chat request as follows:

- `instructions` → a system message first (never carried over from a previous response,
  as OpenAI documents);
- `input` as a string → one user message; as items: `message` items (`input_text`,
  `input_image`; an assistant's `output_text`), `function_call` items joined to the
  assistant turn they belong to, `function_call_output` items → tool messages, and
  `reasoning` items (their summary, `encrypted_content` as the reasoning's signature) →
  the reasoning of the next assistant turn;
- function tools in the flat shape, `tool_choice`, `max_output_tokens`, `temperature`,
  `top_p`, `parallel_tool_calls`, `reasoning.effort` → `reasoning_effort`,
  `text.format` (`json_schema`, `json_object`) → the structured-output response format;
- `include`, `prompt_cache_key`, `reasoning.summary`, `store`, `service_tier`,
  `truncation`, `metadata`, `user`, `safety_identifier`: accepted; what the gateway
  cannot do with them it leaves out, what OpenAI echoes is echoed.

`previous_response_id` is resolved by the edge (the stored conversation goes first).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from llmbus.api.bodies import decode_body
from llmbus.api.errors import ApiError, InvalidRequest
from llmbus.api.responses_wire import FunctionTool, InputContent, InputItem, ResponsesRequest
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
    Usage,
)
from llmbus.proto.chat import Role

__all__ = [
    "ResponseBuilder",
    "ResponseEventStream",
    "ResponseOutput",
    "ResponsesTurn",
    "decode_responses_request",
    "deleted_body",
    "to_chat_request",
]

_request_decoder = msgspec.json.Decoder(ResponsesRequest)
_encode = msgspec.json.Encoder().encode


def decode_responses_request(body: bytes) -> ResponsesRequest:
    """Validate a Responses API body. Raises InvalidRequest naming the offending field."""
    return decode_body(_request_decoder, body)


@dataclass(slots=True)
class ResponsesTurn:
    """One request of the Responses API: the wire request (what the Response object
    echoes), the normalized chat request, and the conversation to keep if it is stored:
    the previous response's messages and this request's input (without instructions)."""

    wire: ResponsesRequest
    chat: ChatRequest
    conversation: list[Message] = field(default_factory=list)
    custom_tools: frozenset[str] = frozenset()
    """Tools of type `custom` (free-form input): a function with one string argument
    `input` for the target, a `custom_tool_call` for the client."""

    @property
    def store(self) -> bool:
        return self.wire.store is not False


def to_chat_request(wire: ResponsesRequest, history: list[Message] | None = None) -> ResponsesTurn:
    """The normalized request of `wire`, continuing `history` (the messages of the
    response named by `previous_response_id`)."""
    conversation = list(history or [])
    if isinstance(wire.input, str):
        conversation.append(Message(role="user", content=wire.input))
    elif wire.input:
        conversation.extend(_messages(wire.input))
    if not conversation:
        raise InvalidRequest("`input` is missing or empty.", param="input", code="missing_field")
    messages = (
        [Message(role="system", content=wire.instructions)] if wire.instructions else []
    ) + conversation
    tools: list[Tool] = []
    custom: set[str] = set()
    for index, tool in enumerate(wire.tools or []):
        if tool.type not in ("function", "custom"):
            continue  # a hosted tool (web search, ...): not the client's to run
        if not tool.name:
            raise InvalidRequest(
                f"a {tool.type} tool needs `name`", param=f"tools[{index}].name", code="missing_field"
            )
        if tool.type == "custom":
            custom.add(tool.name)
            tools.append(
                Tool(name=tool.name, description=tool.description, parameters=_custom_input(tool.format))
            )
        else:
            tools.append(
                Tool(
                    name=tool.name,
                    description=tool.description,
                    parameters=tool.parameters,
                    strict=tool.strict,
                )
            )
    tool_choice: Any = None
    if isinstance(wire.tool_choice, str):
        tool_choice = wire.tool_choice
    elif wire.tool_choice is not None:
        if wire.tool_choice.type in ("function", "custom") and wire.tool_choice.name:
            tool_choice = NamedToolChoice(name=wire.tool_choice.name)
        elif wire.tool_choice.mode in ("auto", "required"):
            tool_choice = wire.tool_choice.mode
    chat = ChatRequest(
        model=wire.model,
        messages=messages,
        stream=bool(wire.stream),
        include_usage=True,
        max_tokens=wire.max_output_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        user=wire.user or wire.safety_identifier,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=wire.parallel_tool_calls,
        response_format=_response_format(wire),
        reasoning_effort=wire.reasoning.effort if wire.reasoning else None,
        metadata=wire.metadata or {},
    )
    return ResponsesTurn(wire=wire, chat=chat, conversation=conversation, custom_tools=frozenset(custom))


def _custom_input(form: dict[str, Any] | None) -> dict[str, Any]:
    """A custom tool's free-form input as a function's one string argument; a grammar
    the client gives is passed on in its description."""
    described = "The tool's input, as free-form text."
    if form and form.get("type") == "grammar" and isinstance(form.get("definition"), str):
        described += f" It follows this {form.get('syntax', '')} grammar:\n{form['definition']}"
    return {
        "type": "object",
        "properties": {"input": {"type": "string", "description": described}},
        "required": ["input"],
    }


def _response_format(wire: ResponsesRequest) -> dict[str, Any] | None:
    """`text.format` as the chat request's `response_format` (structured output)."""
    form = wire.text.format if wire.text else None
    if form is None or form.type == "text":
        return None
    if form.type == "json_object":
        return {"type": "json_object"}
    if form.type == "json_schema":
        if not form.name or form.schema_ is None:
            raise InvalidRequest(
                "`text.format` of type `json_schema` needs `name` and `schema`",
                param="text.format",
                code="missing_field",
            )
        schema: dict[str, Any] = {"name": form.name, "schema": form.schema_}
        if form.strict is not None:
            schema["strict"] = form.strict
        if form.description:
            schema["description"] = form.description
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        f"`text.format.type` `{form.type}` is not one of text, json_object, json_schema",
        param="text.format.type",
        code="invalid_value",
    )


def _parts(content: str | list[InputContent] | None, where: str) -> str | list[TextPart | ImagePart]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[TextPart | ImagePart] = []
    for index, part in enumerate(content):
        if part.type in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            parts.append(TextPart(text=part.text or ""))
        elif part.type == "refusal":
            parts.append(TextPart(text=part.refusal or part.text or ""))
        elif part.type == "input_image":
            if not part.image_url:
                raise InvalidRequest(
                    "this gateway takes images as `image_url` (a URL or a data URL), not `file_id`",
                    param=f"{where}[{index}].image_url",
                    code="unsupported_value",
                )
            parts.append(ImagePart(url=part.image_url, detail=part.detail))
        else:
            raise InvalidRequest(
                f"content of type `{part.type}` is not supported by this gateway",
                param=f"{where}[{index}].type",
                code="unsupported_value",
            )
    if all(isinstance(part, TextPart) for part in parts):
        return "".join(part.text for part in parts if isinstance(part, TextPart))
    return parts


def _text(content: str | list[TextPart | ImagePart]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


_INPUT_ROLES: dict[str, Role] = {"user": "user", "system": "system", "developer": "developer"}


class _Assistant:
    """An assistant turn being gathered from consecutive items."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.reasoning: list[str] = []
        self.signature: str | None = None

    def message(self) -> Message:
        return Message(
            role="assistant",
            content="".join(self.text) or None,
            tool_calls=self.calls,
            reasoning="\n\n".join(self.reasoning) or None,
            reasoning_signature=self.signature,
        )


def _messages(items: list[InputItem]) -> list[Message]:
    """Input items as normalized messages: an assistant's message, its function calls and
    the reasoning before them become one assistant turn."""
    out: list[Message] = []
    turn: _Assistant | None = None

    def flush() -> None:
        nonlocal turn
        if turn is not None:
            out.append(turn.message())
            turn = None

    for index, item in enumerate(items):
        where = f"input[{index}]"
        match item.type:
            case "message":
                role = item.role
                if role == "assistant":
                    if turn is not None and turn.calls:
                        flush()
                    turn = turn or _Assistant()
                    turn.text.append(_text(_parts(item.content, f"{where}.content")))
                elif role in _INPUT_ROLES:
                    flush()
                    out.append(
                        Message(role=_INPUT_ROLES[role], content=_parts(item.content, f"{where}.content"))
                    )
                else:
                    raise InvalidRequest(
                        f"a message's `role` must be user, assistant, system or developer, not `{role}`",
                        param=f"{where}.role",
                        code="invalid_value",
                    )
            case "function_call":
                if not item.call_id or not item.name:
                    raise InvalidRequest(
                        "a `function_call` item needs `call_id` and `name`", param=where, code="missing_field"
                    )
                turn = turn or _Assistant()
                turn.calls.append(ToolCall(id=item.call_id, name=item.name, arguments=item.arguments or ""))
            case "custom_tool_call":
                if not item.call_id or not item.name:
                    raise InvalidRequest(
                        "a `custom_tool_call` item needs `call_id` and `name`",
                        param=where,
                        code="missing_field",
                    )
                turn = turn or _Assistant()
                arguments = json.dumps({"input": item.input or ""})
                turn.calls.append(ToolCall(id=item.call_id, name=item.name, arguments=arguments))
            case "function_call_output" | "custom_tool_call_output":
                if not item.call_id:
                    raise InvalidRequest(
                        f"a `{item.type}` item needs `call_id`",
                        param=f"{where}.call_id",
                        code="missing_field",
                    )
                flush()
                out.append(
                    Message(
                        role="tool", tool_call_id=item.call_id, content=_parts(item.output, f"{where}.output")
                    )
                )
            case "reasoning":
                if turn is not None and (turn.calls or turn.text):
                    flush()
                turn = turn or _Assistant()
                summary = _text(_parts(item.summary or [], f"{where}.summary"))
                content = _text(_parts(item.content, f"{where}.content")) if item.content else ""
                if content or summary:
                    turn.reasoning.append(content or summary)
                if item.encrypted_content:
                    turn.signature = item.encrypted_content
            case _:
                raise InvalidRequest(
                    f"input items of type `{item.type}` are not supported by this gateway",
                    param=f"{where}.type",
                    code="unsupported_value",
                )
    flush()
    return out


def deleted_body(response_id: str) -> bytes:
    return _encode({"id": response_id, "object": "response", "deleted": True})


# --- the Response object and its events ----------------------------------------------------


def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class _Item:
    """One output item as it grows."""

    __slots__ = ("call_id", "chunks", "id", "index", "kind", "name", "open", "signature")

    def __init__(self, kind: str, index: int, call_id: str = "", name: str = "") -> None:
        self.kind = kind
        self.index = index
        self.id = _item_id(
            {"message": "msg", "function_call": "fc", "custom_tool_call": "ctc", "reasoning": "rs"}[kind]
        )
        self.call_id = call_id
        self.name = name
        self.chunks: list[str] = []
        self.signature: list[str] = []
        self.open = True

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def custom_input(self) -> str:
        """A custom tool call's input: the target called a function with one string
        argument, `input`."""
        try:
            arguments = json.loads(self.text or "{}")
        except ValueError:
            return self.text
        value = arguments.get("input") if isinstance(arguments, dict) else None
        return value if isinstance(value, str) else self.text

    def wire(self, status: str, encrypted: bool = False) -> dict[str, Any]:
        if self.kind == "message":
            content = [{"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}]
            return {
                "id": self.id,
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": content if self.chunks or not self.open else [],
            }
        if self.kind == "function_call":
            return {
                "id": self.id,
                "type": "function_call",
                "status": status,
                "call_id": self.call_id,
                "name": self.name,
                "arguments": self.text,
            }
        if self.kind == "custom_tool_call":
            return {
                "id": self.id,
                "type": "custom_tool_call",
                "call_id": self.call_id,
                "name": self.name,
                "input": self.custom_input if not self.open else "",
            }
        item: dict[str, Any] = {
            "id": self.id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": self.text}] if self.chunks else [],
        }
        if encrypted and self.signature:
            item["encrypted_content"] = "".join(self.signature)
        return item


def _echo(tool: FunctionTool) -> dict[str, Any]:
    """A tool as the Response object lists it."""
    if tool.type == "custom":
        echoed: dict[str, Any] = {"type": "custom", "name": tool.name, "description": tool.description}
        echoed["format"] = tool.format or {"type": "text"}
        return echoed
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
        "strict": tool.strict,
    }


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class ResponseOutput:
    """The Response object of one request, grown from reply-stream deltas; every change
    is also an event of the stream (`events`, drained by the stream encoder), each with
    its `sequence_number`."""

    def __init__(self, response_id: str, turn: ResponsesTurn, created_at: int | None = None) -> None:
        self.id = response_id
        self.turn = turn
        self.created_at = created_at or int(time.time())
        self.items: list[_Item] = []
        self._calls: dict[int, _Item] = {}
        self._open: _Item | None = None
        self.events: list[dict[str, Any]] = []
        self.sequence = 0
        self._encrypted = "reasoning.encrypted_content" in (turn.wire.include or [])
        self.final: dict[str, Any] | None = None
        """The finished Response object (after `finish`)."""

    # events

    def _emit(self, kind: str, **fields: Any) -> None:
        self.events.append({"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1

    def drain(self) -> bytes:
        """The pending events as SSE (`event:` and `data:` lines)."""
        out = b"".join(
            b"event: " + event["type"].encode() + b"\ndata: " + _encode(event) + b"\n\n"
            for event in self.events
        )
        self.events.clear()
        return out

    # the object

    def response(
        self,
        status: str,
        usage: Usage | None = None,
        error: dict[str, Any] | None = None,
        incomplete: str | None = None,
        item_status: str = "completed",
    ) -> dict[str, Any]:
        wire = self.turn.wire
        chat = self.turn.chat
        form = wire.text.format if wire.text and wire.text.format else None
        text_format: dict[str, Any] = {"type": "text"}
        if form is not None and chat.response_format is not None:
            text_format = {"type": form.type}
            if form.type == "json_schema":
                text_format.update(
                    name=form.name, schema=form.schema_, strict=form.strict, description=form.description
                )
        tool_choice: Any = wire.tool_choice if isinstance(wire.tool_choice, str) else "auto"
        if isinstance(chat.tool_choice, NamedToolChoice):
            kind = "custom" if chat.tool_choice.name in self.turn.custom_tools else "function"
            tool_choice = {"type": kind, "name": chat.tool_choice.name}
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": wire.instructions,
            "max_output_tokens": wire.max_output_tokens,
            "model": chat.model,
            "output": [item.wire(item_status, self._encrypted) for item in self.items],
            "parallel_tool_calls": wire.parallel_tool_calls is not False,
            "previous_response_id": wire.previous_response_id,
            "reasoning": {
                "effort": wire.reasoning.effort if wire.reasoning else None,
                "summary": wire.reasoning.summary if wire.reasoning else None,
            },
            "store": self.turn.store,
            "temperature": wire.temperature if wire.temperature is not None else 1.0,
            "text": {"format": text_format},
            "tool_choice": tool_choice,
            "tools": [_echo(tool) for tool in wire.tools or [] if tool.type in ("function", "custom")],
            "top_p": wire.top_p if wire.top_p is not None else 1.0,
            "truncation": wire.truncation or "disabled",
            "usage": _usage(usage) if usage is not None else None,
            "user": wire.user,
            "metadata": wire.metadata or {},
        }
        if wire.prompt_cache_key is not None:
            body["prompt_cache_key"] = wire.prompt_cache_key
        if wire.safety_identifier is not None:
            body["safety_identifier"] = wire.safety_identifier
        if wire.service_tier is not None:
            body["service_tier"] = "default" if wire.service_tier == "auto" else wire.service_tier
        return body

    def start(self) -> None:
        self._emit("response.created", response=self.response("in_progress"))
        self._emit("response.in_progress", response=self.response("in_progress"))

    def _add(self, kind: str, call_id: str = "", name: str = "") -> _Item:
        item = _Item(kind, len(self.items), call_id, name)
        self.items.append(item)
        self._emit("response.output_item.added", output_index=item.index, item=item.wire("in_progress"))
        if kind == "message":
            self._emit(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        elif kind == "reasoning":
            self._emit(
                "response.reasoning_summary_part.added",
                item_id=item.id,
                output_index=item.index,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        return item

    def _close(self, item: _Item, status: str = "completed") -> None:
        if not item.open:
            return
        item.open = False
        if item.kind == "message":
            text = item.text
            self._emit(
                "response.output_text.done",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                text=text,
                logprobs=[],
            )
            self._emit(
                "response.content_part.done",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                part={"type": "output_text", "text": text, "annotations": [], "logprobs": []},
            )
        elif item.kind == "custom_tool_call":
            # The input is known whole once its JSON wrapping is: one delta, then done.
            self._emit(
                "response.custom_tool_call_input.delta",
                item_id=item.id,
                output_index=item.index,
                delta=item.custom_input,
            )
            self._emit(
                "response.custom_tool_call_input.done",
                item_id=item.id,
                output_index=item.index,
                input=item.custom_input,
            )
        elif item.kind == "function_call":
            self._emit(
                "response.function_call_arguments.done",
                item_id=item.id,
                output_index=item.index,
                arguments=item.text,
            )
        else:
            self._emit(
                "response.reasoning_summary_text.done",
                item_id=item.id,
                output_index=item.index,
                summary_index=0,
                text=item.text,
            )
            self._emit(
                "response.reasoning_summary_part.done",
                item_id=item.id,
                output_index=item.index,
                summary_index=0,
                part={"type": "summary_text", "text": item.text},
            )
        self._emit(
            "response.output_item.done", output_index=item.index, item=item.wire(status, self._encrypted)
        )

    def _switch(self, kind: str) -> _Item:
        """The open item of `kind` (a text or reasoning item), closing the one before."""
        if self._open is not None and self._open.kind == kind and self._open.open:
            return self._open
        if self._open is not None:
            self._close(self._open)
        self._open = self._add(kind)
        return self._open

    def add(self, event: Delta) -> None:
        if event.reasoning:
            item = self._switch("reasoning")
            item.chunks.append(event.reasoning)
            self._emit(
                "response.reasoning_summary_text.delta",
                item_id=item.id,
                output_index=item.index,
                summary_index=0,
                delta=event.reasoning,
            )
        if event.reasoning_signature:
            item = self._switch("reasoning")
            item.signature.append(event.reasoning_signature)
        if event.text:
            item = self._switch("message")
            item.chunks.append(event.text)
            self._emit(
                "response.output_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=event.text,
                logprobs=[],
            )
        for call in event.tool_calls:
            known = self._calls.get(call.index)
            if known is None:
                if self._open is not None:
                    self._close(self._open)
                kind = "custom_tool_call" if call.name in self.turn.custom_tools else "function_call"
                known = self._add(kind, call.id or _item_id("call"), call.name or "")
                self._calls[call.index] = known
                self._open = known
            else:
                known.call_id = call.id or known.call_id
                known.name = call.name or known.name
            if call.signature:
                known.signature.append(call.signature)  # kept for a stored conversation
            if call.arguments:
                known.chunks.append(call.arguments)
                if known.kind == "custom_tool_call":
                    continue
                self._emit(
                    "response.function_call_arguments.delta",
                    item_id=known.id,
                    output_index=known.index,
                    delta=call.arguments,
                )

    def finish(self, done: Done, usage: Usage | None) -> None:
        """Close every item and emit `response.completed` (or `response.incomplete`)."""
        incomplete = _INCOMPLETE.get(done.finish_reason)
        status = "incomplete" if incomplete else "completed"
        for item in self.items:
            self._close(item, status if item is self._open else "completed")
        self.final = self.response(status, usage, incomplete=incomplete, item_status=status)
        self._emit("response.incomplete" if incomplete else "response.completed", response=self.final)

    def fail(self, error: ApiError) -> None:
        """The stream failed after it began: `response.failed` with the error."""
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        self.final = self.response(
            "failed", error={"code": code, "message": error.message}, item_status="incomplete"
        )
        self._emit("response.failed", response=self.final)

    def assistant_message(self) -> Message:
        """The output as the assistant turn of the conversation (what a later request
        with `previous_response_id` continues)."""
        text = "".join(item.text for item in self.items if item.kind == "message")
        reasoning = "".join(item.text for item in self.items if item.kind == "reasoning")
        signature = "".join("".join(item.signature) for item in self.items if item.kind == "reasoning")
        # A tool call's own signature (Gemini's thoughtSignature) stays on the call.
        return Message(
            role="assistant",
            content=text or None,
            tool_calls=[
                ToolCall(
                    id=item.call_id,
                    name=item.name,
                    arguments=item.text,
                    signature="".join(item.signature) or None,
                )
                for item in self.items
                if item.kind in ("function_call", "custom_tool_call")
            ],
            reasoning=reasoning or None,
            reasoning_signature=signature or None,
        )


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_creation_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


class ResponseEventStream:
    """The Responses API's SSE events as the relay's StreamEncoder: `response.created` and
    `response.in_progress` first, each output item opened, filled and closed as its
    deltas come, then `response.completed` (or `.incomplete`) with the whole Response
    object and its usage; `response.failed` when the stream fails after it began."""

    __slots__ = ("output",)

    def __init__(self, output: ResponseOutput) -> None:
        self.output = output

    def start(self) -> bytes:
        self.output.start()
        return self.output.drain()

    def delta(self, event: Delta) -> bytes:
        self.output.add(event)
        return self.output.drain()

    def usage(self, event: Usage) -> bytes:
        return b""

    @property
    def ends_at_finish(self) -> bool:
        return False  # the last event carries the usage, which comes after the finish reason

    def finish(self, done: Done, usage: Usage | None) -> bytes:
        self.output.finish(done, usage)
        return self.output.drain()

    def error(self, error: ApiError) -> bytes:
        self.output.fail(error)
        return self.output.drain()


class ResponseBuilder:
    """The whole Response object as the relay's AnswerBuilder."""

    __slots__ = ("output",)

    def __init__(self, output: ResponseOutput) -> None:
        self.output = output

    def add(self, event: Delta) -> None:
        self.output.add(event)
        self.output.events.clear()

    def build(self, done: Done, usage: Usage | None) -> bytes:
        self.output.finish(done, usage)
        self.output.events.clear()
        assert self.output.final is not None
        return _encode(self.output.final)
