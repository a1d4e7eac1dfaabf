"""The OpenAI-compatible adapter: request building, stream and body parsing, errors;
driven through the real HTTP client with an httpx2 mock transport."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import msgspec
import pytest

from llmbus.config import Config, ProviderConfig
from llmbus.proto import ChatRequest, Delta, Done, Message, NamedToolChoice, Tool, ToolCallDelta, Usage
from llmbus.providers import BUILTIN, ConfiguredProvider, configured_providers
from llmbus.providers.adapters import Credential, OpenAICompatible
from llmbus.providers.adapters.base import Output
from llmbus.providers.adapters.openai import UpstreamChatRequest
from llmbus.providers.errors import Unsupported, UpstreamError, UpstreamProtocolError, UpstreamStatus
from llmbus.providers.http import HttpClient
from llmbus.providers.quirks import ParamPolicy
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
        Delta(seq=0, finish_reason="stop"),  # said as it comes, before the usage chunk
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
    fragments = [c.arguments for d in out if isinstance(d, Delta) for c in d.tool_calls]
    assert "".join(fragments) == '{"a":1}'
    assert out[-1] == Done(seq=0, finish_reason="tool_calls")


async def test_reasoning_fields_of_every_dialect_become_reasoning() -> None:
    body = _sse(
        _chunk({"reasoning_content": "a"}),
        _chunk({"reasoning": "b"}),
        _chunk({"reasoning_text": "c"}, finish="stop"),
        "[DONE]",
    )
    assert [d.reasoning for d in await _run(body) if isinstance(d, Delta) and d.reasoning] == ["a", "b", "c"]


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


# --- parameter policies: what each provider takes of OpenAI's request -------------------


def _provider(name: str) -> ConfiguredProvider:
    config = Config(providers={name: ProviderConfig(endpoint="http://up/v1", api_keys=["k"], models=["m"])})
    return configured_providers(config)[name]


def _sent(provider: str, model: str = "m", **fields: Any) -> dict[str, Any]:
    chat = ChatRequest(model="m", messages=[Message(role="user", content="hi")], **fields)
    call = OpenAICompatible().build(_provider(provider), chat, model, Credential(name="k", token="k"))
    body: dict[str, Any] = json.loads(call.body)
    return body


def _refused(provider: str, model: str = "m", **fields: Any) -> Unsupported:
    with pytest.raises(Unsupported) as caught:
        _sent(provider, model, **fields)
    assert caught.value.status == 400
    return caught.value


def test_every_builtin_policy_names_only_fields_of_the_request_body() -> None:
    fields = set(UpstreamChatRequest.__struct_fields__)

    def names(policy: ParamPolicy) -> set[str]:
        out = {*policy.unsupported, *policy.ignored, *(n for pair in policy.renamed for n in pair)}
        for rule in policy.models:
            out |= names(rule.params)
        return out

    for spec in BUILTIN.values():
        assert names(spec.params) <= fields, spec.name


def test_mistral_gets_random_seed_no_user_and_no_stream_options(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="llmbus.providers.quirks"):
        sent = _sent("mistral", "mistral-small-latest", seed=7, user="u-1", stream=True)
    assert sent["random_seed"] == 7
    assert "seed" not in sent
    assert "user" not in sent
    assert "stream_options" not in sent
    assert "`user`" in caplog.text, "a dropped parameter is said in the log"


def test_mistral_refuses_a_thinking_budget_it_cannot_express() -> None:
    error = _refused("mistral", thinking_budget=2048)
    assert error.param == "thinking_budget"
    assert "mistral" in error.message


def test_groq_gets_messages_without_names() -> None:
    chat = ChatRequest(model="m", messages=[Message(role="user", content="hi", name="ann")])
    call = OpenAICompatible().build(_provider("groq"), chat, "m", Credential(name="k", token="k"))
    assert json.loads(call.body)["messages"] == [{"role": "user", "content": "hi"}]


def test_openai_has_no_top_k_and_says_so() -> None:
    error = _refused("openai", "gpt-4o", top_k=40)
    assert error.param == "top_k"
    assert "`top_k`" in error.message


@pytest.mark.parametrize("provider", ["openrouter", "together", "fireworks", "novita", "siliconflow"])
def test_hosts_of_open_models_get_top_k(provider: str) -> None:
    assert _sent(provider, top_k=40)["top_k"] == 40


def test_openai_reasoning_models_get_max_completion_tokens_and_refuse_temperature() -> None:
    sent = _sent("openai", "o3-mini", max_tokens=100)
    assert sent["max_completion_tokens"] == 100
    assert "max_tokens" not in sent
    assert _refused("openai", "gpt-5", temperature=0.2).param == "temperature"


def test_openai_chat_models_keep_max_tokens_and_refuse_reasoning_effort() -> None:
    assert _sent("openai", "gpt-5-chat-latest", max_tokens=100, temperature=0.2)["max_tokens"] == 100
    assert _refused("openai", "gpt-4o", reasoning_effort="low").param == "reasoning_effort"


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (2048, "medium"), (4096, "high")])
def test_a_thinking_budget_becomes_a_reasoning_effort_where_that_is_taken(budget: int, effort: str) -> None:
    assert _sent("openai", "o3", thinking_budget=budget)["reasoning_effort"] == effort


def test_an_explicit_reasoning_effort_wins_over_a_thinking_budget() -> None:
    assert _sent("openai", "o3", thinking_budget=8000, reasoning_effort="low")["reasoning_effort"] == "low"


def test_deepseek_reasoner_leaves_out_sampling_it_ignores_and_chat_keeps_it() -> None:
    reasoner = _sent("deepseek", "deepseek-reasoner", temperature=0.3, top_p=0.9, presence_penalty=0.5)
    assert not {"temperature", "top_p", "presence_penalty"} & reasoner.keys()
    assert _sent("deepseek", "deepseek-chat", temperature=0.3)["temperature"] == 0.3


def test_minimax_refuses_a_temperature_above_one_and_leaves_out_penalties() -> None:
    assert "up to 1" in _refused("minimax", temperature=1.5).message
    sent = _sent("minimax", temperature=0.7, frequency_penalty=0.5)
    assert sent["temperature"] == 0.7
    assert "frequency_penalty" not in sent


def test_wire_request_without_a_policy_still_refuses_top_k() -> None:
    chat = ChatRequest(model="m", messages=[Message(role="user", content="hi")], top_k=5)
    with pytest.raises(Unsupported):
        OpenAICompatible().wire_request(chat, "m")
