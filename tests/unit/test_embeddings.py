"""Embeddings end to end inside one process: the client dialect (inbound fixtures from
OpenAI's API reference, the answer floats or base64), the adapters' upstream calls and
answer parsing in OpenAI's and Gemini's documented formats, the registry's embeddings
capability and routing, and the mock upstream's vectors."""

from __future__ import annotations

import base64
import json
import math
import struct
from pathlib import Path
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from llmbus.api import InvalidRequest
from llmbus.api.embeddings import decode_embeddings_request, embeddings_response
from llmbus.config import Config, ProviderConfig
from llmbus.config.model import ModelEntry
from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.embeddings import mock_tokens, vector
from llmbus.proto import EmbedRequest, Needs, Usage
from llmbus.providers import configured_providers
from llmbus.providers.adapters import Credential
from llmbus.providers.adapters.embeddings import (
    GeminiEmbeddings,
    OpenAIEmbeddings,
    embedder_for,
)
from llmbus.providers.errors import Unsupported, UpstreamProtocolError
from llmbus.routing import Catalog, LiveState, UnsupportedRequest

FIXTURES = Path(__file__).resolve().parents[1] / "contract" / "fixtures" / "inbound" / "embeddings"
CASES = sorted(p for p in FIXTURES.iterdir() if p.is_dir())
KEY = Credential(name="key-1", token="sk-up")


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_inbound_fixture(case: Path) -> None:
    body = (case / "request.json").read_bytes()
    if (case / "error.json").exists():
        expected = json.loads((case / "error.json").read_text())
        with pytest.raises(InvalidRequest) as caught:
            decode_embeddings_request(body)
        assert (caught.value.param, caught.value.code, caught.value.status) == (
            expected["param"],
            expected["code"],
            expected["status"],
        )
        return
    expected = json.loads((case / "embed.json").read_text())
    embed, encoding = decode_embeddings_request(body)
    assert embed == msgspec.convert(expected["embed"], EmbedRequest)
    assert encoding == expected["encoding"]


def test_the_answer_in_floats_and_in_base64() -> None:
    vectors = [[0.5, -0.25, 1.0], [0.0, 0.125, -1.0]]
    usage = Usage(seq=0, prompt_tokens=8)
    floats = json.loads(embeddings_response("text-embedding-ada-002", vectors, usage, "float"))
    assert floats == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25, 1.0]},
            {"object": "embedding", "index": 1, "embedding": [0.0, 0.125, -1.0]},
        ],
        "model": "text-embedding-ada-002",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    encoded = json.loads(embeddings_response("m", vectors, usage, "base64"))
    for item, expected in zip(encoded["data"], vectors, strict=True):
        raw = base64.b64decode(item["embedding"])
        assert list(struct.unpack("<3f", raw)) == expected


# --- adapters ---------------------------------------------------------------------------


def _provider(name: str, endpoint: str, models: list[str | ModelEntry]) -> Any:
    return configured_providers(
        Config(providers={name: ProviderConfig(endpoint=endpoint, api_keys=["sk-up"], models=models)})
    )[name]


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("https://api.openai.com", "https://api.openai.com/v1/embeddings"),
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1/embeddings"),
    ],
)
def test_openai_call_follows_the_api_reference(endpoint: str, url: str) -> None:
    provider = _provider("openai", endpoint, ["text-embedding-3-small"])
    request = EmbedRequest(model="small", input=["a", "b"], dimensions=64, user="u")
    call = OpenAIEmbeddings().build(provider, request, "text-embedding-3-small", KEY)
    assert call.url == url
    assert call.headers["Authorization"] == "Bearer sk-up"
    assert json.loads(call.body) == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 64,
        "user": "u",
    }


def test_openai_answer_is_read_in_index_order_with_its_usage() -> None:
    # OpenAI's documented answer, with the items out of order and one as base64.
    packed = base64.b64encode(struct.pack("<2f", 0.5, -2.0)).decode()
    body = json.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "embedding": packed, "index": 1},
                {"object": "embedding", "embedding": [0.0023064255, -0.009327292], "index": 0},
            ],
            "model": "text-embedding-ada-002",
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        }
    ).encode()
    vectors, tokens = OpenAIEmbeddings().parse(body, EmbedRequest(model="m", input=["x", "y"]))
    assert vectors == [[0.0023064255, -0.009327292], [0.5, -2.0]]
    assert tokens == 8


def test_an_answer_with_the_wrong_count_is_a_protocol_error() -> None:
    body = b'{"data": [{"embedding": [1.0], "index": 0}]}'
    with pytest.raises(UpstreamProtocolError):
        OpenAIEmbeddings().parse(body, EmbedRequest(model="m", input=["x", "y"]))
    with pytest.raises(UpstreamProtocolError):
        GeminiEmbeddings().parse(b"<html>", EmbedRequest(model="m", input=["x"]))


def test_gemini_call_is_one_batch_as_documented() -> None:
    provider = _provider("gemini", "https://generativelanguage.googleapis.com", ["gemini-embedding-001"])
    request = EmbedRequest(
        model="gemini-embedding-001", input=["What is the meaning of life?", "b"], dimensions=768
    )
    call = GeminiEmbeddings().build(provider, request, "gemini-embedding-001", KEY)
    assert call.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
    )
    assert call.headers["x-goog-api-key"] == "sk-up"
    assert "key=" not in call.url
    assert json.loads(call.body) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "What is the meaning of life?"}]},
                "outputDimensionality": 768,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "b"}]},
                "outputDimensionality": 768,
            },
        ]
    }


def test_gemini_answer_has_no_usage_so_the_tokens_are_estimated() -> None:
    body = b'{"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}'
    vectors, tokens = GeminiEmbeddings().parse(body, EmbedRequest(model="m", input=["abcd", "abcdefgh"]))
    assert vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert tokens == 3


def test_a_family_without_embeddings_is_a_400() -> None:
    with pytest.raises(Unsupported):
        embedder_for("anthropic", "claude")


# --- registry and routing --------------------------------------------------------------


def _catalog() -> Catalog:
    config = Config(
        providers={
            "openai": ProviderConfig(
                endpoint="http://up",
                api_keys=["sk"],
                models=[
                    "gpt-4o-mini",
                    "text-embedding-3-small",
                    ModelEntry(name="my-embedder", supports_embeddings=True),
                ],
            )
        }
    )
    return Catalog(configured_providers(config))


def test_built_in_embedding_models_are_known_and_others_can_be_marked() -> None:
    models = {
        m.name: m
        for m in configured_providers(
            Config(
                providers={
                    "openai": ProviderConfig(
                        api_keys=["sk"], models=["gpt-4o-mini", "text-embedding-3-small"]
                    )
                }
            )
        )["openai"].models
    }
    assert models["text-embedding-3-small"].features.embeddings
    assert models["text-embedding-3-small"].max_tokens == 8191
    assert not models["gpt-4o-mini"].features.embeddings


@pytest.mark.parametrize("model", ["text-embedding-3-small", "my-embedder"])
def test_embedding_requests_reach_embedding_models(model: str) -> None:
    candidates = _catalog().resolve(model, Needs(embeddings=True), LiveState(), now=0)
    assert [t.upstream_model for tier in candidates.tiers for t in tier] == [model]


def test_a_chat_model_asked_to_embed_and_an_embedder_asked_to_chat_are_400s() -> None:
    catalog = _catalog()
    with pytest.raises(UnsupportedRequest, match="embeddings"):
        catalog.resolve("gpt-4o-mini", Needs(embeddings=True), LiveState(), now=0)
    with pytest.raises(UnsupportedRequest, match="embedding model"):
        catalog.resolve("text-embedding-3-small", Needs(), LiveState(), now=0)


# --- the mock upstream -------------------------------------------------------------------


def test_mock_vectors_are_unit_length_float32_and_shorten_as_matryoshka() -> None:
    full = vector("hello", 1536)
    assert len(full) == 1536
    assert math.isclose(math.sqrt(sum(v * v for v in full)), 1.0, rel_tol=1e-5)
    assert all(struct.unpack("<f", struct.pack("<f", v))[0] == v for v in full)
    assert vector("hello", 1536) == full
    assert vector("world", 1536) != full
    short = vector("hello", 8)
    norm = math.sqrt(sum(v * v for v in full[:8]))
    assert short == pytest.approx([v / norm for v in full[:8]], rel=1e-5)


def test_mock_answers_openai_and_gemini_formats() -> None:
    with TestClient(create_app()) as http:
        openai = http.post(
            "/v1/embeddings",
            json={"model": "text-embedding-3-small", "input": ["a b c d"], "dimensions": 4},
            headers={"authorization": "Bearer sk"},
        ).json()
        assert openai["data"] == [{"object": "embedding", "index": 0, "embedding": vector("a b c d", 4)}]
        assert openai["usage"] == {
            "prompt_tokens": mock_tokens("a b c d"),
            "total_tokens": mock_tokens("a b c d"),
        }
        single = http.post(
            "/v1beta/models/gemini-embedding-001:embedContent",
            json={"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 3},
            headers={"x-goog-api-key": "k"},
        ).json()
        assert single == {"embedding": {"values": vector("hi", 3)}}
        wrong = http.post(
            "/v1beta/models/gemini-embedding-001:batchEmbedContents",
            json={"requests": [{"model": "models/other", "content": {"parts": [{"text": "hi"}]}}]},
            headers={"x-goog-api-key": "k"},
        )
        assert wrong.status_code == 400
        assert wrong.json()["error"]["status"] == "INVALID_ARGUMENT"
        chat_model = http.post(
            "/v1/embeddings",
            json={"model": "gpt-4o-mini", "input": "x"},
            headers={"authorization": "Bearer sk"},
        )
        assert chat_model.status_code == 404
