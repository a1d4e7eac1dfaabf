"""The Gemini-native API (`/v1beta/models/...`) through the running gateway, driven with
the official google-genai SDK: every family (openai, claude, gemini, copilot, kiro)
answers a Gemini client, whole and streamed, with text, a function call round trip and
an image, and the client sees the content, the finish reason and the usage. Also
`countTokens`, the model list, keys in every place Gemini clients put them, and errors in
Google's format with the right status (bad key, unknown model, bad request, a rate
limit, a stream failing midway)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import pytest
from google import genai
from google.genai import errors, types

from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY
from tests.e2e.test_families import MODELS, PNG

pytestmark = pytest.mark.e2e

FAMILY = pytest.mark.parametrize("family", list(MODELS))
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="The weather in a city.",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]
    ),
)
NO_AUTOMATIC_CALLS = types.AutomaticFunctionCallingConfig(disable=True)


@asynccontextmanager
async def _client(stack: Stack, key: str = CLIENT_KEY) -> AsyncIterator[genai.client.AsyncClient]:
    """The SDK's async client on an httpx client of the test's own (its default, an
    aiohttp session subclass, warns on import, which the suite treats as an error)."""
    async with httpx.AsyncClient(timeout=20) as http:
        options = types.HttpOptions(base_url=stack.base_url, api_version="v1beta", httpx_async_client=http)
        client = genai.Client(api_key=key, http_options=options).aio
        try:
            yield client
        finally:
            await client.aclose()


@pytest.fixture
async def gemini(stack: Stack) -> AsyncIterator[genai.client.AsyncClient]:
    """The official google-genai SDK, pointed at the gateway (its async client)."""
    async with _client(stack) as client:
        yield client


def _mock_tokens(text: str) -> int:
    """The mock upstream's token count (see its script)."""
    return max(1, (len(text) + 3) // 4)


@dataclass
class Seen:
    """What the Gemini client saw of one answer."""

    text: str = ""
    calls: list[types.FunctionCall] = field(default_factory=list)
    finish: types.FinishReason | None = None
    usage: types.GenerateContentResponseUsageMetadata | None = None
    chunks: int = 0


async def _ask(
    client: genai.client.AsyncClient, model: str, stream: bool, contents: Any, **config: Any
) -> Seen:
    settings = types.GenerateContentConfig(**config)
    seen = Seen()
    if stream:
        responses = [
            chunk
            async for chunk in await client.models.generate_content_stream(
                model=model, contents=contents, config=settings
            )
        ]
    else:
        responses = [await client.models.generate_content(model=model, contents=contents, config=settings)]
    for response in responses:
        seen.chunks += 1
        assert response.candidates, response
        candidate = response.candidates[0]
        for part in candidate.content.parts or [] if candidate.content else []:
            if part.text and not part.thought:
                seen.text += part.text
            if part.function_call is not None:
                seen.calls.append(part.function_call)
        if candidate.finish_reason is not None:
            assert seen.finish is None, "one finish reason, on the last chunk"
            seen.finish = candidate.finish_reason
        if response.usage_metadata is not None:
            seen.usage = response.usage_metadata
    assert responses[-1].candidates
    assert responses[-1].candidates[0].finish_reason is not None
    return seen


def _check_usage(seen: Seen, family: str) -> None:
    usage = seen.usage
    assert usage is not None
    prompt = usage.prompt_token_count or 0
    candidates = usage.candidates_token_count or 0
    assert prompt > 0
    if family == "kiro" or not seen.text:
        # Kiro reports no counts (the gateway estimates them); calls cost tokens too.
        assert candidates > 0
    else:
        assert candidates == _mock_tokens(seen.text)
    assert usage.total_token_count == prompt + candidates + (usage.thoughts_token_count or 0)


@FAMILY
@STREAM
async def test_gemini_client_gets_text(gemini: genai.client.AsyncClient, family: str, stream: bool) -> None:
    seen = await _ask(gemini, MODELS[family], stream, "Hello there", system_instruction="Be brief.")
    if family == "kiro":
        # Kiro has no system field: the system prompt leads the first user turn.
        assert seen.text == "Mock answer to: Be brief.\n\nHello there"
    else:
        assert seen.text == "Mock answer to: Hello there"
    assert seen.finish == types.FinishReason.STOP
    assert seen.calls == []
    if stream:
        assert seen.chunks > 1, "the answer streams in several chunks"
    _check_usage(seen, family)


@FAMILY
@STREAM
async def test_gemini_client_round_trips_a_function_call(
    gemini: genai.client.AsyncClient, family: str, stream: bool
) -> None:
    config: dict[str, Any] = {
        "tools": [types.Tool(function_declarations=[WEATHER])],
        "automatic_function_calling": NO_AUTOMATIC_CALLS,
    }
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    first = await _ask(gemini, MODELS[family], stream, [question], **config)
    assert [(call.name, call.args) for call in first.calls] == [("get_weather", {"city": "mock"})]
    assert first.finish == types.FinishReason.STOP
    assert first.text == ""
    _check_usage(first, family)
    call = first.calls[0]
    assert call.id
    # The streamed case answers by the call's id, the whole one by its name only (as
    # Gemini Developer API clients do): both reach the call.
    answer = types.FunctionResponse(
        id=call.id if stream else None, name="get_weather", response={"result": "sunny, 21C"}
    )
    history = [
        question,
        types.Content(role="model", parts=[types.Part(function_call=call)]),
        types.Content(role="user", parts=[types.Part(function_response=answer)]),
    ]
    second = await _ask(gemini, MODELS[family], stream, history, **config)
    assert second.text == "Tool said: sunny, 21C"
    assert second.finish == types.FinishReason.STOP
    assert second.calls == []
    _check_usage(second, family)


@FAMILY
@STREAM
async def test_gemini_client_sends_an_image(
    gemini: genai.client.AsyncClient, family: str, stream: bool
) -> None:
    contents = [
        types.Part(text="What is this?"),
        types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png"),
    ]
    seen = await _ask(gemini, MODELS[family], stream, contents)
    assert seen.text == "Mock answer to: What is this? [images: image/png]"
    assert seen.finish == types.FinishReason.STOP
    _check_usage(seen, family)


async def test_max_output_tokens_ends_with_max_tokens(gemini: genai.client.AsyncClient) -> None:
    seen = await _ask(gemini, "gpt-4o-mini", False, "Hello there", max_output_tokens=2)
    assert seen.finish == types.FinishReason.MAX_TOKENS
    assert seen.text
    assert seen.text != "Mock answer to: Hello there"


async def test_count_tokens_estimates_for_a_routed_model(gemini: genai.client.AsyncClient) -> None:
    counted = await gemini.models.count_tokens(model="gpt-4o-mini", contents="x" * 400)
    assert counted.total_tokens is not None
    assert counted.total_tokens > 100
    with pytest.raises(errors.ClientError) as caught:
        await gemini.models.count_tokens(model="no-such-model", contents="hi")
    assert caught.value.code == 404
    assert caught.value.status == "NOT_FOUND"


async def test_models_are_listed_as_gemini_models(gemini: genai.client.AsyncClient, stack: Stack) -> None:
    listed = [model async for model in await gemini.models.list(config={"page_size": 5})]
    names = {model.name for model in listed}
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        openai_list = (await http.get("/v1/models", headers={"authorization": f"Bearer {CLIENT_KEY}"})).json()
    assert names == {f"models/{entry['id']}" for entry in openai_list["data"]}
    assert len(listed) == len(names) > 5, "several pages were read"
    for family_model in MODELS.values():
        assert f"models/{family_model}" in names
    one = await gemini.models.get(model="gpt-4o-mini")
    assert one.name == "models/gpt-4o-mini"
    assert one.supported_actions is not None
    assert "generateContent" in one.supported_actions
    with pytest.raises(errors.ClientError) as caught:
        await gemini.models.get(model="no-such-model")
    assert caught.value.status == "NOT_FOUND"


async def test_wrong_key_is_401_unauthenticated(stack: Stack) -> None:
    async with _client(stack, key="sk-wrong") as client:
        with pytest.raises(errors.ClientError) as caught:
            await client.models.generate_content(model="gpt-4o-mini", contents="hi")
        assert caught.value.code == 401
        assert caught.value.status == "UNAUTHENTICATED"
        with pytest.raises(errors.ClientError) as listed:
            await client.models.list()
        assert listed.value.code == 401


@contextmanager
def _client_log_quiet() -> Iterator[None]:
    """The test's own HTTP client logs each URL it calls, `?key=` included: that log is
    the test's, not the gateway's (whose logs the suite checks for secrets)."""
    logger = logging.getLogger("httpx2")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


async def test_keys_are_read_from_every_place_gemini_clients_put_them(stack: Stack) -> None:
    body = {"contents": [{"parts": [{"text": "Hello there"}]}]}
    path = "/v1beta/models/gpt-4o-mini:generateContent"
    with _client_log_quiet():
        await _ask_with_keys(stack, path, body)


async def _ask_with_keys(stack: Stack, path: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=20) as http:
        missing = await http.post(path, json=body)
        assert missing.status_code == 401
        assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
        assert missing.json()["error"]["code"] == 401
        for params, headers in (
            ({"key": CLIENT_KEY}, {}),
            ({}, {"x-goog-api-key": CLIENT_KEY}),
            ({}, {"authorization": f"Bearer {CLIENT_KEY}"}),
        ):
            answered = await http.post(path, json=body, params=params, headers=headers)
            assert answered.status_code == 200, answered.text
            assert (
                answered.json()["candidates"][0]["content"]["parts"][0]["text"]
                == "Mock answer to: Hello there"
            )
        wrong = await http.post(path, json=body, params={"key": "sk-wrong"})
        assert wrong.status_code == 401
        assert "sk-wrong" not in wrong.text
        listed = await http.get("/v1beta/models", params={"key": CLIENT_KEY})
        assert listed.status_code == 200
        assert listed.json()["models"]
        assert (await http.get("/v1beta/models")).json()["error"]["status"] == "UNAUTHENTICATED"


async def test_unknown_model_is_404_not_found(gemini: genai.client.AsyncClient) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await gemini.models.generate_content(model="no-such-model", contents="hi")
    assert caught.value.code == 404
    assert caught.value.status == "NOT_FOUND"
    assert "no-such-model" in (caught.value.message or "")


async def test_what_the_gateway_cannot_serve_is_400_invalid_argument(
    gemini: genai.client.AsyncClient,
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await gemini.models.generate_content(
            model="gpt-4o-mini", contents="hi", config=types.GenerateContentConfig(candidate_count=2)
        )
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert "candidateCount" in (caught.value.message or "")
    with pytest.raises(errors.ClientError) as searched:
        await gemini.models.generate_content(
            model="gpt-4o-mini",
            contents="hi",
            config=types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())]),
        )
    assert searched.value.status == "INVALID_ARGUMENT"
    assert "googleSearch" in (searched.value.message or "")


async def test_upstream_rate_limit_is_429_resource_exhausted_with_retry_info(stack: Stack) -> None:
    # `flaky/` picks the provider whose only key is rate limited upstream: no failover.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=20) as http:
        response = await http.post(
            "/v1beta/models/flaky/resilient:generateContent",
            json={"contents": [{"parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": CLIENT_KEY},
        )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert int(response.headers["retry-after"]) >= 1
    delays = [d["retryDelay"] for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert delays
    assert int(delays[0].removesuffix("s")) >= 1


async def test_a_stream_failing_midway_ends_with_an_error_chunk(gemini: genai.client.AsyncClient) -> None:
    received: list[str] = []

    async def consume() -> None:
        async for chunk in await gemini.models.generate_content_stream(
            model="midstream-error", contents="hi"
        ):
            received.append(chunk.text or "")

    with pytest.raises(errors.APIError) as caught:
        await consume()
    assert received, "the first chunks arrive before the failure"
    assert caught.value.code >= 500
    assert caught.value.status in ("INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED")
    assert caught.value.message


async def test_a_stream_without_alt_sse_is_a_json_array(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=20) as http:
        response = await http.post(
            "/v1beta/models/gpt-4o-mini:streamGenerateContent",
            json={"contents": [{"parts": [{"text": "Hello there"}]}]},
            headers={"x-goog-api-key": CLIENT_KEY},
        )
    assert response.status_code == 200
    chunks = json.loads(response.text)
    assert isinstance(chunks, list)
    assert len(chunks) > 1
    text = "".join(
        part.get("text", "") for c in chunks for part in c["candidates"][0]["content"].get("parts", [])
    )
    assert text == "Mock answer to: Hello there"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["promptTokenCount"] > 0


@STREAM
async def test_a_gemini_models_thought_signature_goes_back_to_it(
    gemini: genai.client.AsyncClient, stack: Stack, stream: bool
) -> None:
    """A Gemini client sends the model's turn back as it came, the call's
    `thoughtSignature` included: the gateway hands it to the Gemini upstream unchanged
    (Gemini 3 refuses a step whose calls lost it)."""
    config: dict[str, Any] = {
        "tools": [types.Tool(function_declarations=[WEATHER])],
        "automatic_function_calling": NO_AUTOMATIC_CALLS,
    }
    question = types.Content(role="user", parts=[types.Part(text=f"Weather in Lyon? ({stream=})")])
    # The question names the case, to find the gateway's second call in the mock's records.
    settings = types.GenerateContentConfig(**config)
    if stream:
        parts = [
            part
            async for chunk in await gemini.models.generate_content_stream(
                model=MODELS["gemini"], contents=[question], config=settings
            )
            for part in (
                chunk.candidates[0].content.parts or []
                if chunk.candidates and chunk.candidates[0].content
                else []
            )
        ]
    else:
        answer = await gemini.models.generate_content(
            model=MODELS["gemini"], contents=[question], config=settings
        )
        assert answer.candidates
        assert answer.candidates[0].content
        parts = list(answer.candidates[0].content.parts or [])
    calls = [part for part in parts if part.function_call is not None]
    assert len(calls) == 1
    signature = calls[0].thought_signature
    assert signature, "the upstream's signature reaches the client"
    assert calls[0].function_call is not None
    reply = types.FunctionResponse(
        id=calls[0].function_call.id, name="get_weather", response={"result": "rainy, 12C"}
    )
    history = [
        question,
        types.Content(role="model", parts=calls),
        types.Content(role="user", parts=[types.Part(function_response=reply)]),
    ]
    second = await _ask(gemini, MODELS["gemini"], stream, history, **config)
    assert second.text == "Tool said: rainy, 12C"
    async with httpx.AsyncClient(base_url=stack.mock_url) as mock:
        recorded = (await mock.get("/__mock__/requests")).json()
    marker = f"Weather in Lyon? ({stream=})"
    sent: list[dict[str, Any]] = []
    for record in recorded:
        body = record["body"]
        if record["family"] != "gemini" or not isinstance(body, dict):
            continue
        contents = body.get("contents", [])
        if not any(part.get("text") == marker for content in contents for part in content["parts"]):
            continue
        for content in contents:
            if content.get("role") == "model":
                sent += [part for part in content["parts"] if "functionCall" in part]
    assert sent
    assert base64.b64decode(sent[-1]["thoughtSignature"]) == signature
