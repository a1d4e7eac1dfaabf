"""The whole path through real processes, driven by the official openai SDK."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY

pytestmark = pytest.mark.e2e


async def test_non_stream_completion_returns_the_upstream_answer(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}]
    )
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert "ping" in (choice.message.content or "")
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0


async def test_stream_delivers_every_chunk_and_usage_when_asked(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "stream please" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.id == chunks[0].id for c in chunks)


async def test_stream_without_include_usage_has_no_usage_chunk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


async def test_mapped_model_is_sent_upstream_under_its_upstream_name(
    client: openai.AsyncOpenAI, stack: Stack
) -> None:
    async with httpx.AsyncClient(base_url=stack.mock_url) as mock:
        await mock.post("/__mock__/reset")
        completion = await client.chat.completions.create(
            model="gpt-4-turbo", messages=[{"role": "user", "content": "which model?"}]
        )
        recorded = (await mock.get("/__mock__/requests")).json()
    assert completion.model == "gpt-4-turbo"
    assert recorded[-1]["body"]["model"] == "gpt-4-turbo-preview"


async def test_tool_calls_stream_through_in_fragments(client: openai.AsyncOpenAI) -> None:
    tools: list[ChatCompletionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=tools,
        stream=True,
    )
    name = ""
    arguments = ""
    finish = None
    async for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            if call.function and call.function.name:
                name += call.function.name
            if call.function and call.function.arguments:
                arguments += call.function.arguments
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert name == "get_weather"
    assert arguments.startswith("{")
    assert arguments.endswith("}")
    assert finish == "tool_calls"


async def test_models_lists_the_configured_models(client: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in client.models.list()]
    assert "gpt-4o-mini" in models
    assert "gpt-4-turbo" in models
    assert "openai/gpt-4o-mini" in models


async def test_x_api_key_header_is_accepted(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.get("/v1/models", headers={"x-api-key": CLIENT_KEY})
    assert response.status_code == 200
    assert response.json()["object"] == "list"


async def test_health_and_readiness(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        metrics = await http.get("/metrics")
    assert "llmbus_edge_requests_total" in metrics.text


async def test_failover_to_the_next_provider_is_invisible_to_the_client(client: openai.AsyncOpenAI) -> None:
    for _ in range(3):
        completion = await client.chat.completions.create(
            model="resilient", messages=[{"role": "user", "content": "survive"}]
        )
        assert "survive" in (completion.choices[0].message.content or "")
