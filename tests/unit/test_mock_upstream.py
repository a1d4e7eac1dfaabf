"""The mock upstream speaks OpenAI's wire format: the official openai SDK, which parses
every chunk into its typed models, is the oracle. Driven in-process over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.scenarios import Scenario, pick_scenario
from llmbus.mock_upstream.settings import MockSettings

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(MockSettings(chunks=4, hang_seconds=0.05))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://mock") as client:
        yield client


@pytest.fixture
async def sdk(http: httpx2.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url="http://mock/v1", api_key="sk-unit", http_client=http, max_retries=0
    ) as client:
        yield client


def test_scenario_is_picked_by_model_then_key_and_longest_name_wins() -> None:
    assert pick_scenario(None, "hang-midstream", "sk") is Scenario.HANG_MIDSTREAM
    assert pick_scenario(None, "hang", "sk") is Scenario.HANG
    assert pick_scenario(None, "gpt-4o-mini", "sk-error-429-upstream") is Scenario.ERROR_429
    assert pick_scenario(Scenario.SLOW, "error-500", "sk") is Scenario.SLOW
    assert pick_scenario(None, "gpt-4o-mini", "sk-plain") is Scenario.OK


async def test_non_stream_answer_echoes_the_last_user_message(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == "Mock answer to: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_stream_has_role_chunk_content_chunks_finish_and_usage(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(content) == 4
    assert "".join(content) == "Mock answer to: hello there"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_ends_with_done(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": USER, "stream": True},
        headers={"Authorization": "Bearer sk-unit"},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2] == "data: [DONE]"
    assert '"usage"' not in response.text


async def test_tool_call_is_streamed_in_fragments(sdk: openai.AsyncOpenAI) -> None:
    tools: list[ChatCompletionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                },
            },
        }
    ]
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        tools=tools,
        stream=True,
    )
    fragments: list[str] = []
    finish = None
    async for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.index == 0
            if call.function and call.function.arguments:
                fragments.append(call.function.arguments)
        finish = chunk.choices[0].finish_reason or finish
    assert len(fragments) > 1
    assert "".join(fragments) == '{"city":"mock","days":1}'
    assert finish == "tool_calls"


async def test_non_stream_tool_call(sdk: openai.AsyncOpenAI) -> None:
    tools: list[ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ]
    completion = await sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        tools=tools,
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "lookup"


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("error-400", openai.BadRequestError, 400),
        ("error-401", openai.AuthenticationError, 401),
        ("error-429", openai.RateLimitError, 429),
        ("error-500", openai.InternalServerError, 500),
        ("error-503", openai.InternalServerError, 503),
    ],
)
async def test_error_scenarios_answer_with_openai_error_bodies(
    sdk: openai.AsyncOpenAI, model: str, error: type[openai.APIStatusError], status: int
) -> None:
    with pytest.raises(error) as caught:
        await sdk.chat.completions.create(model=model, messages=USER)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict)
    assert set(body) >= {"message", "type", "param", "code"}


async def test_rate_limit_carries_retry_after(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": USER},
        headers={"Authorization": "Bearer sk-error-429-upstream"},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


async def test_missing_key_is_401(http: httpx2.AsyncClient) -> None:
    response = await http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER})
    assert response.status_code == 401
    assert "API key" in response.json()["error"]["message"]


async def test_missing_messages_is_400_naming_the_parameter(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", json={"model": "gpt-4o-mini"}, headers={"Authorization": "Bearer k"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


@pytest.mark.parametrize("model", ["midstream-error", "malformed-sse"])
async def test_streams_that_fail_midway_fail_in_the_sdk(sdk: openai.AsyncOpenAI, model: str) -> None:
    stream = await sdk.chat.completions.create(model=model, messages=USER, stream=True)
    received: list[object] = []

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises((openai.APIError, ValueError)):
        await consume()
    assert received


async def test_drop_midstream_ends_without_done(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "drop-midstream", "messages": USER, "stream": True},
        headers={"Authorization": "Bearer k"},
    )
    assert response.text.startswith("data: {")
    assert "[DONE]" not in response.text
    assert '"finish_reason":"stop"' not in response.text


async def test_admin_api_records_requests_and_forces_scenarios(http: httpx2.AsyncClient) -> None:
    auth = {"Authorization": "Bearer sk-secret-key"}
    await http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER}, headers=auth)
    recorded = (await http.get("/__mock__/requests")).json()
    assert recorded[-1]["body"]["model"] == "gpt-4o"
    assert "authorization" not in recorded[-1]["headers"]
    assert "sk-secret-key" not in str(recorded)

    assert (await http.post("/__mock__/scenario", json={"scenario": "error-503"})).status_code == 200
    forced = await http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER}, headers=auth)
    assert forced.status_code == 503
    assert (await http.post("/__mock__/scenario", json={"scenario": "nonsense"})).status_code == 400

    await http.post("/__mock__/reset")
    assert (await http.get("/__mock__/requests")).json() == []
    ok = await http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER}, headers=auth)
    assert ok.status_code == 200


async def test_models_list_and_lookup(sdk: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in sdk.models.list()]
    assert "gpt-4o-mini" in ids
    assert (await sdk.models.retrieve("gpt-4o")).id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("no-such-model")


async def test_outcome_is_recorded(http: httpx2.AsyncClient) -> None:
    auth = {"Authorization": "Bearer k"}
    await http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER}, headers=auth)
    await http.post("/v1/chat/completions", json={"model": "error-500", "messages": USER}, headers=auth)
    await http.post(
        "/v1/chat/completions", json={"model": "gpt-4o", "messages": USER, "stream": True}, headers=auth
    )
    recorded = (await http.get("/__mock__/requests")).json()
    assert [r["outcome"] for r in recorded] == ["completed", "rejected", "completed"]
