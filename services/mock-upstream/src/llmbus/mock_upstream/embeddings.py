"""Embeddings in the OpenAI and Gemini wire formats, with vectors made from the text.

- OpenAI: `POST /v1/embeddings` (and `/embeddings`), `{model, input, dimensions,
  encoding_format, user}` → `{object: "list", data: [{object: "embedding", index,
  embedding}], model, usage: {prompt_tokens, total_tokens}}`; `encoding_format:
  "base64"` answers little-endian float32 bytes in base64, as OpenAI does.
- Gemini: `POST /v1beta/models/{model}:embedContent` (`{content: {parts: [{text}]},
  outputDimensionality}` → `{embedding: {values}}`) and `:batchEmbedContents`
  (`{requests: [{model: "models/{model}", content, outputDimensionality}]}` →
  `{embeddings: [{values}]}`).

A vector is a pure function of the text and the size (`vector`): unit length, each value
exactly a float32 (so float and base64 answers carry the same numbers), and a shorter
size is the longer vector's head renormalized, as Matryoshka embeddings behave. A key
containing `error-401` is refused; a chat model is refused as the real APIs do."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from llmbus.mock_upstream import wire
from llmbus.mock_upstream.scenarios import Scenario
from llmbus.mock_upstream.serve import MockState, json_response

__all__ = ["DIMENSIONS", "gemini_embed", "mock_tokens", "openai_embeddings", "vector"]

DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "gemini-embedding-001": 3072,
    "text-embedding-004": 768,
}
"""The embedding models the mock serves and their full vector sizes."""

_decode = msgspec.json.Decoder().decode


def _f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def vector(text: str, size: int) -> list[float]:
    """The mock's embedding of `text` with `size` values."""
    raw: list[float] = []
    counter = 0
    while len(raw) < size:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw += [(byte - 127.5) / 127.5 for byte in digest]
        counter += 1
    head = raw[:size]
    norm = math.sqrt(sum(v * v for v in head)) or 1.0
    return [_f32(v / norm) for v in head]


def mock_tokens(text: str) -> int:
    """The token count the mock reports for a text (as its chat script counts)."""
    return max(1, (len(text) + 3) // 4)


def _size(model: str, asked: object) -> int | str:
    full = DIMENSIONS[model]
    if asked is None:
        return full
    if not isinstance(asked, int) or isinstance(asked, bool) or not 1 <= asked <= full:
        return f"dimensions must be an integer between 1 and {full}"
    return asked


# --- OpenAI ---------------------------------------------------------------------------


def _openai_error(status: int, message: str, code: str | None = None, param: str | None = None) -> Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json_response(wire.error_body(message, kind, code, param), status)


async def openai_embeddings(state: MockState, request: Request) -> Response:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    try:
        body: Any = _decode(await request.body())
    except msgspec.DecodeError:
        body = None
    record = state.record(request, "openai", key, body)
    record["outcome"] = "rejected"
    if not key:
        return _openai_error(401, "You didn't provide an API key.")
    if Scenario.ERROR_401.value in key:
        return _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
    if not isinstance(body, dict):
        return _openai_error(400, "We could not parse the JSON body of your request.")
    model = body.get("model")
    if not isinstance(model, str) or model not in DIMENSIONS:
        return _openai_error(
            404 if isinstance(model, str) else 400,
            f"The model `{model}` does not exist or does not support embeddings",
            "model_not_found",
            "model",
        )
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        return _openai_error(
            400, "'input' must be a non-empty string or array of non-empty strings", None, "input"
        )
    size = _size(model, body.get("dimensions"))
    if isinstance(size, str):
        return _openai_error(400, size, None, "dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return _openai_error(400, "encoding_format must be float or base64", None, "encoding_format")
    data = []
    for index, text in enumerate(texts):
        values = vector(text, size)
        embedding: list[float] | str = (
            base64.b64encode(struct.pack(f"<{size}f", *values)).decode() if encoding == "base64" else values
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(mock_tokens(t) for t in texts)
    record["outcome"] = "completed"
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


# --- Gemini ---------------------------------------------------------------------------


def _gemini_error(status: int, state: str, message: str) -> Response:
    return json_response({"error": {"code": status, "message": message, "status": state}}, status)


def _gemini_text(content: object) -> str | None:
    if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
        return None
    texts = [
        str(p["text"]) for p in content["parts"] if isinstance(p, dict) and isinstance(p.get("text"), str)
    ]
    return " ".join(texts) if texts else None


def _gemini_values(model: str, item: object) -> list[float] | str:
    if not isinstance(item, dict):
        return "each request must be an object"
    text = _gemini_text(item.get("content"))
    if text is None:
        return "* content: must have at least one text part"
    size = _size(model, item.get("outputDimensionality"))
    if isinstance(size, str):
        return f"outputDimensionality: {size}"
    return vector(text, size)


async def gemini_embed(state: MockState, request: Request, model: str, method: str) -> Response:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key", "")
    try:
        body: Any = _decode(await request.body())
    except msgspec.DecodeError:
        body = None
    record = state.record(request, "gemini", key, body)
    record["outcome"] = "rejected"
    if not key:
        return _gemini_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")
    if Scenario.ERROR_401.value in key:
        return _gemini_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
    if model not in DIMENSIONS:
        return _gemini_error(
            404,
            "NOT_FOUND",
            f"models/{model} is not found for API version v1beta, or is not supported for {method}.",
        )
    if not isinstance(body, dict):
        return _gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    if method == "embedContent":
        values = _gemini_values(model, body)
        if isinstance(values, str):
            return _gemini_error(400, "INVALID_ARGUMENT", values)
        record["outcome"] = "completed"
        return json_response({"embedding": {"values": values}})
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return _gemini_error(400, "INVALID_ARGUMENT", "* requests: must not be empty")
    embeddings = []
    for index, item in enumerate(requests):
        named = item.get("model") if isinstance(item, dict) else None
        if named != f"models/{model}":
            return _gemini_error(
                400,
                "INVALID_ARGUMENT",
                f"requests[{index}].model: the model `{named}` must be the batch's, models/{model}",
            )
        values = _gemini_values(model, item)
        if isinstance(values, str):
            return _gemini_error(400, "INVALID_ARGUMENT", f"requests[{index}]: {values}")
        embeddings.append({"values": values})
    record["outcome"] = "completed"
    return json_response({"embeddings": embeddings})
