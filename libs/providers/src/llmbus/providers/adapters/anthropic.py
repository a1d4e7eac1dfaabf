"""The Anthropic family: the Messages API (`POST /v1/messages`), used by the built-in
`claude` provider. The request translation is in `anthropic_request.py`; this module
holds the adapter: the HTTP call, errors, and the answer as normalized events.

Answers, streamed (`event: <name>` + `data: <json>`) or whole:

- `message_start` carries the prompt's usage, `message_delta` the stop reason and the
  cumulative usage, `message_stop` ends the answer; `ping` is a keep-alive;
- content blocks: text → `Delta.text`, `thinking` → `Delta.reasoning` (its
  `signature_delta` → `Delta.reasoning_signature`), `tool_use` → tool-call fragments whose
  index counts tool blocks from 0 (Anthropic numbers every block, text included);
  `citations_delta`, redacted thinking and server tool blocks have no normalized form and
  are skipped; several thinking blocks in one answer (interleaved thinking) run together,
  as the normalized turn holds one reasoning text and one signature;
- `event: error` mid-stream → `UpstreamStatus` with the status of its error type
  (`overloaded_error` is Anthropic's 529: retryable, 502 to our client).

Usage follows OpenAI's convention: `prompt_tokens` includes the tokens read from and
written to the prompt cache, which Anthropic counts apart from `input_tokens`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import msgspec

from llmbus.proto import ChatRequest, Delta, Done, ToolCallDelta, Usage
from llmbus.providers.adapters import anthropic_wire as wire
from llmbus.providers.adapters.anthropic_request import to_messages_request
from llmbus.providers.adapters.base import (
    Credential,
    CredentialSource,
    Family,
    Output,
    StaticKeys,
    UpstreamRequest,
)
from llmbus.providers.errors import UpstreamError, UpstreamProtocolError, UpstreamStatus, parse_retry_after
from llmbus.providers.http import HttpClient, UpstreamResponse
from llmbus.providers.runtime import ConfiguredProvider
from llmbus.providers.sse import SSEEvent, aiter_sse

__all__ = ["ANTHROPIC_VERSION", "ERROR_STATUS", "FINISH_REASONS", "Anthropic", "api_url"]

ANTHROPIC_VERSION = "2023-06-01"
"""The API version every request names; a provider's `headers` may pin another."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic's stop reasons in OpenAI's vocabulary; an unknown one counts as `stop`."""

ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""The HTTP status of each error type, for errors that arrive inside a 200 stream."""

_encode = msgspec.json.Encoder().encode
_message = msgspec.json.Decoder(wire.Message)
_error_body = msgspec.json.Decoder(wire.ErrorBody)
_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    "message_start": msgspec.json.Decoder(wire.MessageStart),
    "content_block_start": msgspec.json.Decoder(wire.ContentBlockStart),
    "content_block_delta": msgspec.json.Decoder(wire.ContentBlockDelta),
    "message_delta": msgspec.json.Decoder(wire.MessageDelta),
    "error": msgspec.json.Decoder(wire.ErrorBody),
}


class _Typed(msgspec.Struct):
    type: str = ""


_typed = msgspec.json.Decoder(_Typed)


def api_url(endpoint: str, path: str) -> str:
    """`{endpoint}/v1/{path}`, whether or not the endpoint already ends in `/v1`."""
    base = endpoint.rstrip("/")
    return f"{base}/{path}" if base.endswith("/v1") else f"{base}/v1/{path}"


class Anthropic:
    family: Family = "anthropic"

    def credentials(self, http: HttpClient) -> CredentialSource:
        return StaticKeys()

    def build(
        self, provider: ConfiguredProvider, chat: ChatRequest, upstream_model: str, credential: Credential
    ) -> UpstreamRequest:
        return UpstreamRequest(
            url=api_url(provider.endpoint, "messages"),
            headers=self.headers(provider, credential, chat.stream),
            body=_encode(to_messages_request(chat, upstream_model)),
        )

    @staticmethod
    def headers(provider: ConfiguredProvider, credential: Credential, stream: bool) -> dict[str, str]:
        """`anthropic-version` unless the provider's headers pin one, the provider's headers
        (`anthropic-beta` goes there), then the key and content type, which they cannot
        override."""
        reserved = {"x-api-key", "content-type"}
        own = {name.lower() for name in provider.headers}
        headers = {
            name: value
            for name, value in (
                ("anthropic-version", ANTHROPIC_VERSION),
                ("accept", "text/event-stream" if stream else "application/json"),
            )
            if name not in own
        }
        headers.update({k: v for k, v in provider.headers.items() if k.lower() not in reserved})
        headers["content-type"] = "application/json"
        if credential.token:  # none for `auth_type: none`
            headers["x-api-key"] = credential.token
        return headers

    def probe(self, provider: ConfiguredProvider, credential: Credential) -> UpstreamRequest:
        """`GET /v1/models`: free, and it checks the key and the version header."""
        headers = self.headers(provider, credential, stream=False)
        headers.pop("content-type")
        return UpstreamRequest(url=api_url(provider.endpoint, "models"), headers=headers, method="GET")

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            detail = _error_body.decode(body).error
            message, code = detail.message, detail.type
        except (msgspec.DecodeError, msgspec.ValidationError):
            message, code = body[:300].decode("utf-8", errors="replace").strip(), ""
        return UpstreamStatus(
            status,
            message or f"the upstream answered {status}",
            code=code,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )

    async def events(self, response: UpstreamResponse, stream: bool) -> AsyncIterator[Output]:
        if not stream:
            body = await response.read(64 << 20)
            try:
                message = _message.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise UpstreamProtocolError("the upstream sent a response that is not a message") from None
            for item in _message_events(message):
                yield item
            return
        state = _StreamState()
        async for event in aiter_sse(response.aiter_bytes()):
            for item in state.feed(event):
                yield item
            if state.stopped:
                break
        if state.stop_reason is None and not state.stopped:
            # A stream cut after `message_delta` lacks only `message_stop`: the answer is whole.
            raise UpstreamProtocolError("the upstream stream ended before the answer was complete")
        yield state.usage()
        yield state.done()


class _StreamState:
    """What one streamed answer has told so far."""

    def __init__(self) -> None:
        self.tool_index: dict[int, int] = {}
        """Content block index → tool-call index (tool blocks only, from 0)."""
        self.counts = wire.WireUsage()
        self.stop_reason: str | None = None
        self.stop_sequence = ""
        self.stopped = False

    def feed(self, event: SSEEvent) -> list[Output]:
        name = event.event
        if name == "message" and event.data:  # no `event:` line: the data names its type
            name = _decode(_typed, event.data).type
        if name == "message_stop":
            self.stopped = True
            return []
        decoder = _decoders.get(name)
        if decoder is None:  # ping, content_block_stop, and event types added later
            return []
        match _decode(decoder, event.data):
            case wire.ContentBlockDelta(index=index, delta=delta):
                return self._delta(index, delta)
            case wire.ContentBlockStart(index=index, content_block=block):
                return self._start(index, block)
            case wire.MessageStart(message=message):
                self._count(message.usage)
            case wire.MessageDelta(delta=fields, usage=usage):
                self.stop_reason = fields.stop_reason or self.stop_reason
                self.stop_sequence = fields.stop_sequence or self.stop_sequence
                if usage is not None:
                    self._count(usage)
            case wire.ErrorBody(error=detail):
                raise UpstreamStatus(
                    ERROR_STATUS.get(detail.type, 500),
                    detail.message or "the upstream failed mid-stream",
                    code=detail.type or "api_error",
                )
        return []

    def _start(self, index: int, block: wire.ContentBlock) -> list[Output]:
        if block.type == "tool_use":
            call = ToolCallDelta(
                index=self.tool_index.setdefault(index, len(self.tool_index)),
                id=block.id,
                name=block.name,
                # Anthropic starts with `input: {}` and streams the JSON; a relay that sends
                # the whole input up front is taken at its word.
                arguments=_encode(block.input).decode() if block.input else "",
            )
            return [Delta(seq=0, tool_calls=[call])]
        if block.type == "text" and block.text:
            return [Delta(seq=0, text=block.text)]
        if block.type == "thinking" and (block.thinking or block.signature):
            return [Delta(seq=0, reasoning=block.thinking, reasoning_signature=block.signature)]
        return []

    def _delta(self, index: int, delta: wire.WireDelta) -> list[Output]:
        match delta.type:
            case "text_delta" if delta.text:
                return [Delta(seq=0, text=delta.text)]
            case "input_json_delta" if delta.partial_json:
                if index not in self.tool_index:
                    raise UpstreamProtocolError(f"the upstream sent tool input for block {index}, not a tool")
                call = ToolCallDelta(index=self.tool_index[index], arguments=delta.partial_json)
                return [Delta(seq=0, tool_calls=[call])]
            case "thinking_delta" if delta.thinking:
                return [Delta(seq=0, reasoning=delta.thinking)]
            case "signature_delta" if delta.signature:
                return [Delta(seq=0, reasoning_signature=delta.signature)]
        return []

    def _count(self, usage: wire.WireUsage) -> None:
        """Take every count the event carries: `message_delta`'s are cumulative."""
        changes = {f: v for f in usage.__struct_fields__ if (v := getattr(usage, f)) is not None}
        self.counts = msgspec.structs.replace(self.counts, **changes)

    def usage(self) -> Usage:
        return _usage(self.counts)

    def done(self) -> Done:
        return _done(self.stop_reason, self.stop_sequence)


_T = TypeVar("_T")


def _decode(decoder: msgspec.json.Decoder[_T], data: str) -> _T:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise UpstreamProtocolError("the upstream sent malformed stream data") from None


def _message_events(message: wire.Message) -> list[Output]:
    text = "".join(block.text for block in message.content if block.type == "text")
    thinking = [block for block in message.content if block.type == "thinking"]
    calls = [
        ToolCallDelta(index=i, id=block.id, name=block.name, arguments=_encode(block.input or {}).decode())
        for i, block in enumerate(b for b in message.content if b.type == "tool_use")
    ]
    out: list[Output] = []
    if text or thinking or calls:
        out.append(
            Delta(
                seq=0,
                text=text,
                reasoning="".join(block.thinking for block in thinking),
                reasoning_signature="".join(block.signature for block in thinking),
                tool_calls=calls,
            )
        )
    out.append(_usage(message.usage))
    out.append(_done(message.stop_reason, message.stop_sequence or ""))
    return out


def _usage(counts: wire.WireUsage) -> Usage:
    cache_read = counts.cache_read_input_tokens or 0
    cache_creation = counts.cache_creation_input_tokens or 0
    return Usage(
        seq=0,
        prompt_tokens=(counts.input_tokens or 0) + cache_read + cache_creation,
        completion_tokens=counts.output_tokens or 0,
        cached_tokens=cache_read,
        cache_creation_tokens=cache_creation,
        reasoning_tokens=counts.output_tokens_details.thinking_tokens if counts.output_tokens_details else 0,
    )


def _done(stop_reason: str | None, stop_sequence: str) -> Done:
    return Done(
        seq=0, finish_reason=FINISH_REASONS.get(stop_reason or "", "stop"), stop_sequence=stop_sequence
    )
