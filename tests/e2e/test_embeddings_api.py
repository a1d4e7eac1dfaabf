"""`POST /v1/embeddings` with the official openai SDK's `client.embeddings.create`,
through the whole gateway to the OpenAI family (`text-embedding-3-small`, the mock's
`/v1/embeddings`) and the Gemini family (`gemini-embedding-001`, the mock's
`batchEmbedContents`): the vectors are the mock's for each text, in order, as floats
and as base64 (the SDK's default, decoded by the SDK), shortened by `dimensions`; usage
is counted; what cannot be embedded is refused in OpenAI's error format."""

from __future__ import annotations

import base64
import struct
from typing import Any

import httpx
import openai
import pytest

from llmbus.api.tokens import estimate_text
from llmbus.mock_upstream.embeddings import DIMENSIONS, mock_tokens, vector
from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY
from tests.e2e.test_families import MODELS

pytestmark = pytest.mark.e2e

EMBEDDING_MODELS = {"openai": "text-embedding-3-small", "gemini": "gemini-embedding-001"}
FAMILY = pytest.mark.parametrize("family", list(EMBEDDING_MODELS))
TEXTS = ["The quick brown fox", "jumps over the lazy dog", "héllo wörld"]


def _prompt_tokens(family: str, texts: list[str]) -> int:
    """What the client is charged: OpenAI's upstream counts (the mock's count), Gemini's
    reports none, so the gateway estimates."""
    if family == "openai":
        return sum(mock_tokens(t) for t in texts)
    return sum(estimate_text(t) for t in texts)


@FAMILY
@pytest.mark.parametrize("encoding", ["float", "base64", None], ids=["float", "base64", "sdk-default"])
async def test_every_text_gets_its_vector_in_order(
    client: openai.AsyncOpenAI, family: str, encoding: str | None
) -> None:
    model = EMBEDDING_MODELS[family]
    kwargs: dict[str, Any] = {} if encoding is None else {"encoding_format": encoding}
    answer = await client.embeddings.create(model=model, input=TEXTS, **kwargs)
    assert answer.object == "list"
    assert answer.model == model
    assert [item.index for item in answer.data] == [0, 1, 2]
    size = DIMENSIONS[model]
    for item, text in zip(answer.data, TEXTS, strict=True):
        assert item.object == "embedding"
        values: Any = item.embedding
        if encoding == "base64":
            assert isinstance(values, str)
            raw = base64.b64decode(values)
            values = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        assert len(values) == size
        assert list(values) == vector(text, size)
    assert answer.data[0].embedding != answer.data[1].embedding
    assert answer.usage.prompt_tokens == _prompt_tokens(family, TEXTS)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens


@FAMILY
async def test_dimensions_shorten_the_vectors(client: openai.AsyncOpenAI, family: str) -> None:
    answer = await client.embeddings.create(
        model=EMBEDDING_MODELS[family], input="shorter please", dimensions=256, encoding_format="float"
    )
    assert len(answer.data) == 1
    assert answer.data[0].embedding == vector("shorter please", 256)
    assert answer.usage.prompt_tokens == _prompt_tokens(family, ["shorter please"])


async def test_a_provider_prefix_reaches_the_gemini_family(client: openai.AsyncOpenAI) -> None:
    answer = await client.embeddings.create(
        model="gemini/gemini-embedding-001", input="prefixed", encoding_format="float"
    )
    assert answer.data[0].embedding == vector("prefixed", DIMENSIONS["gemini-embedding-001"])


async def test_a_chat_model_asked_to_embed_is_a_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.embeddings.create(model=MODELS["openai"], input="hi")
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert body["code"] == "unsupported_capability"
    assert "embeddings" in body["message"]


async def test_an_embedding_model_asked_to_chat_is_a_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="text-embedding-3-small", messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(caught.value.body, dict)
    assert "embedding model" in caught.value.body["message"]


async def test_an_unknown_model_is_a_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.embeddings.create(model="no-such-embedder", input="hi")
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": "hi", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "hi", "dimensions": 0}, "dimensions"),
    ],
)
async def test_what_cannot_be_embedded_is_a_clear_400(
    stack: Stack, payload: dict[str, Any], param: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        response = await http.post(
            "/v1/embeddings",
            json={"model": "text-embedding-3-small", **payload},
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_a_request_without_a_key_is_a_401_in_openai_format(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        response = await http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
