"""The Gemini family: Google's Gemini API (`generativelanguage.googleapis.com`, `v1beta`).

Request translation lives in `gemini_request.py`, the wire types in `gemini_wire.py`.
This module sends the call and reads the answer:

- `POST {endpoint}/v1beta/models/{model}:generateContent`, or
  `:streamGenerateContent?alt=sse` when streaming; the key goes in `x-goog-api-key`
  (never in the URL, where it would end up in access logs).
- A stream is `data: <GenerateContentResponse>` events with no `[DONE]`: it ends at EOF,
  and a stream that ends without a finish reason is cut short. Function calls arrive
  whole, one part each; thought parts (`thought: true`) are reasoning. Usage comes on
  several chunks, growing: the last one seen is emitted once, before `Done`.
- A prompt blocked outright (`promptFeedback.blockReason`, no candidates) ends as
  `finish_reason: content_filter` with no text: Google answered 200, and an OpenAI
  client reads a content-filtered answer without error handling of its own, whereas
  a 400 would tell it that its request was malformed.
- A `MALFORMED_FUNCTION_CALL` (or `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`) finish
  is an upstream failure (502): the model's answer cannot be turned into a tool call.
- Errors: `{"error": {code, message, status, details}}`; our code is Google's `status`
  (`RESOURCE_EXHAUSTED`, ...), the retry delay comes from `google.rpc.RetryInfo` or
  Retry-After. Google answers an invalid key with **400** `API_KEY_INVALID`: that is
  reported as a 401, so that the worker rests the credential as for any refused key.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Mapping

import msgspec

from llmbus.proto import ChatRequest, Delta, Done, ToolCallDelta, Usage
from llmbus.providers.adapters.base import (
    Credential,
    CredentialSource,
    Family,
    Output,
    StaticKeys,
    UpstreamRequest,
)
from llmbus.providers.adapters.gemini_request import to_gemini
from llmbus.providers.adapters.gemini_wire import (
    ErrorBody,
    GenerateContentResponse,
    Status,
    StreamChunk,
    UsageMetadata,
)
from llmbus.providers.errors import UpstreamError, UpstreamProtocolError, UpstreamStatus, parse_retry_after
from llmbus.providers.http import HttpClient, UpstreamResponse
from llmbus.providers.quirks import dropped
from llmbus.providers.runtime import ConfiguredProvider
from llmbus.providers.sse import aiter_sse

__all__ = ["Gemini", "api_base"]

_encode = msgspec.json.Encoder().encode
_chunk_decoder = msgspec.json.Decoder(StreamChunk)
_response_decoder = msgspec.json.Decoder(GenerateContentResponse)
_error_decoder = msgspec.json.Decoder(ErrorBody | list[ErrorBody])

_VERSION = re.compile(r"/v1(?:alpha|beta)?\d*$")

FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
"""Finish reasons that mean the output was withheld: OpenAI's `content_filter`."""

BROKEN_CALLS = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})
"""Finish reasons that mean the model's tool call could not be used."""


def api_base(endpoint: str) -> str:
    """`{endpoint}/v1beta`, unless the endpoint already names an API version."""
    endpoint = endpoint.rstrip("/")
    return endpoint if _VERSION.search(endpoint) else f"{endpoint}/v1beta"


class Gemini:
    family: Family = "gemini"

    def credentials(self, http: HttpClient) -> CredentialSource:
        return StaticKeys()

    def build(
        self, provider: ConfiguredProvider, chat: ChatRequest, upstream_model: str, credential: Credential
    ) -> UpstreamRequest:
        model = upstream_model.removeprefix("models/")
        method = "streamGenerateContent?alt=sse" if chat.stream else "generateContent"
        if chat.parallel_tool_calls is False:
            dropped("parallel_tool_calls", provider.name, model)
        return UpstreamRequest(
            url=f"{api_base(provider.endpoint)}/models/{model}:{method}",
            headers=self._headers(provider, credential, chat.stream),
            body=_encode(to_gemini(chat)),
        )

    @staticmethod
    def _headers(provider: ConfiguredProvider, credential: Credential, stream: bool) -> dict[str, str]:
        headers = {
            **provider.headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if credential.token:
            headers["x-goog-api-key"] = credential.token
        return headers

    def probe(self, provider: ConfiguredProvider, credential: Credential) -> UpstreamRequest:
        """`GET …/v1beta/models`: free, and it checks the key."""
        headers = self._headers(provider, credential, stream=False)
        headers.pop("Content-Type")
        return UpstreamRequest(url=f"{api_base(provider.endpoint)}/models", headers=headers, method="GET")

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            parsed = _error_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            text = body[:300].decode("utf-8", errors="replace").strip()
            return UpstreamStatus(
                status,
                text or f"the upstream answered {status}",
                retry_after=parse_retry_after(headers.get("retry-after")),
            )
        if isinstance(parsed, list):
            if not parsed:
                return UpstreamStatus(status, f"the upstream answered {status}")
            parsed = parsed[0]
        return _status_error(status, parsed.error, headers.get("retry-after"))

    async def events(self, response: UpstreamResponse, stream: bool) -> AsyncIterator[Output]:
        answer = _Answer()
        if not stream:
            body = await response.read(64 << 20)
            try:
                whole = _response_decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise UpstreamProtocolError(
                    "the upstream sent a response that is not a Gemini answer"
                ) from None
            for item in answer.read(whole):
                yield item
        else:
            async for event in aiter_sse(response.aiter_bytes()):
                if not event.data:
                    continue
                try:
                    chunk = _chunk_decoder.decode(event.data)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    raise UpstreamProtocolError("the upstream sent malformed stream data") from None
                if chunk.error is not None:
                    raise _status_error(chunk.error.code or 500, chunk.error, None)
                for item in answer.read(chunk):
                    yield item
        for item in answer.end():
            yield item


class _Answer:
    """Reads one answer, chunk by chunk: tool-call indexes count across the whole
    answer, the finish reason and the usage are kept for the end."""

    def __init__(self) -> None:
        self.calls = 0
        self.finish: str | None = None
        self.usage: UsageMetadata | None = None

    def read(self, response: GenerateContentResponse) -> list[Output]:
        if response.usage_metadata is not None:
            self.usage = response.usage_metadata
        feedback = response.prompt_feedback
        if not response.candidates:
            if feedback is not None and feedback.block_reason:
                self.finish = "content_filter"
            return []
        candidate = response.candidates[0]
        out: list[Output] = []
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCallDelta] = []
        for part in candidate.content.parts if candidate.content else ():
            if part.function_call is not None:
                call = part.function_call
                calls.append(
                    ToolCallDelta(
                        index=self.calls,
                        id=call.id or self._call_id(response.response_id),
                        name=call.name,
                        arguments=_encode(call.args).decode(),
                        signature=part.thought_signature,
                    )
                )
                self.calls += 1
            elif part.text:
                (reasoning if part.thought else text).append(part.text)
        if text or reasoning or calls:
            out.append(Delta(seq=0, text="".join(text), reasoning="".join(reasoning), tool_calls=calls))
        if candidate.finish_reason:
            self.finish = self._finish(candidate.finish_reason, candidate.finish_message)
        return out

    def _call_id(self, response_id: str | None) -> str:
        """An id for a call that came without one (Gemini 2.5 sends none): made from the
        response's id, so the same answer always gets the same ids, random otherwise."""
        return f"call_{response_id or secrets.token_hex(12)}_{self.calls}"

    def _finish(self, reason: str, message: str | None) -> str:
        if reason in BROKEN_CALLS:
            detail = f": {message}" if message else ""
            raise UpstreamError(
                f"Gemini ended the answer with {reason}: the model's tool call was unusable{detail}",
                status=502,
                code=reason.lower(),
                retryable=True,
            )
        if reason == "MAX_TOKENS":
            return "length"
        if reason in FILTERED:
            return "content_filter"
        return "tool_calls" if self.calls else "stop"

    def end(self) -> list[Output]:
        if self.finish is None:
            raise UpstreamProtocolError("the upstream stream ended before the answer was complete")
        out: list[Output] = []
        if self.usage is not None:
            usage = self.usage
            out.append(
                Usage(
                    seq=0,
                    prompt_tokens=usage.prompt_token_count,
                    completion_tokens=usage.candidates_token_count + usage.thoughts_token_count,
                    cached_tokens=usage.cached_content_token_count,
                    reasoning_tokens=usage.thoughts_token_count,
                )
            )
        out.append(Done(seq=0, finish_reason=self.finish))
        return out


def _status_error(status: int, error: Status, retry_after_header: str | None) -> UpstreamError:
    retry_after = parse_retry_after(retry_after_header)
    code = error.status
    for detail in error.details:
        if detail.retry_delay:
            retry_after = parse_retry_after(detail.retry_delay.removesuffix("s")) or retry_after
        if detail.reason == "API_KEY_INVALID":
            status, code = 401, detail.reason
    message = error.message or f"the upstream answered {status}"
    return UpstreamStatus(status, message, code=code, retry_after=retry_after)
