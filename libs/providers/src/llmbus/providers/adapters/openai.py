"""The OpenAI-compatible family: OpenAI and every provider that speaks its chat API.

What each provider does with OpenAI's parameters is data on its `ProviderSpec`
(`llmbus.providers.quirks.ParamPolicy`), applied here once per request: a parameter it
rejects is refused with `Unsupported`, one it ignores is dropped with a log line, one it
names differently is renamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec

from llmbus.api.openai import to_wire_messages
from llmbus.api.openai_wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    FunctionDefinition,
    NamedToolChoice,
    StreamOptions,
    ToolChoiceFunction,
    ToolDefinition,
    WireUsage,
)
from llmbus.proto import ChatRequest, Delta, Done, ToolCallDelta, Usage
from llmbus.proto import NamedToolChoice as NormalizedNamedChoice
from llmbus.providers.adapters.base import (
    Credential,
    CredentialSource,
    Family,
    Output,
    StaticKeys,
    UpstreamRequest,
)
from llmbus.providers.errors import (
    Unsupported,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatus,
    parse_retry_after,
)
from llmbus.providers.http import HttpClient, UpstreamResponse
from llmbus.providers.quirks import ParamPolicy, dropped, effort_for_budget
from llmbus.providers.runtime import ConfiguredProvider
from llmbus.providers.sse import aiter_sse

__all__ = ["OpenAICompatible", "UpstreamChatRequest"]


_encode = msgspec.json.Encoder().encode
_chunk_decoder = msgspec.json.Decoder(ChatCompletionChunk)
_completion_decoder = msgspec.json.Decoder(ChatCompletion)


class _ErrorDetail(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail | str | None = None
    message: str | None = None


_error_decoder = msgspec.json.Decoder(_ErrorBody)

_DEFAULT_POLICY = ParamPolicy()


class UpstreamChatRequest(ChatCompletionRequest, kw_only=True):
    """OpenAI's request body plus what compatible providers take beyond it."""

    top_k: int | None = None
    random_seed: int | None = None
    """Mistral's name for `seed`."""


class OpenAICompatible:
    family: Family = "openai"

    def credentials(self, http: HttpClient) -> CredentialSource:
        return StaticKeys()

    def build(
        self, provider: ConfiguredProvider, chat: ChatRequest, upstream_model: str, credential: Credential
    ) -> UpstreamRequest:
        params = provider.spec.params.for_model(upstream_model)
        return UpstreamRequest(
            url=provider.chat_url,
            headers=self.headers(provider, credential, chat.stream),
            body=_encode(self.wire_request(chat, upstream_model, params, provider=provider.name)),
        )

    def wire_request(
        self,
        chat: ChatRequest,
        upstream_model: str,
        params: ParamPolicy = _DEFAULT_POLICY,
        *,
        provider: str = "",
    ) -> UpstreamChatRequest:
        """The request body in OpenAI's shape, as `params` says the provider takes it
        (Copilot builds on it). Raises `Unsupported` for a parameter the provider rejects."""
        tool_choice: Any = chat.tool_choice
        if isinstance(tool_choice, NormalizedNamedChoice):
            tool_choice = NamedToolChoice(type="function", function=ToolChoiceFunction(name=tool_choice.name))
        wire = UpstreamChatRequest(
            model=upstream_model,
            messages=to_wire_messages(chat.messages),
            stream=chat.stream or None,
            stream_options=StreamOptions(include_usage=True) if chat.stream else None,
            max_tokens=chat.max_tokens,
            temperature=chat.temperature,
            top_p=chat.top_p,
            stop=chat.stop or None,
            seed=chat.seed,
            presence_penalty=chat.presence_penalty,
            frequency_penalty=chat.frequency_penalty,
            user=chat.user,
            tools=[
                ToolDefinition(
                    type="function",
                    function=FunctionDefinition(
                        name=t.name, description=t.description, parameters=t.parameters, strict=t.strict
                    ),
                )
                for t in chat.tools
            ]
            or None,
            tool_choice=tool_choice,
            parallel_tool_calls=chat.parallel_tool_calls,
            response_format=chat.response_format,
            reasoning_effort=chat.reasoning_effort,
            top_k=chat.top_k,
        )
        _apply(params, wire, chat, provider or "the provider", upstream_model)
        return wire

    @staticmethod
    def headers(provider: ConfiguredProvider, credential: Credential, stream: bool) -> dict[str, str]:
        headers = {
            **provider.headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if credential.token:  # none for `auth_type: none` (a local server)
            headers["Authorization"] = f"Bearer {credential.token}"
        return headers

    def probe(self, provider: ConfiguredProvider, credential: Credential) -> UpstreamRequest:
        """`GET …/models`: listed by every OpenAI-compatible API, free, and it checks the key."""
        url = provider.chat_url.removesuffix("/chat/completions") + "/models"
        headers = self.headers(provider, credential, stream=False)
        headers.pop("Content-Type")
        return UpstreamRequest(url=url, headers=headers, method="GET")

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        message, code = _error_message(body)
        retry_after = parse_retry_after(headers.get("retry-after"))
        return UpstreamStatus(
            status, message or f"the upstream answered {status}", code=code, retry_after=retry_after
        )

    async def events(self, response: UpstreamResponse, stream: bool) -> AsyncIterator[Output]:
        if not stream:
            body = await response.read(64 << 20)
            try:
                completion = _completion_decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise UpstreamProtocolError(
                    "the upstream sent a response that is not a chat completion"
                ) from None
            for item in _completion_events(completion):
                yield item
            return
        finish: str | None = None
        async for event in aiter_sse(response.aiter_bytes()):
            if event.data == "[DONE]":
                break
            for item in _chunk_events(event.data):
                if isinstance(item, Done):
                    # Said at once (usage and `[DONE]` may come much later), and once;
                    # `Done` repeats it at the end.
                    if finish is None:
                        finish = item.finish_reason
                        yield Delta(seq=0, finish_reason=finish)
                else:
                    yield item
        if finish is None:
            raise UpstreamProtocolError("the upstream stream ended before the answer was complete")
        yield Done(seq=0, finish_reason=finish)


def _apply(
    params: ParamPolicy, wire: UpstreamChatRequest, chat: ChatRequest, provider: str, model: str
) -> None:
    """Make `wire` what the provider takes (see `llmbus.providers.quirks`)."""
    if chat.thinking_budget is not None:
        if "reasoning_effort" in params.unsupported:
            raise Unsupported(
                f"{provider} cannot limit thinking for {model}: leave out `thinking_budget`",
                param="thinking_budget",
            )
        if wire.reasoning_effort is None:
            wire.reasoning_effort = effort_for_budget(chat.thinking_budget)
    if wire.top_k is not None and not params.top_k:
        raise Unsupported(f"{provider} does not take `top_k` for {model}: leave it out", param="top_k")
    for name in params.unsupported:
        if getattr(wire, name) is not None:
            raise Unsupported(f"{provider} does not take `{name}` for {model}: leave it out", param=name)
    if wire.temperature is not None and wire.temperature > params.max_temperature:
        raise Unsupported(
            f"{provider} takes `temperature` up to {params.max_temperature:g} for {model}",
            param="temperature",
        )
    for name in params.ignored:
        if getattr(wire, name) is not None:
            setattr(wire, name, None)
            dropped(name, provider, model)
    for name, renamed in params.renamed:
        value = getattr(wire, name)
        if value is not None:
            setattr(wire, name, None)
            setattr(wire, renamed, value)
    if not params.stream_usage:
        wire.stream_options = None
    if not params.message_names and any(m.name for m in wire.messages):
        wire.messages = [msgspec.structs.replace(m, name=None) if m.name else m for m in wire.messages]
        dropped("messages[].name", provider, model)


def _chunk_events(data: str) -> list[Output]:
    if not data:
        return []
    try:
        chunk = _chunk_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise UpstreamProtocolError("the upstream sent malformed stream data") from None
    if chunk.error is not None:
        detail = chunk.error
        message = str(detail.get("message") or "the upstream failed mid-stream")
        raise UpstreamError(message, status=502, code=str(detail.get("code") or "upstream_error"))
    out: list[Output] = []
    for choice in chunk.choices[:1]:
        delta = choice.delta
        reasoning = delta.reasoning_content or delta.reasoning or delta.reasoning_text or ""
        calls = [
            ToolCallDelta(
                index=call.index,
                id=call.id,
                name=call.function.name if call.function else None,
                arguments=(call.function.arguments or "") if call.function else "",
            )
            for call in delta.tool_calls or ()
        ]
        if delta.content or reasoning or calls:
            out.append(Delta(seq=0, text=delta.content or "", reasoning=reasoning, tool_calls=calls))
        if choice.finish_reason:
            out.append(Done(seq=0, finish_reason=choice.finish_reason))
    if chunk.usage is not None:
        out.append(_usage(chunk.usage))
    return out


def _completion_events(completion: ChatCompletion) -> list[Output]:
    out: list[Output] = []
    finish = "stop"
    for choice in completion.choices[:1]:
        message = choice.message
        calls = [
            ToolCallDelta(index=i, id=call.id, name=call.function.name, arguments=call.function.arguments)
            for i, call in enumerate(message.tool_calls or ())
        ]
        reasoning = message.reasoning_content or message.reasoning or ""
        if message.content or reasoning or calls:
            out.append(Delta(seq=0, text=message.content or "", reasoning=reasoning, tool_calls=calls))
        finish = choice.finish_reason or finish
    if completion.usage is not None:
        out.append(_usage(completion.usage))
    out.append(Done(seq=0, finish_reason=finish))
    return out


def _usage(usage: WireUsage) -> Usage:
    prompt_details = usage.prompt_tokens_details or {}
    completion_details = usage.completion_tokens_details or {}
    return Usage(
        seq=0,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def _error_message(body: bytes) -> tuple[str, str]:
    try:
        parsed = _error_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = body[:300].decode("utf-8", errors="replace").strip()
        return text, ""
    if isinstance(parsed.error, _ErrorDetail):
        code = parsed.error.code if parsed.error.code is not None else parsed.error.type
        return parsed.error.message, str(code or "")
    if isinstance(parsed.error, str):
        return parsed.error, ""
    return parsed.message or "", ""
