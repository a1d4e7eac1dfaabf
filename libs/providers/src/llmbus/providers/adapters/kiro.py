"""The Kiro family: AWS CodeWhisperer / Amazon Q Developer as the Kiro IDE calls it.

`POST {endpoint}/generateAssistantResponse` with the IDE's headers and a
`conversationState` (see `kiro_wire`); the answer is an AWS event-stream, always, so a
non-streamed request is collected from the same events by the worker.

The service validates strictly and answers "Improperly formed request." to anything
else, so `build` shapes the conversation first (`_Conversation`):

- system and developer messages become a prefix of the first user turn (there is no
  system field); with `thinking_budget`, `<thinking_mode>enabled</thinking_mode>
  <max_thinking_length>N</max_thinking_length>` goes in front of it;
- turns of one role in a row merge; a conversation that starts with the assistant gets
  a user "Continue" first, one that ends with it a user "Continue" last (the current
  message is always the user's); empty content becomes "Continue" (user) or "OK"
  (assistant);
- tool results follow their call; tool calls without a result are dropped, results
  without a call become text, a `toolUseId` is answered once;
- `tools` go on the current message only, and every tool the history used is defined
  (a minimal definition when the request no longer offers it); input schemas always
  carry `type`, `properties` and `required`; descriptions are cut at 10 000 characters.

What Kiro cannot express is refused (`Unsupported`, 400) rather than dropped: tool
names over 64 characters (a reversible rename would need state between the request and
its answer, which adapters do not keep), `tool_choice` `required` or a named tool (Kiro
has no tool choice; `none` sends no tools), images by URL (Kiro takes bytes only).
Stop sequences are refused too: dropping one would change the answer. `max_tokens`,
`temperature` and the other sampling settings have no field in Kiro's request and are
left out, as every Kiro client does, with a log line.

`conversationId` is derived from the conversation's opening (system + first user
text), so the turns of one conversation share it as the IDE's do; the continuation id
from that and the turn count. The profile ARN is sent when the credential knows one,
unless the provider's headers carry `x-llmbus-kiro-profile-arn: omit` (some accounts,
Builder ID ones, are refused with it); that header is not forwarded.

The answer is read by `kiro_stream.AnswerReader` (usage estimates are explained there).
"""

from __future__ import annotations

import base64
import binascii
import json
import platform
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import msgspec

from llmbus.proto import ChatRequest, ImagePart, Message, TextPart
from llmbus.providers.adapters import kiro_wire as wire
from llmbus.providers.adapters.base import Credential, CredentialSource, Family, Output, UpstreamRequest
from llmbus.providers.adapters.kiro_stream import AnswerReader

# The module, not its names: credentials.kiro imports adapters.base, and whichever of
# the two packages is imported first must not find the other half-initialised.
from llmbus.providers.credentials import kiro as tokens
from llmbus.providers.errors import (
    Unsupported,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatus,
    parse_retry_after,
)
from llmbus.providers.eventstream import aiter_frames
from llmbus.providers.http import HttpClient, UpstreamResponse
from llmbus.providers.quirks import dropped
from llmbus.providers.runtime import ConfiguredProvider

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_TOOL_NAME",
    "OMIT_PROFILE_HEADER",
    "Kiro",
]

MAX_TOOL_NAME = 64
MAX_DESCRIPTION = 10_000
OMIT_PROFILE_HEADER = "x-llmbus-kiro-profile-arn"
SDK_VERSION = "1.0.34"
_NAMESPACE = uuid.UUID("6f1d2c8e-4b0a-4e7e-9a51-1c3f0b7d2a90")
_IMAGE_FORMATS: dict[str, Literal["png", "jpeg", "gif", "webp"]] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_encode = msgspec.json.Encoder().encode
_error_decoder = msgspec.json.Decoder(wire.ErrorBody)


_SAMPLING = ("max_tokens", "temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty")
"""Settings Kiro's request has no field for: left out, with a log line."""


class Kiro:
    family: Family = "kiro"

    def credentials(self, http: HttpClient) -> CredentialSource:
        return tokens.KiroTokens(http)

    def build(
        self, provider: ConfiguredProvider, chat: ChatRequest, upstream_model: str, credential: Credential
    ) -> UpstreamRequest:
        if chat.stop:
            raise Unsupported("Kiro has no stop sequences: send the request without `stop`", param="stop")
        for name in _SAMPLING:
            if getattr(chat, name) is not None:
                dropped(name, provider.name, upstream_model)
        state = _Conversation.of(chat).state(chat, upstream_model)
        omit = any(
            k.lower() == OMIT_PROFILE_HEADER and v.lower() == "omit" for k, v in provider.headers.items()
        )
        body = wire.GenerateAssistantResponseRequest(
            conversation_state=state, profile_arn=None if omit else credential.profile_arn
        )
        return UpstreamRequest(
            url=f"{_endpoint(provider, credential)}/generateAssistantResponse",
            headers={**_headers(provider, credential), "Content-Type": "application/json"},
            body=_encode(body),
        )

    def probe(self, provider: ConfiguredProvider, credential: Credential) -> UpstreamRequest:
        """`GET /ListAvailableModels`: what the IDE calls to fill its model picker; free,
        and it checks the token (and the profile ARN, when sent)."""
        query = "origin=AI_EDITOR&maxResults=50"
        if credential.profile_arn:
            query += "&profileArn=" + quote(credential.profile_arn, safe="")
        return UpstreamRequest(
            url=f"{_endpoint(provider, credential)}/ListAvailableModels?{query}",
            headers={**_headers(provider, credential), "Accept": "application/json"},
            method="GET",
        )

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            parsed = _error_decoder.decode(body)
            message, kind = parsed.text, parsed.kind
        except (msgspec.DecodeError, msgspec.ValidationError):
            message, kind = body[:300].decode("utf-8", errors="replace").strip(), ""
        if kind == "ThrottlingException":
            status = 429  # capacity refusals arrive as 400 with this type
        return UpstreamStatus(
            status,
            message or f"the upstream answered {status}",
            code=kind,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )

    async def events(self, response: UpstreamResponse, stream: bool) -> AsyncIterator[Output]:
        reader = AnswerReader()
        async for frame in aiter_frames(response.aiter_bytes()):
            for item in reader.frame(frame):
                yield item
        if not reader.seen:
            raise UpstreamProtocolError("the upstream stream ended before any event")
        for item in reader.finish():
            yield item


# Request.


def _endpoint(provider: ConfiguredProvider, credential: Credential) -> str:
    """The configured endpoint; the built-in one follows the credential's API region."""
    endpoint = provider.endpoint.rstrip("/")
    if endpoint == provider.spec.endpoint.rstrip("/") and credential.region:
        return f"https://q.{credential.region}.amazonaws.com"
    return endpoint


def _headers(provider: ConfiguredProvider, credential: Credential) -> dict[str, str]:
    agent = f"KiroIDE-{tokens.KIRO_VERSION}-{tokens.machine_id()}"
    return {
        **{k: v for k, v in provider.headers.items() if k.lower() != OMIT_PROFILE_HEADER},
        "Authorization": f"Bearer {credential.token}",
        "x-amzn-kiro-agent-mode": "vibe",
        "x-amzn-codewhisperer-optout": "true",
        "amz-sdk-invocation-id": str(uuid.uuid4()),
        "amz-sdk-request": "attempt=1; max=3",
        "x-amz-user-agent": f"aws-sdk-js/{SDK_VERSION} {agent}",
        "user-agent": (
            f"aws-sdk-js/{SDK_VERSION} ua/2.1 os/{platform.system().lower()} lang/js "
            f"md/nodejs api/codewhispererstreaming#{SDK_VERSION} m/E {agent}"
        ),
    }


@dataclass
class _Turn:
    role: Literal["user", "assistant"]
    text: list[str] = field(default_factory=list)
    images: list[wire.Image] = field(default_factory=list)
    results: list[wire.ToolResult] = field(default_factory=list)
    uses: list[wire.ToolUse] = field(default_factory=list)

    def content(self, filler: str) -> str:
        return "\n\n".join(t for t in self.text if t) or filler


@dataclass
class _Conversation:
    system: str
    turns: list[_Turn]

    @classmethod
    def of(cls, chat: ChatRequest) -> _Conversation:
        system: list[str] = []
        turns: list[_Turn] = []
        for message in chat.messages:
            if message.role in ("system", "developer"):
                system.append(_text(message))
                continue
            turn = _turn(message)
            if turns and turns[-1].role == turn.role:
                last = turns[-1]
                last.text += turn.text
                last.images += turn.images
                last.results += turn.results
                last.uses += turn.uses
            else:
                turns.append(turn)
        conversation = cls("\n\n".join(s for s in system if s), turns)
        conversation._pair_tools()
        if not turns or turns[0].role == "assistant":
            turns.insert(0, _Turn("user", ["Continue"]))
        if turns[-1].role == "assistant":
            turns.append(_Turn("user", ["Continue"]))
        prefix = conversation.system
        if chat.thinking_budget:
            thinking = (
                f"<thinking_mode>enabled</thinking_mode>"
                f"<max_thinking_length>{chat.thinking_budget}</max_thinking_length>"
            )
            prefix = f"{thinking}\n{prefix}" if prefix else thinking
        if prefix:
            turns[0].text.insert(0, prefix)
        return conversation

    def _pair_tools(self) -> None:
        """Keep tool calls that have a result and results that have a call (once)."""
        answered = {r.tool_use_id for t in self.turns for r in t.results}
        called: set[str] = set()
        for turn in self.turns:
            if turn.role == "assistant":
                turn.uses = [u for u in turn.uses if u.tool_use_id in answered]
                called.update(u.tool_use_id for u in turn.uses)
                continue
            kept: list[wire.ToolResult] = []
            seen: set[str] = set()
            for result in turn.results:
                if result.tool_use_id in seen:
                    continue
                seen.add(result.tool_use_id)
                if result.tool_use_id in called:
                    kept.append(result)
                else:
                    text = "\n".join(c.text for c in result.content)
                    turn.text.append(f"[tool result {result.tool_use_id}]\n{text}")
            turn.results = kept

    def state(self, chat: ChatRequest, model: str) -> wire.ConversationState:
        tools = _tools(chat, self.turns)
        history: list[wire.HistoryEntry] = []
        for turn in self.turns[:-1]:
            if turn.role == "user":
                history.append(wire.HistoryEntry(user_input_message=_user_message(turn, model, [])))
            else:
                history.append(
                    wire.HistoryEntry(
                        assistant_response_message=wire.AssistantResponseMessage(
                            content=turn.content("OK"), tool_uses=turn.uses
                        )
                    )
                )
        opening = self.system + "\x00" + self.turns[0].content("")
        conversation_id = uuid.uuid5(_NAMESPACE, opening)
        return wire.ConversationState(
            conversation_id=str(conversation_id),
            agent_continuation_id=str(uuid.uuid5(conversation_id, str(len(self.turns)))),
            chat_trigger_type="MANUAL",
            agent_task_type="vibe",
            current_message=wire.CurrentMessage(
                user_input_message=_user_message(self.turns[-1], model, tools)
            ),
            history=history,
        )


def _user_message(turn: _Turn, model: str, tools: list[wire.ToolEntry]) -> wire.UserInputMessage:
    context = None
    if tools or turn.results:
        context = wire.UserInputMessageContext(tools=tools, tool_results=turn.results)
    return wire.UserInputMessage(
        content=turn.content("Continue"),
        model_id=model,
        origin="AI_EDITOR",
        images=turn.images,
        user_input_message_context=context,
    )


def _text(message: Message) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p.text for p in content if isinstance(p, TextPart))


def _turn(message: Message) -> _Turn:
    if message.role == "tool":
        result = wire.ToolResult(
            tool_use_id=message.tool_call_id or "",
            status="error" if message.is_error else "success",
            content=[wire.TextContent(text=_text(message) or "(empty)")],
        )
        return _Turn("user", results=[result])
    if message.role == "assistant":
        uses = [
            wire.ToolUse(tool_use_id=call.id, name=_tool_name(call.name), input=_arguments(call.arguments))
            for call in message.tool_calls
        ]
        return _Turn("assistant", [_text(message)], uses=uses)
    images = (
        [_image(p) for p in message.content if isinstance(p, ImagePart)]
        if isinstance(message.content, list)
        else []
    )
    return _Turn("user", [_text(message)], images=images)


def _arguments(arguments: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        raise Unsupported("a tool call's arguments are not JSON: Kiro takes them as an object") from None
    if not isinstance(value, dict):
        raise Unsupported("a tool call's arguments are not a JSON object: Kiro takes them as one")
    return value


def _image(part: ImagePart) -> wire.Image:
    if not part.url.startswith("data:"):
        raise Unsupported("Kiro takes images as bytes only: send a data: URL, not a link", param="messages")
    header, _, data = part.url.partition(",")
    media_type = header.removeprefix("data:").split(";", 1)[0].lower()
    image_format = _IMAGE_FORMATS.get(media_type)
    if image_format is None or ";base64" not in header:
        raise Unsupported(
            f"Kiro takes base64 PNG, JPEG, GIF or WebP images, not {media_type or 'this data URL'}",
            param="messages",
        )
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Unsupported("an image's data URL is not valid base64", param="messages") from None
    return wire.Image(format=image_format, source=wire.ImageSource(bytes=data))


def _tool_name(name: str) -> str:
    if len(name) > MAX_TOOL_NAME:
        raise Unsupported(
            f"Kiro takes tool names of at most {MAX_TOOL_NAME} characters; {name[:20]}... has {len(name)}",
            param="tools",
        )
    return name


def _schema(parameters: dict[str, Any] | None) -> dict[str, Any]:
    schema = dict(parameters or {})
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    return schema


def _tools(chat: ChatRequest, turns: list[_Turn]) -> list[wire.ToolEntry]:
    if chat.tool_choice == "required" or (
        chat.tool_choice is not None and not isinstance(chat.tool_choice, str)
    ):
        raise Unsupported("Kiro cannot be made to call a tool: it has no tool_choice", param="tool_choice")
    offered = [] if chat.tool_choice == "none" else chat.tools
    entries: list[wire.ToolEntry] = []
    defined: set[str] = set()
    for tool in offered:
        description = (tool.description or "").strip() or f"The {tool.name} tool."
        entries.append(
            wire.ToolEntry(
                tool_specification=wire.ToolSpecification(
                    name=_tool_name(tool.name),
                    description=description[:MAX_DESCRIPTION],
                    input_schema=wire.InputSchema(json=_schema(tool.parameters)),
                )
            )
        )
        defined.add(tool.name)
    for turn in turns:
        for use in turn.uses:
            if use.name not in defined:
                defined.add(use.name)
                entries.append(
                    wire.ToolEntry(
                        tool_specification=wire.ToolSpecification(
                            name=use.name,
                            description=f"The {use.name} tool, used earlier in this conversation.",
                            input_schema=wire.InputSchema(json=_schema(None)),
                        )
                    )
                )
    return entries
