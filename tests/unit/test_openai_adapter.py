"""The OpenAI-compatible adapter: request building, stream and body parsing, errors;
driven through the real HTTP client with an httpx2 mock transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import msgspec
import pytest

from llmbus.config import Config, ProviderConfig
from llmbus.proto import ChatRequest, Delta, Done, Message, NamedToolChoice, Tool, ToolCallDelta, Usage
from llmbus.providers import configured_providers
from llmbus.providers.adapters import Credential, OpenAICompatible
from llmbus.providers.adapters.base import Output
from llmbus.providers.errors import UpstreamError, UpstreamProtocolError, UpstreamStatus
from llmbus.providers.http import HttpClient
from llmbus.providers.runtime import chat_url

PROVIDER = configured_providers(
    Config(providers={"openai": ProviderConfig(endpoint="http://up", api_keys=["sk-up"], models=["m"])})
)["openai"]
CHAT = ChatRequest(model="m", messages=[Message(role="user", content="hi")], stream=True)


def _sse(*chunks: dict[str, object] | str) -> bytes:
    out = b""
    for chunk in chunks:
        data = chunk if isinstance(chunk, str) else json.dumps(chunk)
        out += f"data: {data}\n\n".encode()
    return out


def _chunk(
    delta: dict[str, object], finish: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        body["choices"] = []
        body["usage"] = usage
    return body


async def _run(body: bytes, *, stream: bool = True, status: int = 200, pieces: int = 0) -> list[Output]:
    async def stream_body() -> AsyncIterator[bytes]:
        step = pieces or len(body) or 1
        for i in range(0, len(body), step):
            yield body[i : i + step]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=stream_body())

    client = HttpClient(transport=httpx2.MockTransport(handler))
    adapter = OpenAICompatible()
    try:
        async with client.stream(
            "POST", "http://up/v1/chat/completions", headers={}, content=b"{}"
        ) as response:
            if response.status >= 400:
                raise adapter.error(response.status, response.headers, await response.read())
            return [item async for item in adapter.events(response, stream)]
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("https://api.openai.com", "https://api.openai.com/v1/chat/completions"),
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1/chat/completions"),
        ("https://api.groq.com/openai/", "https://api.groq.com/openai/v1/chat/completions"),
        ("https://open.bigmodel.cn/api/paas/v4", "https://open.bigmodel.cn/api/paas/v4/chat/completions"),
        ("https://api.novita.ai/v3/openai", "https://api.novita.ai/v3/openai/chat/completions"),
        ("http://127.0.0.1:8319", "http://127.0.0.1:8319/v1/chat/completions"),
    ],
)
def test_chat_url_appends_v1_only_when_the_endpoint_has_no_version(endpoint: str, url: str) -> None:
    assert chat_url(endpoint) == url


def test_chat_url_follows_the_provider_path_for_unversioned_gateways() -> None:
    assert chat_url("https://api.kilo.ai/api/openrouter", "/chat/completions") == (
        "https://api.kilo.ai/api/openrouter/chat/completions"
    )


def test_build_sends_the_upstream_model_and_asks_for_usage_on_streams() -> None:
    chat = ChatRequest(
        model="client-name",
        messages=[Message(role="user", content="hi")],
        stream=True,
        tools=[Tool(name="f", parameters={"type": "object"})],
        tool_choice=NamedToolChoice(name="f"),
        temperature=0.2,
    )
    call = OpenAICompatible().build(PROVIDER, chat, "upstream-name", Credential(name="k", token="sk-up"))
    sent = json.loads(call.body)
    assert call.url == "http://up/v1/chat/completions"
    assert call.headers["Authorization"] == "Bearer sk-up"
    assert sent["model"] == "upstream-name"
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert sent["tools"][0]["function"]["name"] == "f"
    assert "max_tokens" not in sent
    assert sent["temperature"] == 0.2


@pytest.mark.parametrize("pieces", [0, 1, 7])
async def test_stream_yields_deltas_usage_and_done_last(pieces: int) -> None:
    body = _sse(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}, finish="stop"),
        _chunk({}, usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
        "[DONE]",
    )
    out = await _run(body, pieces=pieces)
    assert out == [
        Delta(seq=0, text="Hel"),
        Delta(seq=0, text="lo"),
        Usage(seq=0, prompt_tokens=3, completion_tokens=2),
        Done(seq=0, finish_reason="stop"),
    ]


async def test_stream_tool_call_fragments_keep_their_index() -> None:
    body = _sse(
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}, finish="tool_calls"),
        "[DONE]",
    )
    out = await _run(body)
    assert out[0] == Delta(seq=0, tool_calls=[ToolCallDelta(index=0, id="call_1", name="f", arguments="")])
    assert "".join(d.tool_calls[0].arguments for d in out if isinstance(d, Delta)) == '{"a":1}'
    assert out[-1] == Done(seq=0, finish_reason="tool_calls")


async def test_reasoning_fields_of_every_dialect_become_reasoning() -> None:
    body = _sse(
        _chunk({"reasoning_content": "a"}),
        _chunk({"reasoning": "b"}),
        _chunk({"reasoning_text": "c"}, finish="stop"),
        "[DONE]",
    )
    assert [d.reasoning for d in await _run(body) if isinstance(d, Delta)] == ["a", "b", "c"]


async def test_malformed_stream_data_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        await _run(_sse(_chunk({"content": "a"}), "{not json"))


async def test_stream_that_ends_early_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match="ended before"):
        await _run(_sse(_chunk({"content": "a"})))


async def test_error_object_mid_stream_carries_the_upstream_message() -> None:
    with pytest.raises(UpstreamError, match="exploded"):
        await _run(_sse(_chunk({"content": "a"}), {"error": {"message": "exploded", "type": "server_error"}}))


async def test_whole_response_becomes_delta_usage_done() -> None:
    body = msgspec.json.encode(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hey"}, "finish_reason": "length"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
    out = await _run(body, stream=False)
    assert out == [
        Delta(seq=0, text="hey"),
        Usage(seq=0, prompt_tokens=1, completion_tokens=1),
        Done(seq=0, finish_reason="length"),
    ]


@pytest.mark.parametrize(
    ("status", "client_status", "retryable"),
    [(429, 429, True), (500, 502, True), (503, 502, True), (400, 400, False), (401, 401, False)],
)
async def test_error_status_maps_and_keeps_the_upstream_message(
    status: int, client_status: int, retryable: bool
) -> None:
    body = json.dumps(
        {"error": {"message": "upstream says no", "type": "x", "param": None, "code": "c"}}
    ).encode()
    with pytest.raises(UpstreamStatus) as caught:
        await _run(body, status=status)
    assert caught.value.status == client_status
    assert caught.value.retryable is retryable
    assert caught.value.message == "upstream says no"


def test_error_body_that_is_not_json_is_quoted() -> None:
    error = OpenAICompatible().error(502, {"retry-after": "7"}, b"<html>bad gateway</html>")
    assert error.message == "<html>bad gateway</html>"
    assert error.retry_after == 7.0
