"""The normalized chat request as an Anthropic Messages request.

How each field travels:

- system and developer messages → `system` text blocks, in order, wherever they stand in
  the conversation (Anthropic has one system prompt, outside the turns);
- user and assistant turns must alternate: consecutive turns of one role are merged into
  one, and tool messages become `tool_result` blocks of a user turn, so the results of
  parallel calls share one turn; inside a user turn the tool results come first, as
  Anthropic requires;
- images: a base64 data URL → `{type: base64, media_type, data}`, an http(s) URL →
  `{type: url, url}`; `detail` has no equivalent and is dropped (it only tunes cost);
- an assistant's tool calls → `tool_use` blocks (arguments parsed into an object); its
  signed reasoning → a `thinking` block first. Reasoning without a signature (another
  provider's) is dropped: Anthropic refuses thinking blocks it did not sign;
- `stop` → `stop_sequences`, `user` → `metadata.user_id`, `thinking_budget` (or
  `reasoning_effort`, see `EFFORT_BUDGETS`) → `thinking`, `parallel_tool_calls: false` →
  `disable_parallel_tool_use`, `response_format` json_schema → `output_config.format`
  (structured outputs, generally available without a beta header);
- refused with `Unsupported` (400) rather than dropped: `seed`, non-zero presence and
  frequency penalties (Anthropic has neither), `temperature` above 1 (Anthropic's range
  is 0 to 1), `response_format` json_object (Anthropic constrains output to a schema only),
  images in system or assistant messages, tool-call arguments that are not a JSON object;
- `temperature`, `top_p` and `top_k` are passed as given: a model that refuses them (with
  thinking on, or a model that fixes its sampling) answers 400 in its own words;
- not forwarded, on purpose: `metadata` (the gateway's own bookkeeping), `Message.name`
  (no equivalent), `include_usage` (Anthropic always reports usage).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from llmbus.proto import ChatRequest, ImagePart, Message, NamedToolChoice, TextPart, ToolCall
from llmbus.providers.adapters import anthropic_wire as wire
from llmbus.providers.errors import Unsupported

__all__ = ["DEFAULT_MAX_TOKENS", "EFFORT_BUDGETS", "IMAGE_MEDIA_TYPES", "to_messages_request"]

DEFAULT_MAX_TOKENS = 4096
"""`max_tokens` when the client sets none (Anthropic requires it). The registry knows each
model's context window, not its output limit, and output limits differ by model (4,096
tokens on Claude 3 Haiku and Opus, 8,192 on Claude 3.5, 64,000 on Sonnet 4.5): 4,096 is
accepted by every Claude model and is the OpenAI-era default clients expect. With thinking
on, the budget is added on top, because thinking tokens count towards `max_tokens`."""

EFFORT_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
"""`reasoning_effort` as a thinking budget. 1,024 is the smallest budget Anthropic accepts;
each step up quadruples it. `none` turns thinking off (no `thinking` field at all)."""

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The image types the Messages API accepts."""


class _JsonSchemaSpec(msgspec.Struct, kw_only=True):
    schema: dict[str, Any] | None = None


class _ResponseFormat(msgspec.Struct, kw_only=True):
    """OpenAI's `response_format`, as far as Anthropic can follow it."""

    type: str = "text"
    json_schema: _JsonSchemaSpec | None = None


def to_messages_request(chat: ChatRequest, model: str) -> wire.MessagesRequest:
    """The Messages API body for `chat`; raises `Unsupported` for what it cannot carry."""
    _refuse_unexpressible(chat)
    system, turns = _conversation(chat.messages)
    thinking = _thinking(chat)
    budget = thinking.budget_tokens if thinking else 0
    max_tokens = chat.max_tokens if chat.max_tokens is not None else DEFAULT_MAX_TOKENS + budget
    if thinking and max_tokens <= budget:
        raise Unsupported(
            f"max_tokens ({max_tokens}) must be larger than the thinking budget ({budget}): "
            "Anthropic counts thinking tokens towards max_tokens",
            param="max_tokens",
        )
    tools = [
        wire.ToolDefinition(
            name=tool.name,
            description=tool.description,
            input_schema=tool.parameters or {"type": "object"},
            strict=tool.strict,
        )
        for tool in chat.tools
    ]
    return wire.MessagesRequest(
        model=model,
        max_tokens=max_tokens,
        messages=turns,
        system=system or None,
        stream=chat.stream,
        temperature=chat.temperature,
        top_p=chat.top_p,
        top_k=chat.top_k,
        stop_sequences=chat.stop or None,
        tools=tools or None,
        # Without tools there is nothing to choose from: the choice is left out.
        tool_choice=_tool_choice(chat) if tools else None,
        thinking=thinking,
        metadata=wire.Metadata(user_id=chat.user) if chat.user else None,
        output_config=_output_config(chat.response_format),
    )


def _refuse_unexpressible(chat: ChatRequest) -> None:
    if chat.seed is not None:
        raise Unsupported("Anthropic has no seed parameter: remove `seed`", param="seed")
    for name, value in (
        ("presence_penalty", chat.presence_penalty),
        ("frequency_penalty", chat.frequency_penalty),
    ):
        if value:  # 0 (a no-op, which many clients send by default) is accepted
            raise Unsupported(f"Anthropic has no {name} parameter: remove `{name}`", param=name)
    if chat.temperature is not None and chat.temperature > 1:
        raise Unsupported(
            f"temperature {chat.temperature} is out of Anthropic's range (0 to 1)", param="temperature"
        )


def _conversation(messages: list[Message]) -> tuple[list[wire.TextBlock], list[wire.TurnMessage]]:
    system: list[wire.TextBlock] = []
    turns: list[wire.TurnMessage] = []
    for message in messages:
        role: Literal["user", "assistant"]
        match message.role:
            case "system" | "developer":
                system += _text_blocks(message.content, where="system messages")
                continue
            case "user":
                role, blocks = "user", _user_blocks(message.content)
            case "assistant":
                role, blocks = "assistant", _assistant_blocks(message)
            case "tool":
                role, blocks = "user", [_tool_result(message)]
        if not blocks:
            continue
        if turns and turns[-1].role == role:
            turns[-1].content.extend(blocks)
        else:
            turns.append(wire.TurnMessage(role=role, content=blocks))
    for turn in turns:
        if turn.role == "user":
            # Stable: tool results first, everything else after them in its own order.
            turn.content.sort(key=lambda block: not isinstance(block, wire.ToolResultBlock))
    return system, turns


def _text_blocks(content: str | list[TextPart | ImagePart] | None, *, where: str) -> list[wire.TextBlock]:
    """Text only: Anthropic takes images in user turns and tool results alone."""
    if content is None:
        return []
    if isinstance(content, str):
        return [wire.TextBlock(text=content)] if content else []
    blocks: list[wire.TextBlock] = []
    for part in content:
        if isinstance(part, ImagePart):
            raise Unsupported(f"Anthropic does not accept images in {where}", param="messages")
        if part.text:
            blocks.append(wire.TextBlock(text=part.text))
    return blocks


def _user_blocks(content: str | list[TextPart | ImagePart] | None) -> list[wire.InputBlock]:
    if not isinstance(content, list):
        return list(_text_blocks(content, where="user messages"))
    blocks: list[wire.InputBlock] = []
    for part in content:
        if isinstance(part, ImagePart):
            blocks.append(_image(part))
        elif part.text:  # Anthropic refuses empty text blocks
            blocks.append(wire.TextBlock(text=part.text))
    return blocks


def _image(part: ImagePart) -> wire.ImageBlock:
    url = part.url
    if url.startswith("data:"):
        header, comma, data = url.removeprefix("data:").partition(",")
        media_type, *params = header.split(";")
        if not comma or "base64" not in params:
            raise Unsupported("an image data URL must be base64-encoded", param="messages")
        if media_type not in IMAGE_MEDIA_TYPES:
            raise Unsupported(
                f"Anthropic accepts images of type {', '.join(sorted(IMAGE_MEDIA_TYPES))}, "
                f"not {media_type or 'an unnamed type'}",
                param="messages",
            )
        return wire.ImageBlock(source=wire.Base64Source(media_type=media_type, data=data))
    if url.startswith(("https://", "http://")):
        return wire.ImageBlock(source=wire.UrlSource(url=url))
    raise Unsupported("an image must be an http(s) URL or a base64 data URL", param="messages")


def _assistant_blocks(message: Message) -> list[wire.InputBlock]:
    blocks: list[wire.InputBlock] = []
    if message.reasoning_signature:
        blocks.append(
            wire.ThinkingBlock(thinking=message.reasoning or "", signature=message.reasoning_signature)
        )
    blocks += _text_blocks(message.content, where="assistant messages")
    blocks += [
        wire.ToolUseBlock(id=call.id, name=call.name, input=_arguments(call)) for call in message.tool_calls
    ]
    return blocks


_object = msgspec.json.Decoder(dict[str, Any])


def _arguments(call: ToolCall) -> dict[str, Any]:
    if not call.arguments.strip():
        return {}
    try:
        return _object.decode(call.arguments)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise Unsupported(
            f"the arguments of tool call {call.id!r} are not a JSON object, which Anthropic requires",
            param="messages",
        ) from None


def _tool_result(message: Message) -> wire.ToolResultBlock:
    if not message.tool_call_id:
        raise Unsupported("a tool message needs the tool_call_id it answers", param="messages")
    content: str | list[wire.TextBlock | wire.ImageBlock]
    if isinstance(message.content, list):
        content = [
            _image(part) if isinstance(part, ImagePart) else wire.TextBlock(text=part.text)
            for part in message.content
            if isinstance(part, ImagePart) or part.text
        ]
    else:
        content = message.content or ""
    return wire.ToolResultBlock(tool_use_id=message.tool_call_id, content=content, is_error=message.is_error)


def _thinking(chat: ChatRequest) -> wire.EnabledThinking | None:
    if chat.thinking_budget is not None:
        return wire.EnabledThinking(budget_tokens=chat.thinking_budget) if chat.thinking_budget > 0 else None
    if chat.reasoning_effort is None:
        return None
    effort = chat.reasoning_effort.lower()
    if effort == "none":
        return None
    budget = EFFORT_BUDGETS.get(effort)
    if budget is None:
        raise Unsupported(
            f"unknown reasoning_effort {chat.reasoning_effort!r}: "
            f"expected none, {', '.join(EFFORT_BUDGETS)}, or a thinking_budget",
            param="reasoning_effort",
        )
    return wire.EnabledThinking(budget_tokens=budget)


def _tool_choice(chat: ChatRequest) -> wire.ToolChoice | None:
    serial = chat.parallel_tool_calls is False
    match chat.tool_choice:
        case None:
            return wire.AutoToolChoice(disable_parallel_tool_use=True) if serial else None
        case "auto":
            return wire.AutoToolChoice(disable_parallel_tool_use=serial)
        case "required":
            return wire.AnyToolChoice(disable_parallel_tool_use=serial)
        case "none":
            return wire.NoToolChoice()
        case NamedToolChoice(name=name):
            return wire.NamedToolChoice(name=name, disable_parallel_tool_use=serial)


def _output_config(response_format: dict[str, Any] | None) -> wire.OutputConfig | None:
    if not response_format:
        return None
    try:
        parsed = msgspec.convert(response_format, _ResponseFormat)
    except msgspec.ValidationError as exc:
        raise Unsupported(f"response_format is malformed: {exc}", param="response_format") from None
    if parsed.type == "text":
        return None
    if parsed.type == "json_schema":
        schema = parsed.json_schema.schema if parsed.json_schema else None
        if schema is None:
            raise Unsupported("response_format json_schema needs json_schema.schema", param="response_format")
        return wire.OutputConfig(format=wire.JsonSchemaFormat(schema=schema))
    raise Unsupported(
        f"Anthropic cannot constrain output to {parsed.type!r}: use json_schema with a schema",
        param="response_format",
    )
