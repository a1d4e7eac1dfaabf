"""Every error reaches the client in OpenAI's error format with the right status."""

from __future__ import annotations

import time

import httpx2 as httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY

pytestmark = pytest.mark.e2e

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


async def test_unknown_model_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="no-such-model", messages=USER)
    assert caught.value.status_code == 404
    assert "no-such-model" in caught.value.message


async def test_malformed_json_is_400(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "JSON" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o-mini", "messages": USER, "temperature": 7}, "temperature"),
        ({"messages": USER}, "model"),
    ],
)
async def test_invalid_body_is_400_naming_the_field(
    client: openai.AsyncOpenAI, body: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.post("/chat/completions", body=body, cast_to=httpx.Response)
    assert caught.value.status_code == 400
    assert param in caught.value.message


async def test_missing_key_is_401(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


async def test_wrong_key_is_401(stack: Stack) -> None:
    async with openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert caught.value.status_code == 401


async def test_upstream_500_is_502_with_the_upstream_message(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="fail-500", messages=USER)
    assert caught.value.status_code == 502
    assert "The server had an error while processing your request" in caught.value.message


async def test_upstream_500_on_a_stream_is_502_before_any_chunk(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="fail-500", messages=USER, stream=True)
    assert caught.value.status_code == 502


async def test_upstream_400_keeps_its_status(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="fail-400", messages=USER)


async def test_no_worker_for_the_provider_is_503_within_two_seconds(client: openai.AsyncOpenAI) -> None:
    began = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="orphan-model", messages=USER)
    assert caught.value.status_code == 503
    assert time.monotonic() - began < 2.5


@pytest.mark.parametrize("model", ["malformed", "midstream-error", "drop-midstream"])
async def test_stream_failing_midway_ends_with_an_error_event(client: openai.AsyncOpenAI, model: str) -> None:
    stream = await client.chat.completions.create(model=model, messages=USER, stream=True)
    received: list[object] = []

    async def consume() -> None:
        async with stream:  # closed at once, not left to the garbage collector
            async for chunk in stream:
                received.append(chunk)

    with pytest.raises(openai.APIError) as caught:
        await consume()
    assert received, "the first chunks arrive before the failure"
    assert caught.value.message


async def test_upstream_that_hangs_mid_stream_ends_with_an_error_event(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="hang-midstream", messages=USER, stream=True)

    async def consume() -> None:
        async with stream:  # closed at once, not left to the garbage collector
            async for _ in stream:
                pass

    with pytest.raises(openai.APIError):
        await consume()


async def test_unknown_route_is_404_in_openai_format(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


async def test_upstream_that_never_answers_is_504(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="hang", messages=USER)
    assert caught.value.status_code == 504
