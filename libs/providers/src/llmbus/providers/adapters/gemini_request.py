"""The normalized chat request as a Gemini `GenerateContentRequest`.

Decisions, each because of what the Gemini API accepts:

- system and developer messages, wherever they stand, become one `systemInstruction`
  (Gemini has no system turn); roles are `user` and `model`, and consecutive turns of
  one role are merged (tool results join the user turn around them).
- Images: a base64 data URL becomes `inlineData`; an http(s) URL becomes `fileData`
  with the media type guessed from the path's extension. An unknown extension, a
  non-base64 data URL or another scheme is refused (`Unsupported`) rather than sent with
  a guessed type that the API would reject or misread.
- Tool calls go back as `functionCall` parts carrying their `thoughtSignature`. Gemini 3
  rejects a step whose first call has none, so a call from another provider's history
  gets Google's documented placeholder (`skip_thought_signature_validator`).
- Tool results become `functionResponse` parts, named after the call they answer (looked
  up by id in the history); `response` is the result when it is a JSON object,
  `{"result": text}` otherwise, `{"error": text}` for a failed tool.
- Tools use `parametersJsonSchema`, which takes plain JSON Schema (`additionalProperties`,
  `$ref`, `anyOf`, ...), so schemas go through unchanged instead of being rewritten into
  the OpenAPI subset that `parameters` accepts. `strict` is dropped: Gemini has no such
  switch and always decodes arguments against the declared schema.
- `parallel_tool_calls: false` has no Gemini field and is dropped with a log line (the
  adapter says so); `user` and `metadata` are the client's bookkeeping and stay here;
  everything else Gemini cannot express is refused with a 400.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any
from urllib.parse import urlsplit

from llmbus.proto import ChatRequest, ImagePart, Message, NamedToolChoice, TextPart, ToolCall
from llmbus.proto import Tool as ChatTool
from llmbus.providers.adapters.gemini_wire import (
    Blob,
    Content,
    FileData,
    FunctionCall,
    FunctionCallingConfig,
    FunctionDeclaration,
    FunctionResponse,
    GenerateContentRequest,
    GenerationConfig,
    Part,
    ThinkingConfig,
    Tool,
    ToolConfig,
)
from llmbus.providers.errors import Unsupported

__all__ = ["FOREIGN_SIGNATURE", "IMAGE_TYPES", "REASONING_BUDGETS", "to_gemini"]

FOREIGN_SIGNATURE = "skip_thought_signature_validator"
"""Google's documented stand-in for a thought signature on history the model did not
produce (another provider's tool calls)."""

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
"""The image types Gemini documents, by file extension."""

REASONING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
"""`reasoning_effort` as a thinking budget: Google's own OpenAI-compatible endpoint maps
low, medium and high to 1K, 8K and 24K tokens and none to 0 (off); minimal is half of
low. Budgets work on Gemini 2.5 and, for compatibility, on Gemini 3."""

_TOOL_CHOICE = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def to_gemini(chat: ChatRequest) -> GenerateContentRequest:
    system: list[Part] = []
    turns: list[Content] = []
    names = _call_names(chat.messages)
    for message in chat.messages:
        if message.role in ("system", "developer"):
            system += _system_parts(message)
            continue
        role, parts = _turn(message, names)
        if not parts:
            continue
        if turns and turns[-1].role == role:
            turns[-1].parts.extend(parts)
        else:
            turns.append(Content(role=role, parts=parts))
    if not turns:
        raise Unsupported("Gemini needs at least one user or assistant message", param="messages")
    return GenerateContentRequest(
        contents=turns,
        system_instruction=Content(parts=system) if system else None,
        tools=[Tool(function_declarations=[_declaration(t) for t in chat.tools])] if chat.tools else None,
        tool_config=_tool_config(chat),
        generation_config=_generation_config(chat),
    )


def _call_names(messages: list[Message]) -> dict[str, str]:
    return {call.id: call.name for m in messages for call in m.tool_calls}


def _system_parts(message: Message) -> list[Part]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [Part(text=content)] if content else []
    if any(isinstance(part, ImagePart) for part in content):
        raise Unsupported("Gemini takes no images in system instructions", param="messages")
    return [Part(text=part.text) for part in content if isinstance(part, TextPart) and part.text]


def _turn(message: Message, names: dict[str, str]) -> tuple[str, list[Part]]:
    if message.role == "user":
        return "user", _content_parts(message.content)
    if message.role == "assistant":
        parts = _content_parts(message.content)
        parts += [_call_part(call, first=i == 0) for i, call in enumerate(message.tool_calls)]
        return "model", parts
    return "user", _result_parts(message, names)


def _content_parts(content: str | list[TextPart | ImagePart] | None) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Part(text=content)] if content else []
    parts: list[Part] = []
    for part in content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append(Part(text=part.text))
        else:
            parts.append(_image(part.url))
    return parts


def _image(url: str) -> Part:
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        data_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not data_type:
            raise Unsupported("Gemini takes images as base64 data URLs or http(s) URLs", param="messages")
        return Part(inline_data=Blob(mime_type=data_type, data=data))
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        raise Unsupported(
            f"Gemini cannot fetch images by {parsed.scheme or 'relative'} URL", param="messages"
        )
    extension = posixpath.splitext(parsed.path)[1].lower()
    media_type = IMAGE_TYPES.get(extension)
    if media_type is None:
        known = ", ".join(sorted(IMAGE_TYPES))
        raise Unsupported(
            f"Gemini needs the image type of a URL; the path must end in one of {known} "
            "(or send the image as a data URL)",
            param="messages",
        )
    return Part(file_data=FileData(mime_type=media_type, file_uri=url))


def _call_part(call: ToolCall, *, first: bool) -> Part:
    try:
        args = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        raise Unsupported(f"the arguments of tool call {call.id} are not JSON", param="messages") from None
    if not isinstance(args, dict):
        raise Unsupported(f"the arguments of tool call {call.id} are not a JSON object", param="messages")
    signature = call.signature or (FOREIGN_SIGNATURE if first else None)
    return Part(
        function_call=FunctionCall(name=call.name, args=args, id=call.id), thought_signature=signature
    )


def _result_parts(message: Message, names: dict[str, str]) -> list[Part]:
    call_id = message.tool_call_id or ""
    name = names.get(call_id) or message.name
    if not name:
        raise Unsupported(
            f"the tool result {call_id!r} answers no tool call in the history", param="messages"
        )
    content = message.content
    images: list[Part] = []
    if isinstance(content, list):
        text = "".join(part.text for part in content if isinstance(part, TextPart))
        images = [_image(part.url) for part in content if isinstance(part, ImagePart)]
    else:
        text = content or ""
    response = FunctionResponse(name=name, response=_response(text, message.is_error), id=call_id or None)
    # Images a tool returned follow its response in the same user turn.
    return [Part(function_response=response), *images]


def _response(text: str, is_error: bool) -> dict[str, Any]:
    if is_error:
        return {"error": text}
    try:
        value = json.loads(text)
    except ValueError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": text}


def _declaration(tool: ChatTool) -> FunctionDeclaration:
    return FunctionDeclaration(
        name=tool.name, description=tool.description, parameters_json_schema=tool.parameters
    )


def _tool_config(chat: ChatRequest) -> ToolConfig | None:
    choice = chat.tool_choice
    if choice is None or not chat.tools:
        return None
    if isinstance(choice, NamedToolChoice):
        if choice.name not in {t.name for t in chat.tools}:
            raise Unsupported(f"tool_choice names {choice.name!r}, which is not a tool", param="tool_choice")
        config = FunctionCallingConfig(mode="ANY", allowed_function_names=[choice.name])
    else:
        config = FunctionCallingConfig(mode=_TOOL_CHOICE[choice])
    return ToolConfig(function_calling_config=config)


def _generation_config(chat: ChatRequest) -> GenerationConfig | None:
    mime_type, schema = _response_format(chat.response_format)
    config = GenerationConfig(
        temperature=chat.temperature,
        top_p=chat.top_p,
        top_k=chat.top_k,
        max_output_tokens=chat.max_tokens,
        stop_sequences=chat.stop or None,
        seed=chat.seed,
        presence_penalty=chat.presence_penalty,
        frequency_penalty=chat.frequency_penalty,
        response_mime_type=mime_type,
        response_json_schema=schema,
        thinking_config=_thinking(chat),
    )
    return None if config == GenerationConfig() else config


def _response_format(value: dict[str, Any] | None) -> tuple[str | None, dict[str, Any] | None]:
    kind = (value or {}).get("type", "text")
    if kind == "text":
        return None, None
    if kind == "json_object":
        return "application/json", None
    if kind == "json_schema":
        spec = (value or {}).get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise Unsupported("response_format json_schema needs json_schema.schema", param="response_format")
        return "application/json", schema
    raise Unsupported(f"Gemini has no response_format of type {kind!r}", param="response_format")


def _thinking(chat: ChatRequest) -> ThinkingConfig | None:
    budget = chat.thinking_budget
    if budget is None and chat.reasoning_effort is not None:
        budget = REASONING_BUDGETS.get(chat.reasoning_effort)
        if budget is None:
            known = ", ".join(REASONING_BUDGETS)
            raise Unsupported(
                f"Gemini has no reasoning_effort {chat.reasoning_effort!r}; use one of {known}",
                param="reasoning_effort",
            )
    if budget is None:
        return None
    # Asked-for thinking comes back as reasoning (thought summaries); off means off.
    return ThinkingConfig(thinking_budget=budget, include_thoughts=budget != 0 or None)
