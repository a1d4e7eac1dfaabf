"""The Anthropic adapter: translation edge cases the fixture cases do not cover, answer
parsing corners, errors; and the adapter against the mock upstream's Anthropic family,
in-process through the real HTTP client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from llmbus.config import Config, ProviderConfig
from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings
from llmbus.proto import (
    ChatRequest,
    Delta,
    Done,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmbus.providers import configured_providers
from llmbus.providers.adapters import ADAPTERS, Anthropic, Credential
from llmbus.providers.adapters.anthropic import api_url
from llmbus.providers.adapters.base import Output
from llmbus.providers.errors import Unsupported, UpstreamError, UpstreamProtocolError, UpstreamStatus
from llmbus.providers.http import HttpClient
from llmbus.providers.runtime import ConfiguredProvider

ADAPTER = Anthropic()
KEY = Credential(name="k", token="sk-ant-unit")
USER = Message(role="user", content="hi")
WEATHER = Tool(name="get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}})


def _provider(endpoint: str = "http://up", headers: dict[str, str] | None = None) -> ConfiguredProvider:
    config = Config(
        providers={
            "claude": ProviderConfig(endpoint=endpoint, api_keys=["sk-ant-unit"], headers=headers or {})
        }
    )
    return configured_providers(config)["claude"]


def _body(chat: ChatRequest) -> dict[str, Any]:
    sent: dict[str, Any] = json.loads(ADAPTER.build(_provider(), chat, "claude-x", KEY).body)
    return sent


def _chat(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="claude", messages=list(messages), **fields)


def _sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def _start(**usage: int) -> tuple[str, dict[str, Any]]:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": []}
    return "message_start", {"type": "message_start", "message": {**message, "usage": usage}}


def _text(index: int, text: str) -> tuple[str, dict[str, Any]]:
    delta = {"type": "text_delta", "text": text}
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def _message_delta(reason: str, **usage: int) -> tuple[str, dict[str, Any]]:
    return "message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": None},
        "usage": usage,
    }


STOP = ("message_stop", {"type": "message_stop"})


async def _run(body: bytes, *, stream: bool = True, status: int = 200) -> list[Output]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body)

    client = HttpClient(transport=httpx2.MockTransport(handler))
    try:
        async with client.stream("POST", "http://up/v1/messages", headers={}, content=b"{}") as response:
            if response.status >= 400:
                raise ADAPTER.error(response.status, response.headers, await response.read())
            return [item async for item in ADAPTER.events(response, stream)]
    finally:
        await client.aclose()


# --- the call ----------------------------------------------------------------------------


def test_the_family_is_registered() -> None:
    assert isinstance(ADAPTERS["anthropic"], Anthropic)


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/", "https://api.anthropic.com/v1/messages"),
        ("https://relay.example/anthropic/v1", "https://relay.example/anthropic/v1/messages"),
        ("https://relay.example/anthropic/v1/", "https://relay.example/anthropic/v1/messages"),
    ],
)
def test_messages_url_adds_v1_only_when_the_endpoint_lacks_it(endpoint: str, url: str) -> None:
    assert api_url(endpoint, "messages") == url


def test_provider_headers_are_merged_and_may_pin_the_version_but_not_the_key() -> None:
    provider = _provider(
        headers={
            "anthropic-beta": "context-1m-2025-08-07",
            "Anthropic-Version": "2024-01-01",
            "X-Api-Key": "sk-from-config",
        }
    )
    headers = ADAPTER.build(provider, _chat(USER), "claude-x", KEY).headers
    lowered = {name.lower(): value for name, value in headers.items()}
    assert len(lowered) == len(headers)  # no header twice under two spellings
    assert lowered["anthropic-beta"] == "context-1m-2025-08-07"
    assert lowered["anthropic-version"] == "2024-01-01"
    assert lowered["x-api-key"] == "sk-ant-unit"
    assert lowered["content-type"] == "application/json"


def test_a_keyless_credential_sends_no_key_header() -> None:
    headers = ADAPTER.build(_provider(), _chat(USER), "claude-x", Credential(name="none", token="")).headers
    assert "x-api-key" not in headers


def test_probe_lists_models_with_the_same_headers_and_no_body() -> None:
    probe = ADAPTER.probe(_provider("https://api.anthropic.com"), KEY)
    assert (probe.method, probe.url, probe.body) == ("GET", "https://api.anthropic.com/v1/models", b"")
    assert probe.headers["x-api-key"] == "sk-ant-unit"
    assert probe.headers["anthropic-version"] == "2023-06-01"
    assert "content-type" not in probe.headers


# --- translation -------------------------------------------------------------------------


def test_consecutive_turns_of_one_role_are_merged_so_roles_alternate() -> None:
    sent = _body(
        _chat(
            Message(role="user", content="one"),
            Message(role="user", content=[TextPart(text="two")]),
            Message(role="assistant", content="three"),
            Message(role="assistant", content="four"),
            Message(role="user", content="five"),
        )
    )
    assert [(m["role"], [b["text"] for b in m["content"]]) for m in sent["messages"]] == [
        ("user", ["one", "two"]),
        ("assistant", ["three", "four"]),
        ("user", ["five"]),
    ]


def test_tool_results_share_one_user_turn_and_come_before_the_users_text() -> None:
    calls = [
        ToolCall(id="toolu_a", name="get_weather", arguments='{"city": "Oslo"}'),
        ToolCall(id="toolu_b", name="t"),
    ]
    sent = _body(
        _chat(
            USER,
            Message(role="assistant", tool_calls=calls),
            Message(role="tool", tool_call_id="toolu_a", content=[TextPart(text="4 degrees")]),
            Message(role="user", content="and then?"),
            Message(role="tool", tool_call_id="toolu_b", content=""),
        )
    )
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assistant, results = sent["messages"][1:]
    assert assistant["content"] == [
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "toolu_b", "name": "t", "input": {}},
    ]
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": [{"type": "text", "text": "4 degrees"}]},
        {"type": "tool_result", "tool_use_id": "toolu_b"},
        {"type": "text", "text": "and then?"},
    ]


def test_tool_call_arguments_that_are_not_an_object_are_refused() -> None:
    call = ToolCall(id="toolu_a", name="t", arguments="[1, 2]")
    with pytest.raises(Unsupported, match="toolu_a"):
        _body(_chat(USER, Message(role="assistant", tool_calls=[call])))


def test_a_tool_message_without_its_call_id_is_refused() -> None:
    with pytest.raises(Unsupported, match="tool_call_id"):
        _body(_chat(USER, Message(role="tool", content="x")))


@pytest.mark.parametrize(
    ("url", "source"),
    [
        (
            "data:image/jpeg;base64,/9j/4AAQ",
            {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
        ),
        (
            "data:image/webp;name=x.webp;base64,UklGR",
            {"type": "base64", "media_type": "image/webp", "data": "UklGR"},
        ),
        ("https://example.com/a.png", {"type": "url", "url": "https://example.com/a.png"}),
        ("http://example.com/a.gif", {"type": "url", "url": "http://example.com/a.gif"}),
    ],
)
def test_images_travel_as_base64_or_by_url(url: str, source: dict[str, str]) -> None:
    sent = _body(_chat(Message(role="user", content=[ImagePart(url=url, detail="high")])))
    assert sent["messages"][0]["content"] == [{"type": "image", "source": source}]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("data:image/png,rawbytes", "base64"),
        ("data:image/svg+xml;base64,PHN2Zz4=", "image/svg+xml"),
        ("ftp://example.com/a.png", "http(s) URL"),
    ],
)
def test_images_anthropic_cannot_take_are_refused(url: str, reason: str) -> None:
    with pytest.raises(Unsupported) as raised:
        _body(_chat(Message(role="user", content=[ImagePart(url=url)])))
    assert reason in raised.value.message
    assert raised.value.status == 400


def test_images_outside_user_turns_and_tool_results_are_refused() -> None:
    image = ImagePart(url="https://example.com/a.png")
    with pytest.raises(Unsupported, match="system"):
        _body(_chat(Message(role="system", content=[image]), USER))
    with pytest.raises(Unsupported, match="assistant"):
        _body(_chat(USER, Message(role="assistant", content=[image])))


def test_an_image_in_a_tool_result_is_kept() -> None:
    result = Message(
        role="tool", tool_call_id="toolu_a", content=[ImagePart(url="https://example.com/a.png")]
    )
    call = ToolCall(id="toolu_a", name="screenshot")
    sent = _body(_chat(USER, Message(role="assistant", tool_calls=[call]), result))
    assert sent["messages"][2]["content"][0]["content"] == [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    ]


def test_reasoning_without_a_signature_is_not_sent_back() -> None:
    sent = _body(_chat(USER, Message(role="assistant", content="ok", reasoning="unsigned thoughts"), USER))
    assert sent["messages"][1]["content"] == [{"type": "text", "text": "ok"}]


def test_empty_texts_are_left_out_and_empty_turns_dropped() -> None:
    sent = _body(
        _chat(
            Message(role="user", content=[TextPart(text=""), TextPart(text="x")]),
            Message(role="assistant", content=""),
        )
    )
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "x"}]}]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"seed": 7}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": -1.0}, "frequency_penalty"),
        ({"temperature": 1.5}, "temperature"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"thinking_budget": 2048, "max_tokens": 2048}, "max_tokens"),
    ],
)
def test_what_anthropic_cannot_express_is_refused_with_a_400(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(Unsupported) as raised:
        _body(_chat(USER, **fields))
    assert raised.value.status == 400
    assert raised.value.param == param


def test_zero_penalties_are_no_ops_and_accepted() -> None:
    sent = _body(_chat(USER, presence_penalty=0.0, frequency_penalty=0.0))
    assert "presence_penalty" not in sent
    assert "frequency_penalty" not in sent


def test_json_schema_response_format_becomes_structured_output() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    sent = _body(_chat(USER, response_format=fmt))
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "output_config" not in _body(_chat(USER, response_format={"type": "text"}))


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (NamedToolChoice(name="get_weather"), None, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice_and_parallel_calls_map_to_anthropics_choice(
    choice: Any, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    sent = _body(_chat(USER, tools=[WEATHER], tool_choice=choice, parallel_tool_calls=parallel))
    assert sent.get("tool_choice") == expected


def test_without_tools_no_tool_choice_is_sent() -> None:
    assert "tool_choice" not in _body(_chat(USER, tool_choice="required"))


def test_tools_get_an_object_schema_when_they_declare_none_and_keep_strict() -> None:
    sent = _body(_chat(USER, tools=[Tool(name="ping", strict=True)]))
    assert sent["tools"] == [{"name": "ping", "input_schema": {"type": "object"}, "strict": True}]


@pytest.mark.parametrize(
    ("fields", "thinking", "max_tokens"),
    [
        ({"reasoning_effort": "low"}, {"type": "enabled", "budget_tokens": 1024}, 4096 + 1024),
        ({"reasoning_effort": "high"}, {"type": "enabled", "budget_tokens": 16384}, 4096 + 16384),
        ({"reasoning_effort": "none"}, None, 4096),
        ({"thinking_budget": 0, "reasoning_effort": "high"}, None, 4096),
        ({"thinking_budget": 3000, "max_tokens": 8000}, {"type": "enabled", "budget_tokens": 3000}, 8000),
    ],
)
def test_thinking_budget_or_effort_sets_thinking_and_leaves_room_for_the_answer(
    fields: dict[str, Any], thinking: dict[str, Any] | None, max_tokens: int
) -> None:
    sent = _body(_chat(USER, **fields))
    assert sent.get("thinking") == thinking
    assert sent["max_tokens"] == max_tokens


# --- answers -----------------------------------------------------------------------------


async def test_a_stream_cut_before_the_stop_reason_is_a_protocol_error() -> None:
    body = _sse(_start(input_tokens=3), _text(0, "Hel"))
    with pytest.raises(UpstreamProtocolError):
        await _run(body)


async def test_a_stream_cut_after_the_stop_reason_is_complete() -> None:
    out = await _run(
        _sse(_start(input_tokens=3), _text(0, "Hi"), _message_delta("end_turn", output_tokens=2))
    )
    assert out[-2:] == [Usage(seq=0, prompt_tokens=3, completion_tokens=2), Done(seq=0, finish_reason="stop")]


async def test_events_without_event_names_are_read_by_their_type() -> None:
    body = b"".join(
        f"data: {json.dumps(data)}\n\n".encode()
        for _, data in (
            _start(input_tokens=1),
            _text(0, "Hi"),
            _message_delta("end_turn", output_tokens=1),
            STOP,
        )
    )
    out = await _run(body)
    assert out[0] == Delta(seq=0, text="Hi")
    assert out[-1] == Done(seq=0, finish_reason="stop")


async def test_unknown_events_and_deltas_are_skipped() -> None:
    citation = {"type": "citations_delta", "citation": {"type": "char_location", "cited_text": "x"}}
    body = _sse(
        _start(input_tokens=1),
        ("future_event", {"type": "future_event"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": citation}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "redacted_thinking", "data": "EmwK"},
            },
        ),
        _text(0, "ok"),
        _message_delta("end_turn", output_tokens=1),
        STOP,
    )
    assert [item for item in await _run(body) if isinstance(item, Delta)] == [Delta(seq=0, text="ok")]


async def test_cumulative_usage_in_message_delta_replaces_the_start_counts() -> None:
    body = _sse(
        _start(input_tokens=10, output_tokens=1, cache_read_input_tokens=0),
        _text(0, "ok"),
        _message_delta("end_turn", input_tokens=12, output_tokens=30, cache_read_input_tokens=100),
        STOP,
    )
    usage = next(item for item in await _run(body) if isinstance(item, Usage))
    assert usage == Usage(seq=0, prompt_tokens=112, completion_tokens=30, cached_tokens=100)


async def test_malformed_stream_data_is_a_protocol_error() -> None:
    body = (
        _sse(_start(input_tokens=1))
        + b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": \n\n'
    )
    with pytest.raises(UpstreamProtocolError):
        await _run(body)


async def test_tool_input_for_a_block_that_is_not_a_tool_is_a_protocol_error() -> None:
    delta = {"type": "input_json_delta", "partial_json": '{"a"'}
    body = _sse(
        _start(input_tokens=1),
        ("content_block_delta", {"type": "content_block_delta", "index": 3, "delta": delta}),
    )
    with pytest.raises(UpstreamProtocolError):
        await _run(body)


@pytest.mark.parametrize(
    ("kind", "status", "retryable"),
    [
        ("overloaded_error", 502, True),
        ("api_error", 502, True),
        ("rate_limit_error", 429, True),
        ("invalid_request_error", 400, False),
    ],
)
async def test_an_error_event_mid_stream_keeps_its_type(kind: str, status: int, retryable: bool) -> None:
    error = {"type": "error", "error": {"type": kind, "message": "boom"}}
    with pytest.raises(UpstreamStatus) as raised:
        await _run(_sse(_start(input_tokens=1), _text(0, "partial"), ("error", error)))
    assert (raised.value.status, raised.value.code, raised.value.retryable) == (status, kind, retryable)


async def test_a_whole_answer_with_thinking_and_tools_is_one_delta() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "Need the weather.", "signature": "EqQBsig"},
            {"type": "redacted_thinking", "data": "EmwK"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 40, "output_tokens_details": {"thinking_tokens": 12}},
    }
    out = await _run(json.dumps(message).encode(), stream=False)
    assert out == [
        Delta(
            seq=0,
            text="Checking.",
            reasoning="Need the weather.",
            reasoning_signature="EqQBsig",
            tool_calls=[
                ToolCallDelta(index=0, id="toolu_a", name="get_weather", arguments='{"city":"Oslo"}'),
                ToolCallDelta(index=1, id="toolu_b", name="get_weather", arguments="{}"),
            ],
        ),
        Usage(seq=0, prompt_tokens=5, completion_tokens=40, reasoning_tokens=12),
        Done(seq=0, finish_reason="tool_calls"),
    ]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "stop"),
        ("something_new", "stop"),
    ],
)
async def test_stop_reasons_map_to_openai_finish_reasons(reason: str, finish: str) -> None:
    message = {
        "type": "message",
        "content": [],
        "stop_reason": reason,
        "usage": {"input_tokens": 1, "output_tokens": 0},
    }
    out = await _run(json.dumps(message).encode(), stream=False)
    assert out[-1] == Done(seq=0, finish_reason=finish)


async def test_a_whole_answer_that_is_not_a_message_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        await _run(b"<html>bad gateway</html>", stream=False)


def test_an_error_body_that_is_not_json_is_reported_as_text() -> None:
    error = ADAPTER.error(502, {"retry-after": "soon"}, b"<html>Bad Gateway</html>")
    assert isinstance(error, UpstreamStatus)
    assert error.message == "<html>Bad Gateway</html>"
    assert error.retry_after is None
    assert (error.status, error.retryable) == (502, True)


def test_overloaded_529_is_retryable_and_names_its_type() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    error = ADAPTER.error(529, {"retry-after": "3"}, body)
    assert (error.status, error.code, error.retryable, error.retry_after) == (
        502,
        "overloaded_error",
        True,
        3.0,
    )


# --- against the mock upstream -----------------------------------------------------------


@pytest.fixture
async def mock_http() -> AsyncIterator[HttpClient]:
    app = create_app(MockSettings(chunks=4, retry_after_seconds=9))
    client = HttpClient(transport=httpx2.ASGITransport(app=app))
    try:
        yield client
    finally:
        await client.aclose()


async def _call(
    http: HttpClient, chat: ChatRequest, model: str = "claude-haiku-4-5-20251001"
) -> list[Output]:
    call = ADAPTER.build(_provider("http://mock"), chat, model, KEY)
    async with http.stream(call.method, call.url, headers=call.headers, content=call.body) as response:
        if response.status >= 400:
            raise ADAPTER.error(response.status, response.headers, await response.read())
        return [item async for item in ADAPTER.events(response, chat.stream)]


def _text_of(out: list[Output]) -> str:
    return "".join(item.text for item in out if isinstance(item, Delta))


async def test_end_to_end_whole_and_streamed_text_agree(mock_http: HttpClient) -> None:
    whole = await _call(mock_http, _chat(Message(role="user", content="hello")))
    streamed = await _call(mock_http, _chat(Message(role="user", content="hello"), stream=True))
    assert _text_of(whole) == _text_of(streamed) == "Mock answer to: hello"
    assert len([item for item in streamed if isinstance(item, Delta)]) == 4
    for out in (whole, streamed):
        assert isinstance(out[-2], Usage)
        assert out[-2].prompt_tokens > 0
        assert out[-1] == Done(seq=0, finish_reason="stop")


async def test_end_to_end_streamed_parallel_tool_calls_reassemble(mock_http: HttpClient) -> None:
    time = Tool(name="get_time", parameters={"type": "object", "properties": {"zone": {"type": "string"}}})
    out = await _call(mock_http, _chat(USER, stream=True, tools=[WEATHER, time]), "claude-parallel-tools")
    calls: dict[int, dict[str, str]] = {}
    for item in out:
        if isinstance(item, Delta):
            for call in item.tool_calls:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += call.name or ""
                entry["arguments"] += call.arguments
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "mock"}
    assert all(calls[i]["id"].startswith("toolu_") for i in (0, 1))
    assert out[-1] == Done(seq=0, finish_reason="tool_calls")


async def test_end_to_end_tool_result_and_image_reach_the_upstream(mock_http: HttpClient) -> None:
    call = ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Oslo"}')
    out = await _call(
        mock_http,
        _chat(
            USER,
            Message(role="assistant", tool_calls=[call]),
            Message(role="tool", tool_call_id="toolu_1", content="4 degrees"),
        ),
    )
    assert _text_of(out) == "Tool said: 4 degrees"
    image = ImagePart(url="data:image/png;base64,iVBORw0KGgo=")
    out = await _call(mock_http, _chat(Message(role="user", content=[TextPart(text="look"), image])))
    assert _text_of(out) == "Mock answer to: look [images: image/png]"


async def test_end_to_end_errors_keep_status_type_and_retry_after(mock_http: HttpClient) -> None:
    with pytest.raises(UpstreamStatus) as raised:
        await _call(mock_http, _chat(USER), "claude-error-429")
    assert (raised.value.status, raised.value.code, raised.value.retry_after) == (
        429,
        "rate_limit_error",
        9.0,
    )
    with pytest.raises(UpstreamStatus) as raised:
        await _call(mock_http, _chat(USER), "claude-error-503")
    assert (raised.value.upstream_status, raised.value.status, raised.value.code) == (
        529,
        502,
        "overloaded_error",
    )
    with pytest.raises(UpstreamError) as failed:
        await _call(mock_http, _chat(USER, stream=True), "claude-midstream-error")
    assert (failed.value.code, failed.value.retryable) == ("overloaded_error", True)


async def test_end_to_end_probe_is_answered_by_the_models_list(mock_http: HttpClient) -> None:
    probe = ADAPTER.probe(_provider("http://mock"), KEY)
    status, _, body = await mock_http.fetch(probe.method, probe.url, headers=probe.headers)
    assert status == 200
    assert json.loads(body)["data"][0]["type"] == "model"
