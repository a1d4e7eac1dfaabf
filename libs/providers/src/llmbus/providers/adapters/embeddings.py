"""Embeddings for the families whose upstreams offer them: the normalized
`EmbedRequest` in, the provider's embeddings call out; its answer in, one vector per
input (in the inputs' order) and the prompt tokens out.

- OpenAI-compatible: `POST {base}/embeddings` with `{model, input: [...], dimensions,
  user, encoding_format: "float"}`; the answer is `{data: [{index, embedding}], usage:
  {prompt_tokens}}` (an `embedding` sent as base64 is decoded too: little-endian
  float32, as OpenAI encodes it).
- Gemini: `POST {base}/v1beta/models/{model}:batchEmbedContents` with `{requests:
  [{model: "models/{model}", content: {parts: [{text}]}, outputDimensionality}]}` (one
  call for any number of texts); the answer is `{embeddings: [{values}]}`. Google
  reports no token count there: the gateway estimates it from the texts.

Errors come through the family's own `error()`, so a 429 rests the credential and fails
over as for chat."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Protocol

import msgspec

from llmbus.api.tokens import estimate_text
from llmbus.proto import Done, Embeddings, EmbedRequest, Usage
from llmbus.providers.adapters.base import Credential, UpstreamRequest
from llmbus.providers.adapters.gemini import Gemini, api_base
from llmbus.providers.adapters.openai import OpenAICompatible
from llmbus.providers.errors import Unsupported, UpstreamProtocolError
from llmbus.providers.http import UpstreamResponse
from llmbus.providers.runtime import ConfiguredProvider

__all__ = [
    "EMBEDDERS",
    "Embedder",
    "GeminiEmbeddings",
    "OpenAIEmbeddings",
    "embedder_for",
    "embedding_outputs",
    "embeddings_url",
]

_encode = msgspec.json.Encoder().encode


class Embedder(Protocol):
    def build(
        self, provider: ConfiguredProvider, request: EmbedRequest, upstream_model: str, credential: Credential
    ) -> UpstreamRequest:
        """The upstream call for one embeddings request."""
        ...

    def parse(self, body: bytes, request: EmbedRequest) -> tuple[list[list[float]], int]:
        """The vectors (one per input, in order) and the prompt tokens of a 2xx answer;
        raises UpstreamProtocolError when the answer does not hold them."""
        ...


# --- OpenAI ---------------------------------------------------------------------------


class _OpenAIRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    model: str
    input: list[str]
    encoding_format: str
    dimensions: int | None = None
    user: str | None = None


class _OpenAIItem(msgspec.Struct, kw_only=True):
    embedding: list[float] | str
    index: int = 0


class _OpenAIUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0


class _OpenAIAnswer(msgspec.Struct, kw_only=True):
    data: list[_OpenAIItem]
    usage: _OpenAIUsage | None = None


_openai_answer = msgspec.json.Decoder(_OpenAIAnswer)


def embeddings_url(provider: ConfiguredProvider) -> str:
    """`…/embeddings` next to the provider's chat path (`…/v1/chat/completions`)."""
    return provider.chat_url.removesuffix("/chat/completions") + "/embeddings"


def _floats(value: list[float] | str) -> list[float]:
    if isinstance(value, list):
        return value
    raw = base64.b64decode(value)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))


def _estimate(request: EmbedRequest) -> int:
    return sum(estimate_text(text) for text in request.input)


def _check(vectors: list[list[float]], request: EmbedRequest) -> list[list[float]]:
    if len(vectors) != len(request.input):
        raise UpstreamProtocolError(
            f"the upstream answered {len(vectors)} embeddings for {len(request.input)} inputs"
        )
    return vectors


class OpenAIEmbeddings:
    def build(
        self, provider: ConfiguredProvider, request: EmbedRequest, upstream_model: str, credential: Credential
    ) -> UpstreamRequest:
        body = _OpenAIRequest(
            model=upstream_model,
            input=request.input,
            encoding_format="float",
            dimensions=request.dimensions,
            user=request.user,
        )
        return UpstreamRequest(
            url=embeddings_url(provider),
            headers=OpenAICompatible.headers(provider, credential, False),
            body=_encode(body),
        )

    def parse(self, body: bytes, request: EmbedRequest) -> tuple[list[list[float]], int]:
        try:
            answer = _openai_answer.decode(body)
            items = sorted(answer.data, key=lambda item: item.index)
            vectors = [_floats(item.embedding) for item in items]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise UpstreamProtocolError(f"the upstream's embeddings answer is malformed: {exc}") from None
        prompt = (
            answer.usage.prompt_tokens if answer.usage and answer.usage.prompt_tokens else _estimate(request)
        )
        return _check(vectors, request), prompt


# --- Gemini ---------------------------------------------------------------------------


class _Part(msgspec.Struct, kw_only=True):
    text: str


class _Content(msgspec.Struct, kw_only=True):
    parts: list[_Part]


class _EmbedContent(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    model: str
    content: _Content
    output_dimensionality: int | None = None


class _BatchRequest(msgspec.Struct, kw_only=True):
    requests: list[_EmbedContent]


class _Values(msgspec.Struct, kw_only=True):
    values: list[float] = []


class _GeminiUsage(msgspec.Struct, kw_only=True, rename="camel"):
    prompt_token_count: int = 0


class _BatchAnswer(msgspec.Struct, kw_only=True, rename="camel"):
    embeddings: list[_Values] = []
    usage_metadata: _GeminiUsage | None = None


_gemini_answer = msgspec.json.Decoder(_BatchAnswer)


class GeminiEmbeddings:
    def build(
        self, provider: ConfiguredProvider, request: EmbedRequest, upstream_model: str, credential: Credential
    ) -> UpstreamRequest:
        model = upstream_model.removeprefix("models/")
        body = _BatchRequest(
            requests=[
                _EmbedContent(
                    model=f"models/{model}",
                    content=_Content(parts=[_Part(text=text)]),
                    output_dimensionality=request.dimensions,
                )
                for text in request.input
            ]
        )
        return UpstreamRequest(
            url=f"{api_base(provider.endpoint)}/models/{model}:batchEmbedContents",
            headers=Gemini._headers(provider, credential, False),
            body=_encode(body),
        )

    def parse(self, body: bytes, request: EmbedRequest) -> tuple[list[list[float]], int]:
        try:
            answer = _gemini_answer.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamProtocolError(f"the upstream's embeddings answer is malformed: {exc}") from None
        usage = answer.usage_metadata
        prompt = usage.prompt_token_count if usage and usage.prompt_token_count else _estimate(request)
        return _check([item.values for item in answer.embeddings], request), prompt


EMBEDDERS: dict[str, Embedder] = {"openai": OpenAIEmbeddings(), "gemini": GeminiEmbeddings()}
"""The families whose upstreams offer embeddings."""


def embedder_for(family: str, provider: str) -> Embedder:
    """The family's embedder; a family without one is a 400 (a model marked
    `supports_embeddings` at a provider whose API has no embeddings)."""
    embedder = EMBEDDERS.get(family)
    if embedder is None:
        raise Unsupported(f"{provider} ({family} family) offers no embeddings API")
    return embedder


async def embedding_outputs(
    embedder: Embedder, response: UpstreamResponse, request: EmbedRequest
) -> AsyncIterator[Embeddings | Usage | Done]:
    """The reply stream of an embeddings answer: the vectors, the usage, the end."""
    vectors, prompt_tokens = embedder.parse(await response.read(), request)
    yield Embeddings(seq=0, vectors=vectors)
    yield Usage(seq=0, prompt_tokens=prompt_tokens)
    yield Done(seq=0, finish_reason="stop")
