"""The mock upstream speaks Anthropic's Messages API: the official anthropic SDK, which
parses every event into its typed models, is the oracle. Driven in-process over ASGI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import MessageParam, ToolParam

from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings

MODEL = "claude-haiku-4-5-20251001"
USER: list[MessageParam] = [{"role": "user", "content": "hello there"}]
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
TIME: ToolParam = {
    "name": "get_time",
    "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}},
}
HEADERS = {"x-api-key": "sk-unit", "anthropic-version": "2023-06-01"}


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(MockSettings(chunks=4, hang_seconds=0.05, retry_after_seconds=7))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://mock") as client:
        yield client


@pytest.fixture
async def sdk(http: httpx2.AsyncClient) -> AsyncIterator[anthropic.AsyncAnthropic]:
    # The installed SDK sends `api_key` as `Authorization: Bearer`; Anthropic's API (and
    # this mock) take the key from `x-api-key`, which the public SDK sends.
    async with anthropic.AsyncAnthropic(
        base_url="http://mock",
        api_key="sk-unit",
        default_headers={"x-api-key": "sk-unit"},
        http_client=http,
        max_retries=0,
    ) as client:
        yield client


async def test_message_echoes_the_last_user_turn(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(model=MODEL, max_tokens=256, messages=USER)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text == "Mock answer to: hello there"
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0


async def test_stream_is_anthropics_event_sequence_and_accumulates_to_the_answer(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    async with sdk.messages.stream(model=MODEL, max_tokens=256, messages=USER) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("text") == 4
    assert final.content[0].type == "text"
    assert final.content[0].text == "Mock answer to: hello there"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 1


async def test_stream_frames_are_event_and_data_pairs_with_a_ping(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        "/v1/messages",
        headers=HEADERS,
        json={"model": MODEL, "max_tokens": 64, "stream": True, "messages": USER},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.text.split("\n\n")
    assert frames[-1] == ""
    names = []
    for frame in frames[:-1]:
        event, data = frame.split("\n")
        name = event.removeprefix("event: ")
        assert json.loads(data.removeprefix("data: "))["type"] == name
        names.append(name)
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-1] == "message_stop"


async def test_tool_call_streams_its_input_as_json_fragments(sdk: anthropic.AsyncAnthropic) -> None:
    async with sdk.messages.stream(
        model=MODEL, max_tokens=256, messages=USER, tools=[WEATHER], tool_choice={"type": "any"}
    ) as stream:
        fragments = [
            event.delta.partial_json
            async for event in stream
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
        ]
        final = await stream.get_final_message()
    assert fragments[0] == ""  # Anthropic opens each tool block with an empty fragment
    assert len(fragments) > 2
    assert json.loads("".join(fragments)) == {"city": "mock", "days": 1}
    assert final.stop_reason == "tool_use"
    (block,) = final.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert block.name == "get_weather"
    assert block.input == {"city": "mock", "days": 1}


async def test_parallel_tool_calls_are_separate_tool_use_blocks(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(
        model=f"{MODEL}-parallel-tools", max_tokens=256, messages=USER, tools=[WEATHER, TIME]
    )
    assert [block.type for block in message.content] == ["tool_use", "tool_use"]
    assert [block.name for block in message.content if block.type == "tool_use"] == [
        "get_weather",
        "get_time",
    ]
    ids = {block.id for block in message.content if block.type == "tool_use"}
    assert len(ids) == 2


async def test_named_tool_choice_calls_that_tool(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=USER,
        tools=[WEATHER, TIME],
        tool_choice={"type": "tool", "name": "get_time"},
    )
    assert [block.name for block in message.content if block.type == "tool_use"] == ["get_time"]


async def test_tool_result_turn_is_answered_from_the_result(sdk: anthropic.AsyncAnthropic) -> None:
    messages: list[MessageParam] = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "4 degrees"}],
        },
    ]
    message = await sdk.messages.create(model=MODEL, max_tokens=256, messages=messages, tools=[WEATHER])
    assert message.content[0].type == "text"
    assert message.content[0].text == "Tool said: 4 degrees"


async def test_images_are_reported_by_media_type_or_url(sdk: anthropic.AsyncAnthropic) -> None:
    messages: list[MessageParam] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        }
    ]
    message = await sdk.messages.create(model=MODEL, max_tokens=256, messages=messages)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Mock answer to: look [images: image/png, https://example.com/cat.jpg]"


async def test_small_max_tokens_truncates_with_max_tokens_stop(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(model=MODEL, max_tokens=2, messages=USER)
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Mock ans"


@pytest.mark.parametrize(
    ("model", "error", "status", "kind"),
    [
        ("error-400", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("error-401", anthropic.AuthenticationError, 401, "authentication_error"),
        ("error-429", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("error-500", anthropic.InternalServerError, 500, "api_error"),
        ("error-503", anthropic.InternalServerError, 529, "overloaded_error"),
    ],
)
async def test_error_scenarios_answer_with_anthropics_status_and_error_type(
    sdk: anthropic.AsyncAnthropic, model: str, error: type[anthropic.APIStatusError], status: int, kind: str
) -> None:
    with pytest.raises(error) as raised:
        await sdk.messages.create(model=model, max_tokens=16, messages=USER)
    assert raised.value.status_code == status
    body: Any = raised.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert body["request_id"].startswith("req_")


async def test_rate_limit_carries_retry_after(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        "/v1/messages", headers=HEADERS, json={"model": "error-429", "max_tokens": 8, "messages": USER}
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


async def test_midstream_failure_is_an_error_event_with_overloaded_error(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    texts: list[str] = []

    async def read() -> None:
        async with sdk.messages.stream(model="midstream-error", max_tokens=256, messages=USER) as stream:
            async for event in stream:
                if event.type == "text":
                    texts.append(event.text)

    with pytest.raises(anthropic.APIStatusError) as raised:
        await read()
    body: Any = raised.value.body
    assert body["error"]["type"] == "overloaded_error"
    assert texts  # some text came before the failure


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        (
            {"anthropic-version": "2023-06-01"},
            {"model": MODEL, "max_tokens": 8, "messages": USER},
            401,
            "x-api-key",
        ),
        (
            {"x-api-key": "sk-unit"},
            {"model": MODEL, "max_tokens": 8, "messages": USER},
            400,
            "anthropic-version",
        ),
        (HEADERS, {"model": MODEL, "messages": USER}, 400, "max_tokens: Field required"),
        (HEADERS, {"model": MODEL, "max_tokens": 8}, 400, "messages: Field required"),
    ],
)
async def test_requests_the_real_api_refuses_are_refused(
    http: httpx2.AsyncClient, headers: dict[str, str], body: dict[str, Any], status: int, message: str
) -> None:
    response = await http.post("/v1/messages", headers=headers, json=body)
    assert response.status_code == status
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == ("authentication_error" if status == 401 else "invalid_request_error")
    assert message in error["error"]["message"]


async def test_models_list_is_anthropics_page(sdk: anthropic.AsyncAnthropic) -> None:
    page = await sdk.models.list()
    ids = [model.id async for model in page]
    assert MODEL in ids
    assert page.has_more is False
    assert page.first_id == ids[0]
    model = await sdk.models.retrieve(MODEL)
    assert model.type == "model"
    assert model.display_name == "Claude Haiku 4.5"


async def test_models_path_without_anthropic_headers_is_still_openais(http: httpx2.AsyncClient) -> None:
    response = await http.get("/v1/models", headers={"authorization": "Bearer sk-unit"})
    assert response.json()["object"] == "list"
    anthropic_list = await http.get("/v1/models", headers=HEADERS)
    assert "object" not in anthropic_list.json()
    assert anthropic_list.json()["data"][0]["type"] == "model"
