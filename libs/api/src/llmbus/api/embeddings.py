"""OpenAI's embeddings API (`POST /v1/embeddings`) as a client dialect: the request
validated and turned into the normalized `EmbedRequest`, the vectors written back as
OpenAI's `list` of `embedding` objects, floats or base64 (little-endian float32, as
OpenAI encodes them; the gateway encodes them itself, whatever the upstream sent).

`input` is a string or a list of strings; token arrays are refused (a gateway in front of
several families cannot pass token ids to every upstream)."""

from __future__ import annotations

import base64
import struct
from typing import Annotated, Any, Final, Literal

import msgspec

from llmbus.api.bodies import decode_body
from llmbus.api.errors import InvalidRequest
from llmbus.proto import EmbedRequest, Usage

__all__ = [
    "MAX_INPUTS",
    "EmbeddingsRequest",
    "decode_embeddings_request",
    "embeddings_response",
]

MAX_INPUTS: Final = 2048
"""The most inputs one request may carry (OpenAI's own limit)."""

_encode = msgspec.json.Encoder().encode

Encoding = Literal["float", "base64"]


class EmbeddingsRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """OpenAI's `CreateEmbeddingRequest`."""

    model: str
    input: str | list[Any]
    dimensions: Annotated[int, msgspec.Meta(ge=1, le=65536)] | None = None
    encoding_format: Encoding | None = None
    user: str | None = None


_decoder = msgspec.json.Decoder(EmbeddingsRequest)


def decode_embeddings_request(body: bytes) -> tuple[EmbedRequest, Encoding]:
    """Validate an embeddings body: the normalized request and the encoding the client
    wants its vectors in. Raises InvalidRequest naming the offending field (`param`)."""
    wire = decode_body(_decoder, body)
    if not wire.model:
        raise InvalidRequest("`model` must not be empty", param="model", code="invalid_value")
    texts = _texts(wire.input)
    embed = EmbedRequest(model=wire.model, input=texts, dimensions=wire.dimensions, user=wire.user or None)
    return embed, wire.encoding_format or "float"


def _texts(value: str | list[Any]) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise InvalidRequest("`input` must not be an empty list", param="input", code="invalid_value")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(
            f"`input` holds {len(texts)} items; at most {MAX_INPUTS} are allowed",
            param="input",
            code="too_many_inputs",
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidRequest(
                "`input` must be a string or a list of strings: token arrays are not supported",
                param="input",
                code="unsupported_parameter",
            )
        if not text:
            raise InvalidRequest(
                "`input` must not contain an empty string",
                param="input" if isinstance(value, str) else f"input[{index}]",
                code="invalid_value",
            )
    return texts


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embeddings_response(
    model: str, vectors: list[list[float]], usage: Usage | None, encoding: Encoding
) -> bytes:
    """OpenAI's answer: `{object: list, data: [{object: embedding, index, embedding}],
    model, usage}`."""
    prompt_tokens = usage.prompt_tokens if usage else 0
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _base64(vector) if encoding == "base64" else vector,
        }
        for index, vector in enumerate(vectors)
    ]
    return _encode(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )
