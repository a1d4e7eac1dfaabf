"""The Gemini adapter: translation edge cases the fixture cases do not cover, and the
adapter against the mock upstream in-process (HttpClient over an ASGI transport)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import msgspec
import pytest

from llmbus.config import Config, ProviderConfig
from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.gemini import SIGNATURE
from llmbus.mock_upstream.settings import MockSettings
from llmbus.proto import ChatRequest, Delta, Done, ToolCall, Usage
from llmbus.providers import configured_providers
from llmbus.providers.adapters import Credential, Output
from llmbus.providers.adapters.gemini import Gemini, api_base
from llmbus.providers.adapters.gemini_request import FOREIGN_SIGNATURE
from llmbus.providers.errors import Unsupported, UpstreamError, UpstreamProtocolError, UpstreamStatus
from llmbus.providers.http import HttpClient
from llmbus.providers.runtime import ConfiguredProvider

ADAPTER = Gemini()
KEY = Credential(name="k", token="AIza-unit")
PNG = "data:image/png;base64,iVBORw0KGgo="


def _provider(endpoint: str = "http://mock", **fields: Any) -> ConfiguredProvider:
    entry = msgspec.convert({"endpoint": endpoint, "api_keys": ["AIza-unit"], **fields}, ProviderConfig)
    return configured_providers(Config(providers={"gemini": entry}))["gemini"]


def _chat(messages: list[dict[str, Any]], **fields: Any) -> ChatRequest:
    return msgspec.convert({"model": "flash", "messages": messages, **fields}, ChatRequest)


def _body(chat: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(ADAPTER.build(_provider(), chat, "gemini-2.5-flash", KEY).body)
    return body


USER = [{"role": "user", "content": "hello there"}]
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


# --- request translation -------------------------------------------------------------


def test_consecutive_turns_of_one_role_are_merged_and_tool_results_join_the_user_turn() -> None:
    body = _body(
        _chat(
            [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": "{}"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "user", "content": "and tomorrow?"},
            ]
        )
    )
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"] == [{"text": "a"}, {"text": "b"}]
    last = body["contents"][2]["parts"]
    assert last[0]["functionResponse"]["response"] == {"result": "sunny"}
    assert last[1] == {"text": "and tomorrow?"}


def test_system_messages_anywhere_become_one_system_instruction() -> None:
    body = _body(
        _chat(
            [
                {"role": "system", "content": "one"},
                {"role": "user", "content": "hi"},
                {"role": "developer", "content": [{"type": "text", "text": "two"}]},
            ]
        )
    )
    assert body["systemInstruction"] == {"parts": [{"text": "one"}, {"text": "two"}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_an_empty_assistant_message_is_left_out() -> None:
    body = _body(_chat([*USER, {"role": "assistant", "content": ""}, {"role": "user", "content": "again"}]))
    assert [c["role"] for c in body["contents"]] == ["user"]


def test_foreign_tool_calls_get_the_placeholder_signature_on_the_first_call_only() -> None:
    calls = [
        {"id": "a", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"id": "b", "name": "get_weather", "arguments": '{"city": "Rome"}'},
    ]
    body = _body(_chat([*USER, {"role": "assistant", "tool_calls": calls}]))
    parts = body["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == FOREIGN_SIGNATURE
    assert "thoughtSignature" not in parts[1]
    assert parts[1]["functionCall"] == {"name": "get_weather", "args": {"city": "Rome"}, "id": "b"}


def test_a_tool_call_with_arguments_that_are_not_an_object_is_refused() -> None:
    chat = _chat([*USER, {"role": "assistant", "tool_calls": [{"id": "a", "name": "f", "arguments": "[1]"}]}])
    with pytest.raises(Unsupported, match="not a JSON object"):
        _body(chat)


def test_tool_results_name_their_call_or_are_refused() -> None:
    orphan = _chat([*USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}])
    with pytest.raises(Unsupported, match="answers no tool call"):
        _body(orphan)
    named = _body(_chat([*USER, {"role": "tool", "tool_call_id": "nope", "name": "lookup", "content": "x"}]))
    assert named["contents"][0]["parts"][1]["functionResponse"]["name"] == "lookup"


@pytest.mark.parametrize(
    ("content", "is_error", "response"),
    [
        ('{"temp": 3}', False, {"temp": 3}),
        ("[1, 2]", False, {"result": "[1, 2]"}),
        ("plain", False, {"result": "plain"}),
        ("boom", True, {"error": "boom"}),
    ],
)
def test_tool_result_response_is_an_object(content: str, is_error: bool, response: dict[str, Any]) -> None:
    call = {"role": "assistant", "tool_calls": [{"id": "c", "name": "f", "arguments": "{}"}]}
    result = {"role": "tool", "tool_call_id": "c", "content": content, "is_error": is_error}
    body = _body(_chat([*USER, call, result]))
    assert body["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "f",
        "response": response,
        "id": "c",
    }


def test_images_a_tool_returned_follow_its_response() -> None:
    call = {"role": "assistant", "tool_calls": [{"id": "c", "name": "shot", "arguments": "{}"}]}
    content = [{"type": "text", "text": "done"}, {"type": "image_url", "url": PNG}]
    body = _body(_chat([*USER, call, {"role": "tool", "tool_call_id": "c", "content": content}]))
    parts = body["contents"][2]["parts"]
    assert parts[0]["functionResponse"]["response"] == {"result": "done"}
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:image/svg+xml,<svg/>", "base64 data URLs"),
        ("ftp://example.com/cat.png", "ftp URL"),
        ("https://example.com/cat.bmp", "image type"),
    ],
)
def test_images_gemini_cannot_take_are_refused(url: str, message: str) -> None:
    chat = _chat([{"role": "user", "content": [{"type": "image_url", "url": url}]}])
    with pytest.raises(Unsupported, match=message):
        _body(chat)


def test_an_image_in_a_system_message_is_refused() -> None:
    chat = _chat([{"role": "system", "content": [{"type": "image_url", "url": PNG}]}, *USER])
    with pytest.raises(Unsupported, match="system"):
        _body(chat)


@pytest.mark.parametrize(
    ("fields", "thinking"),
    [
        ({"reasoning_effort": "none"}, {"thinkingBudget": 0}),
        ({"reasoning_effort": "high"}, {"thinkingBudget": 24576, "includeThoughts": True}),
        (
            {"reasoning_effort": "high", "thinking_budget": 300},
            {"thinkingBudget": 300, "includeThoughts": True},
        ),
        ({"thinking_budget": -1}, {"thinkingBudget": -1, "includeThoughts": True}),
    ],
)
def test_thinking_comes_from_the_budget_or_the_effort(
    fields: dict[str, Any], thinking: dict[str, Any]
) -> None:
    assert _body(_chat(USER, **fields))["generationConfig"]["thinkingConfig"] == thinking


def test_an_unknown_reasoning_effort_is_refused() -> None:
    with pytest.raises(Unsupported, match="reasoning_effort"):
        _body(_chat(USER, reasoning_effort="extreme"))


def test_response_formats() -> None:
    assert _body(_chat(USER, response_format={"type": "json_object"}))["generationConfig"] == {
        "responseMimeType": "application/json"
    }
    assert "generationConfig" not in _body(_chat(USER, response_format={"type": "text"}))
    with pytest.raises(Unsupported, match="response_format"):
        _body(_chat(USER, response_format={"type": "grammar"}))
    with pytest.raises(Unsupported, match=r"json_schema\.schema"):
        _body(_chat(USER, response_format={"type": "json_schema", "json_schema": {"name": "x"}}))


def test_tool_choice_mapping() -> None:
    assert _body(_chat(USER, tools=[WEATHER], tool_choice="none"))["toolConfig"] == {
        "functionCallingConfig": {"mode": "NONE"}
    }
    assert "toolConfig" not in _body(_chat(USER, tool_choice="required"))
    with pytest.raises(Unsupported, match="not a tool"):
        _body(_chat(USER, tools=[WEATHER], tool_choice={"name": "other"}))


def test_schemas_go_through_unchanged_and_strict_is_dropped() -> None:
    tool = {**WEATHER, "strict": True, "parameters": {**WEATHER["parameters"], "additionalProperties": False}}
    declaration = _body(_chat(USER, tools=[tool]))["tools"][0]["functionDeclarations"][0]
    assert declaration == {"name": "get_weather", "parametersJsonSchema": tool["parameters"]}


@pytest.mark.parametrize(
    ("endpoint", "base"),
    [
        ("https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com/v1beta"),
        ("https://proxy.test/google/v1beta/", "https://proxy.test/google/v1beta"),
        ("https://proxy.test/v1", "https://proxy.test/v1"),
        ("https://proxy.test/v1alpha", "https://proxy.test/v1alpha"),
    ],
)
def test_api_base_adds_v1beta_only_when_no_version_is_given(endpoint: str, base: str) -> None:
    assert api_base(endpoint) == base


def test_headers_merge_the_provider_headers_and_carry_no_key_when_there_is_none() -> None:
    provider = _provider(headers={"X-Team": "llm"})
    call = ADAPTER.build(provider, _chat(USER), "gemini-2.5-flash", Credential(name="none", token=""))
    assert call.headers["X-Team"] == "llm"
    assert "x-goog-api-key" not in call.headers
    assert "key=" not in call.url


# --- errors ----------------------------------------------------------------------------


def test_a_non_json_error_keeps_the_text_and_the_retry_after_header() -> None:
    error = ADAPTER.error(503, {"retry-after": "4"}, b"<html>Service Unavailable</html>")
    assert isinstance(error, UpstreamStatus)
    assert (error.status, error.retryable, error.retry_after) == (502, True, 4.0)
    assert "Service Unavailable" in error.message


def test_an_error_in_a_json_array_is_read_and_retry_after_is_the_fallback() -> None:
    body = b'[{"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}]'
    error = ADAPTER.error(429, {"retry-after": "9"}, body)
    assert (error.status, error.code, error.retry_after, error.message) == (
        429,
        "RESOURCE_EXHAUSTED",
        9.0,
        "slow down",
    )


# --- output ----------------------------------------------------------------------------


async def _outputs(answer: bytes, stream: bool) -> list[Output]:
    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(answer), 5):
            yield answer[i : i + 5]

    client = HttpClient(transport=httpx2.MockTransport(lambda request: httpx2.Response(200, content=body())))
    try:
        async with client.stream("POST", "http://upstream.test/", headers={}, content=b"{}") as response:
            return [item async for item in ADAPTER.events(response, stream)]
    finally:
        await client.aclose()


def _chunk(parts: list[dict[str, Any]], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **extra}


async def test_crlf_framed_streams_are_read_too() -> None:
    answer = b"".join(
        b"data: " + json.dumps(c).encode() + b"\r\n\r\n"
        for c in (_chunk([{"text": "a"}]), _chunk([{"text": "b"}], "STOP"))
    )
    outputs = await _outputs(answer, stream=True)
    assert [o.text for o in outputs if isinstance(o, Delta)] == ["a", "b"]
    assert outputs[-1] == Done(seq=0, finish_reason="stop")


async def test_a_stream_that_ends_without_a_finish_reason_is_cut_short() -> None:
    answer = b"data: " + json.dumps(_chunk([{"text": "a"}])).encode() + b"\n\n"
    with pytest.raises(UpstreamProtocolError):
        await _outputs(answer, stream=True)


async def test_garbage_in_a_stream_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        await _outputs(b"data: {not json\n\n", stream=True)


async def test_usage_is_emitted_once_from_the_last_chunk() -> None:
    chunks = [
        _chunk([{"text": "a"}], usageMetadata={"promptTokenCount": 5, "candidatesTokenCount": 1}),
        _chunk([{"text": "b"}], "STOP", usageMetadata={"promptTokenCount": 5, "candidatesTokenCount": 2}),
    ]
    answer = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    usages = [o for o in await _outputs(answer, stream=True) if isinstance(o, Usage)]
    assert usages == [Usage(seq=0, prompt_tokens=5, completion_tokens=2)]


async def test_calls_without_ids_get_unique_ids_when_the_response_has_no_id() -> None:
    call = {"functionCall": {"name": "f", "args": {}}}
    answer = json.dumps(_chunk([call, call], "STOP")).encode()
    first = next(o for o in await _outputs(answer, stream=False) if isinstance(o, Delta)).tool_calls
    second = next(o for o in await _outputs(answer, stream=False) if isinstance(o, Delta)).tool_calls
    ids = [c.id for c in first + second]
    assert len(set(ids)) == 4
    assert [c.index for c in first] == [0, 1]


# --- against the mock upstream ---------------------------------------------------------


@pytest.fixture
async def mock() -> AsyncIterator[HttpClient]:
    app = create_app(MockSettings(chunks=3, retry_after_seconds=3))
    client = HttpClient(transport=httpx2.ASGITransport(app=app))
    yield client
    await client.aclose()


async def _call(
    http: HttpClient, chat: ChatRequest, model: str = "gemini-2.5-flash", key: str = "AIza-unit"
) -> list[Output]:
    call = ADAPTER.build(_provider(), chat, model, Credential(name="k", token=key))
    async with http.stream(call.method, call.url, headers=call.headers, content=call.body) as response:
        if response.status >= 400:
            raise ADAPTER.error(response.status, response.headers, await response.read())
        return [item async for item in ADAPTER.events(response, chat.stream)]


def _text(outputs: list[Output]) -> str:
    return "".join(o.text for o in outputs if isinstance(o, Delta))


async def test_mock_text_whole_and_streamed(mock: HttpClient) -> None:
    whole = await _call(mock, _chat(USER))
    assert _text(whole) == "Mock answer to: hello there"
    assert isinstance(whole[-2], Usage)
    assert whole[-1] == Done(seq=0, finish_reason="stop")
    streamed = await _call(mock, _chat(USER, stream=True))
    assert len([o for o in streamed if isinstance(o, Delta)]) == 3
    assert _text(streamed) == "Mock answer to: hello there"
    assert [type(o) for o in streamed[-2:]] == [Usage, Done]


async def test_mock_tool_call_round_trip_keeps_the_signature(mock: HttpClient) -> None:
    outputs = await _call(mock, _chat(USER, tools=[WEATHER], stream=True))
    calls = [c for o in outputs if isinstance(o, Delta) for c in o.tool_calls]
    assert [(c.name, c.arguments, c.signature) for c in calls] == [
        ("get_weather", '{"city":"mock"}', SIGNATURE)
    ]
    assert outputs[-1] == Done(seq=0, finish_reason="tool_calls")
    call = calls[0]
    assert call.id is not None
    assert call.name is not None
    made = ToolCall(id=call.id, name=call.name, arguments=call.arguments, signature=call.signature)
    assistant = {"role": "assistant", "tool_calls": [msgspec.to_builtins(made)]}
    result = {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    answer = _chat([*USER, assistant, result], tools=[WEATHER])
    sent = _body(answer)["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == SIGNATURE
    assert _text(await _call(mock, answer)) == "Tool said: sunny"


async def test_mock_parallel_calls_are_indexed_across_the_answer(mock: HttpClient) -> None:
    tools = [WEATHER, {**WEATHER, "name": "get_time"}]
    outputs = await _call(mock, _chat(USER, tools=tools, stream=True), model="parallel-tools")
    calls = [c for o in outputs if isinstance(o, Delta) for c in o.tool_calls]
    assert [(c.index, c.name) for c in calls] == [(0, "get_weather"), (1, "get_time")]
    assert len({c.id for c in calls}) == 2


async def test_mock_images_reach_the_model(mock: HttpClient) -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "url": PNG},
        {"type": "image_url", "url": "https://example.com/cat.jpeg"},
    ]
    outputs = await _call(mock, _chat([{"role": "user", "content": content}]))
    assert _text(outputs) == "Mock answer to: look [images: image/png, https://example.com/cat.jpeg]"


async def test_mock_length_finish(mock: HttpClient) -> None:
    outputs = await _call(mock, _chat(USER, max_tokens=2, stream=True))
    assert outputs[-1] == Done(seq=0, finish_reason="length")


async def test_mock_errors_map_to_upstream_errors(mock: HttpClient) -> None:
    with pytest.raises(UpstreamStatus) as limited:
        await _call(mock, _chat(USER), key="AIza-error-429")
    assert (limited.value.status, limited.value.code, limited.value.retry_after) == (
        429,
        "RESOURCE_EXHAUSTED",
        3.0,
    )
    with pytest.raises(UpstreamStatus) as refused:
        await _call(mock, _chat(USER), key="AIza-error-401")
    assert (refused.value.upstream_status, refused.value.code) == (401, "API_KEY_INVALID")
    with pytest.raises(UpstreamStatus) as failed:
        await _call(mock, _chat(USER), model="error-500")
    assert (failed.value.status, failed.value.code, failed.value.retryable) == (502, "INTERNAL", True)


async def test_mock_midstream_error_ends_the_stream_with_an_error(mock: HttpClient) -> None:
    with pytest.raises(UpstreamError) as raised:
        await _call(mock, _chat(USER, stream=True), model="midstream-error")
    assert raised.value.code == "UNAVAILABLE"
    assert "overloaded" in raised.value.message


async def test_probe_lists_models_with_the_key(mock: HttpClient) -> None:
    probe = ADAPTER.probe(_provider(), KEY)
    assert (probe.method, probe.url) == ("GET", "http://mock/v1beta/models")
    status, _, body = await mock.fetch(probe.method, probe.url, headers=probe.headers)
    assert status == 200
    assert "models/gemini-2.5-flash" in body.decode()
    keyless = ADAPTER.probe(_provider(), Credential(name="none", token=""))
    status, _, _ = await mock.fetch(keyless.method, keyless.url, headers=keyless.headers)
    assert status == 403
