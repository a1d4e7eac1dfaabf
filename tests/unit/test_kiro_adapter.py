"""The Kiro adapter: Kiro's validation rules applied before sending, its event-stream
read back, and the adapter with its token source against the mock Kiro in-process."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest

from llmbus.config import Config, CredentialEntry, ProviderConfig
from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings
from llmbus.proto import ChatRequest, Delta, Done, Usage
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.adapters import Credential, Output
from llmbus.providers.adapters.kiro import MAX_DESCRIPTION, Kiro
from llmbus.providers.adapters.kiro_stream import estimate_tokens
from llmbus.providers.credentials.kiro import KiroTokens
from llmbus.providers.errors import Unsupported, UpstreamError, UpstreamProtocolError
from llmbus.providers.eventstream import encode_frame
from llmbus.providers.http import HttpClient

KIRO = Kiro()
MODEL = "claude-sonnet-4.5"
ARN = "arn:aws:codewhisperer:eu-central-1:123456789012:profile/X"
CREDENTIAL = Credential(name="k", token="aoa-unit", profile_arn=ARN, region="eu-central-1")
WEATHER = {
    "name": "get_weather",
    "description": "Weather.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def provider(**fields: Any) -> ConfiguredProvider:
    config = Config(providers={"kiro": ProviderConfig(token_file="unused.json", **fields)})
    return configured_providers(config)["kiro"]


def chat(messages: list[dict[str, Any]], **fields: Any) -> ChatRequest:
    return msgspec.convert({"model": "claude-sonnet-4-5", "messages": messages, **fields}, ChatRequest)


def build(messages: list[dict[str, Any]], target: ConfiguredProvider | None = None, **fields: Any) -> Any:
    call = KIRO.build(target or provider(), chat(messages, **fields), MODEL, CREDENTIAL)
    return json.loads(call.body)


def state(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    value: dict[str, Any] = build(messages, **fields)["conversationState"]
    return value


def current(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    value: dict[str, Any] = state(messages, **fields)["currentMessage"]["userInputMessage"]
    return value


def roles(conversation: dict[str, Any]) -> list[str]:
    return [next(iter(entry)) for entry in conversation.get("history", [])]


# The request.


def test_system_messages_prefix_the_first_user_turn() -> None:
    messages = [
        {"role": "system", "content": "Rule one."},
        {"role": "developer", "content": "Rule two."},
        {"role": "user", "content": "Hi"},
    ]
    assert current(messages)["content"] == "Rule one.\n\nRule two.\n\nHi"


def test_history_alternates_from_a_user_turn_to_an_assistant_turn() -> None:
    conversation = state(
        [
            {"role": "assistant", "content": "Welcome."},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": "d"},
        ]
    )
    assert roles(conversation) == ["userInputMessage", "assistantResponseMessage"] * 2
    history = conversation["history"]
    assert history[0]["userInputMessage"]["content"] == "Continue"
    assert history[2]["userInputMessage"]["content"] == "a\n\nb"
    assert history[3]["assistantResponseMessage"]["content"] == "c\n\nd"
    assert conversation["currentMessage"]["userInputMessage"]["content"] == "Continue"


def test_no_content_is_ever_empty() -> None:
    conversation = state(
        [
            {"role": "user", "content": ""},
            {"role": "assistant", "content": None},
            {"role": "user", "content": [{"type": "text", "text": ""}]},
        ]
    )
    assert conversation["history"][0]["userInputMessage"]["content"] == "Continue"
    assert conversation["history"][1]["assistantResponseMessage"]["content"] == "OK"
    assert conversation["currentMessage"]["userInputMessage"]["content"] == "Continue"


def test_tool_calls_without_results_are_dropped_and_results_are_answered_once() -> None:
    conversation = state(
        [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "a", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    {"id": "b", "name": "get_weather", "arguments": "{}"},
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "cold"},
            {"role": "tool", "tool_call_id": "a", "content": "cold again"},
            {"role": "tool", "tool_call_id": "zz", "content": "stray", "is_error": True},
        ],
        tools=[WEATHER],
    )
    uses = conversation["history"][1]["assistantResponseMessage"]["toolUses"]
    assert uses == [{"toolUseId": "a", "name": "get_weather", "input": {"city": "Oslo"}}]
    message = conversation["currentMessage"]["userInputMessage"]
    assert message["userInputMessageContext"]["toolResults"] == [
        {"toolUseId": "a", "status": "success", "content": [{"text": "cold"}]}
    ]
    assert message["content"] == "[tool result zz]\nstray"


def test_a_failed_tool_reports_error_status() -> None:
    message = current(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"id": "a", "name": "get_weather", "arguments": "{}"}]},
            {"role": "tool", "tool_call_id": "a", "content": "boom", "is_error": True},
        ],
        tools=[WEATHER],
    )
    assert message["userInputMessageContext"]["toolResults"][0]["status"] == "error"


def test_tools_go_on_the_current_message_only_and_history_tools_are_always_defined() -> None:
    conversation = state(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"id": "a", "name": "search", "arguments": "{}"}]},
            {"role": "tool", "tool_call_id": "a", "content": "done"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "more"},
        ],
        tools=[WEATHER],
    )
    assert all(
        "userInputMessageContext" not in e.get("userInputMessage", {})
        or "tools" not in e["userInputMessage"]["userInputMessageContext"]
        for e in conversation["history"]
    )
    tools = conversation["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"]
    names = [t["toolSpecification"]["name"] for t in tools]
    assert names == ["get_weather", "search"]
    assert tools[1]["toolSpecification"]["inputSchema"]["json"] == {
        "type": "object",
        "properties": {},
        "required": [],
    }


def test_input_schemas_carry_type_properties_and_required_and_descriptions_are_cut() -> None:
    long_tool = {
        "name": "t",
        "description": "x" * (MAX_DESCRIPTION + 50),
        "parameters": {"properties": {"a": {}}},
    }
    spec = current([{"role": "user", "content": "hi"}], tools=[long_tool])["userInputMessageContext"][
        "tools"
    ][0]["toolSpecification"]
    assert spec["inputSchema"]["json"] == {"properties": {"a": {}}, "type": "object", "required": []}
    assert len(spec["description"]) == MAX_DESCRIPTION


def test_a_tool_name_over_64_characters_is_refused() -> None:
    with pytest.raises(Unsupported, match="at most 64"):
        build([{"role": "user", "content": "hi"}], tools=[{"name": "n" * 65}])


@pytest.mark.parametrize("choice", ["required", {"name": "get_weather"}])
def test_forcing_a_tool_is_refused(choice: Any) -> None:
    with pytest.raises(Unsupported, match="tool_choice"):
        build([{"role": "user", "content": "hi"}], tools=[WEATHER], tool_choice=choice)


def test_tool_choice_none_sends_no_tools() -> None:
    assert "userInputMessageContext" not in current(
        [{"role": "user", "content": "hi"}], tools=[WEATHER], tool_choice="none"
    )


def test_images_are_sent_as_bytes_and_links_are_refused() -> None:
    jpeg = {"type": "image_url", "url": "data:image/jpg;base64,/9j/4AAQ"}
    message = current([{"role": "user", "content": [{"type": "text", "text": "see"}, jpeg]}])
    assert message["images"] == [{"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}]
    with pytest.raises(Unsupported, match="bytes only"):
        build([{"role": "user", "content": [{"type": "image_url", "url": "https://x.test/a.png"}]}])
    with pytest.raises(Unsupported, match="not image/bmp"):
        build([{"role": "user", "content": [{"type": "image_url", "url": "data:image/bmp;base64,Qk0="}]}])


def test_tool_call_arguments_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(Unsupported, match="JSON object"):
        build(
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "tool_calls": [{"id": "a", "name": "t", "arguments": "[1]"}]},
                {"role": "tool", "tool_call_id": "a", "content": "x"},
            ]
        )


def test_thinking_budget_asks_for_thinking_in_front_of_the_system_prompt() -> None:
    content = current(
        [{"role": "system", "content": "Sys."}, {"role": "user", "content": "Q"}], thinking_budget=1024
    )["content"]
    assert content == (
        "<thinking_mode>enabled</thinking_mode><max_thinking_length>1024</max_thinking_length>\nSys.\n\nQ"
    )


def test_turns_of_one_conversation_share_its_id_but_not_the_continuation() -> None:
    first = state([{"role": "user", "content": "Hi"}])
    second = state(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ]
    )
    other = state([{"role": "user", "content": "Other"}])
    assert first["conversationId"] == second["conversationId"] != other["conversationId"]
    assert first["agentContinuationId"] != second["agentContinuationId"]


def test_the_default_endpoint_follows_the_credentials_region_and_a_configured_one_is_kept() -> None:
    call = KIRO.build(provider(), chat([{"role": "user", "content": "hi"}]), MODEL, CREDENTIAL)
    assert call.url == "https://q.eu-central-1.amazonaws.com/generateAssistantResponse"
    custom = KIRO.build(
        provider(endpoint="https://proxy.test/kiro/"),
        chat([{"role": "user", "content": "hi"}]),
        MODEL,
        CREDENTIAL,
    )
    assert custom.url == "https://proxy.test/kiro/generateAssistantResponse"
    assert call.headers["x-amzn-kiro-agent-mode"] == "vibe"
    assert "KiroIDE-" in call.headers["x-amz-user-agent"]


def test_the_profile_arn_is_sent_unless_the_provider_omits_it() -> None:
    assert build([{"role": "user", "content": "hi"}])["profileArn"] == ARN
    omitting = provider(headers={"X-Llmbus-Kiro-Profile-Arn": "omit"})
    call = KIRO.build(omitting, chat([{"role": "user", "content": "hi"}]), MODEL, CREDENTIAL)
    assert "profileArn" not in json.loads(call.body)
    assert all(k.lower() != "x-llmbus-kiro-profile-arn" for k in call.headers)


def test_probe_lists_available_models_for_the_profile() -> None:
    probe = KIRO.probe(provider(), CREDENTIAL)
    assert probe.method == "GET"
    assert probe.url.startswith("https://q.eu-central-1.amazonaws.com/ListAvailableModels?origin=AI_EDITOR")
    assert "profileArn=arn%3Aaws%3Acodewhisperer%3Aeu-central-1" in probe.url


# The answer.


def event(event_type: str, payload: Any) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, json.dumps(payload).encode())


async def read(body: bytes, step: int = 0) -> list[Output]:
    async def chunks() -> AsyncIterator[bytes]:
        size = step or len(body) or 1
        for i in range(0, len(body), size):
            yield body[i : i + size]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=chunks())

    client = HttpClient(transport=httpx2.MockTransport(handler))
    try:
        async with client.stream("POST", "http://kiro.test/", headers={}, content=b"{}") as response:
            return [item async for item in KIRO.events(response, True)]
    finally:
        await client.aclose()


def joined(outputs: list[Output]) -> tuple[str, str]:
    deltas = [o for o in outputs if isinstance(o, Delta)]
    return "".join(d.text for d in deltas), "".join(d.reasoning for d in deltas)


@pytest.mark.parametrize("cut", range(1, 40))
async def test_thinking_tags_are_split_whatever_the_chunk_boundary(cut: int) -> None:
    text = "<thinking>Let me see.</thinking>\n\nIt is <b>42</b>."
    body = event("assistantResponseEvent", {"content": text[:cut]}) + event(
        "assistantResponseEvent", {"content": text[cut:]}
    )
    assert joined(await read(body)) == ("It is <b>42</b>.", "Let me see.")


async def test_thinking_tags_after_the_start_are_text() -> None:
    body = event("assistantResponseEvent", {"content": "Use <thinking>tags</thinking> like this."})
    assert joined(await read(body)) == ("Use <thinking>tags</thinking> like this.", "")


async def test_reasoning_content_events_are_reasoning_with_their_signature() -> None:
    body = event("reasoningContentEvent", {"text": "hmm", "signature": "sig"}) + event(
        "assistantResponseEvent", {"content": "Yes."}
    )
    outputs = await read(body)
    assert outputs[0] == Delta(seq=0, reasoning="hmm", reasoning_signature="sig")


async def test_wrapped_payloads_and_whole_object_tool_input_are_accepted() -> None:
    body = event("assistantResponseEvent", {"assistantResponseEvent": {"content": "Hi"}}) + event(
        "toolUseEvent", {"toolUseId": "t", "name": "f", "input": {"a": 1}, "stop": True}
    )
    outputs = await read(body)
    assert joined(outputs)[0] == "Hi"
    calls = [c for o in outputs if isinstance(o, Delta) for c in o.tool_calls]
    assert [(c.index, c.id, c.name, c.arguments) for c in calls] == [(0, "t", "f", '{"a": 1}')]
    assert outputs[-1] == Done(seq=0, finish_reason="tool_calls")


async def test_a_tool_call_without_input_gets_empty_arguments() -> None:
    outputs = await read(event("toolUseEvent", {"toolUseId": "t", "name": "f"}))
    calls = [c for o in outputs if isinstance(o, Delta) for c in o.tool_calls]
    assert "".join(c.arguments for c in calls) == "{}"


async def test_metadata_token_usage_is_used_when_kiro_sends_it() -> None:
    usage = {
        "uncachedInputTokens": 10,
        "cacheReadInputTokens": 90,
        "cacheWriteInputTokens": 5,
        "outputTokens": 7,
    }
    body = event("assistantResponseEvent", {"content": "Hi"}) + event("metadataEvent", {"tokenUsage": usage})
    outputs = await read(body + event("contextUsageEvent", {"contextUsagePercentage": 50}))
    assert (
        Usage(seq=0, prompt_tokens=105, completion_tokens=7, cached_tokens=90, cache_creation_tokens=5)
        in outputs
    )


async def test_unknown_events_are_ignored() -> None:
    body = event("followupPromptEvent", {"followupPrompt": {"content": "x"}}) + event(
        "assistantResponseEvent", {"content": "Hi"}
    )
    assert joined(await read(body)) == ("Hi", "")


async def test_an_error_message_frame_is_an_upstream_error_with_its_code() -> None:
    frame = encode_frame(
        {":message-type": "error", ":error-code": "AccessDeniedException", ":error-message": "no"}
    )
    with pytest.raises(UpstreamError) as raised:
        await read(event("assistantResponseEvent", {"content": "a"}) + frame)
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        403,
        "AccessDeniedException",
        "no",
    )


async def test_an_unknown_in_band_exception_is_a_502() -> None:
    frame = encode_frame(
        {":message-type": "exception", ":exception-type": "WeirdException"}, b'{"message":"odd"}'
    )
    with pytest.raises(UpstreamError) as raised:
        await read(frame)
    assert raised.value.status == 502


async def test_an_empty_or_cut_stream_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        await read(b"")
    with pytest.raises(UpstreamProtocolError):
        await read(event("assistantResponseEvent", {"content": "Hi"})[:-2])


def test_token_estimate_counts_ascii_by_four_and_other_characters_one_each() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("日本語") == 3


# Against the mock Kiro.


@pytest.fixture
async def mock() -> AsyncIterator[HttpClient]:
    client = HttpClient(transport=httpx2.ASGITransport(app=create_app(MockSettings(chunks=3))))
    try:
        yield client
    finally:
        await client.aclose()


def token_file(tmp_path: Path, access: str) -> CredentialEntry:
    path = tmp_path / "kiro-auth-token.json"
    data = {
        "accessToken": access,
        "refreshToken": "aor-unit",
        "expiresAt": "2020-01-01T00:00:00Z",
        "authMethod": "social",
        "provider": "Github",
        "profileArn": "arn:aws:codewhisperer:us-east-1:000000000000:profile/MOCK",
    }
    path.write_text(json.dumps(data))
    return CredentialEntry(name="kiro-file", token_file=str(path))


def saved_token(entry: CredentialEntry) -> str:
    return str(json.loads(Path(entry.token_file).read_text())["accessToken"])


async def ask(
    http: HttpClient, messages: list[dict[str, Any]], credential: Credential, **fields: Any
) -> list[Output]:
    target = provider(endpoint="http://mock")
    request = chat(messages, **fields)
    call = KIRO.build(target, request, MODEL, credential)
    async with http.stream(call.method, call.url, headers=call.headers, content=call.body) as response:
        if response.status >= 400:
            raise KIRO.error(response.status, response.headers, await response.read())
        return [item async for item in KIRO.events(response, request.stream)]


@pytest.mark.parametrize("stream", [False, True])
async def test_text_through_the_mock(mock: HttpClient, stream: bool) -> None:
    outputs = await ask(
        mock,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        CREDENTIAL,
        stream=stream,
    )
    # Kiro has no system field: the system prompt leads the first user turn, and the
    # mock echoes that turn whole.
    assert joined(outputs)[0] == "Mock answer to: Be brief.\n\nHello there"
    usage = next(o for o in outputs if isinstance(o, Usage))
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert outputs[-1] == Done(seq=0, finish_reason="stop")


async def test_a_tool_round_trip_through_the_mock(mock: HttpClient) -> None:
    ask_weather = [{"role": "user", "content": "Weather in Oslo?"}]
    outputs = await ask(mock, ask_weather, CREDENTIAL, tools=[WEATHER], stream=True)
    calls = [c for o in outputs if isinstance(o, Delta) for c in o.tool_calls]
    call_id, name = calls[0].id, calls[0].name
    arguments = "".join(c.arguments for c in calls)
    assert (name, json.loads(arguments)) == ("get_weather", {"city": "mock"})
    assert outputs[-1] == Done(seq=0, finish_reason="tool_calls")

    followed = await ask(
        mock,
        [
            *ask_weather,
            {"role": "assistant", "tool_calls": [{"id": call_id, "name": name, "arguments": arguments}]},
            {"role": "tool", "tool_call_id": call_id, "content": "minus five"},
        ],
        CREDENTIAL,
        tools=[WEATHER],
    )
    assert joined(followed)[0] == "Tool said: minus five"


async def test_a_messy_history_passes_the_mocks_validation(mock: HttpClient) -> None:
    outputs = await ask(
        mock,
        [
            {"role": "assistant", "content": "Welcome."},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "tool_calls": [{"id": "x", "name": "search", "arguments": "{}"}]},
            {"role": "assistant", "content": "never mind"},
        ],
        CREDENTIAL,
    )
    assert outputs[-1] == Done(seq=0, finish_reason="stop")


async def test_an_expired_token_is_refreshed_at_the_mock_and_then_accepted(
    mock: HttpClient, tmp_path: Path
) -> None:
    entry = token_file(tmp_path, "aoa-expired-by-now")
    target = provider(endpoint="http://mock", auth_endpoint="http://mock")
    with pytest.raises(UpstreamError) as refused:
        await ask(mock, [{"role": "user", "content": "hi"}], Credential(name="k", token="aoa-expired-by-now"))
    assert refused.value.status == 403

    credential = await KiroTokens(mock).get(target, entry)
    assert credential.token.startswith("aoa-mock-")
    assert saved_token(entry) == credential.token
    outputs = await ask(mock, [{"role": "user", "content": "hi"}], credential)
    assert joined(outputs)[0] == "Mock answer to: hi"


def test_stop_sequences_are_refused_because_dropping_them_would_change_the_answer() -> None:
    with pytest.raises(Unsupported) as raised:
        build([{"role": "user", "content": "count"}], stop=["5"])
    assert raised.value.status == 400
    assert "stop" in raised.value.message


def test_sampling_settings_kiro_has_no_field_for_are_left_out_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = chat([{"role": "user", "content": "hi"}], temperature=0.3, max_tokens=77)
    with caplog.at_level(logging.INFO, logger="llmbus.providers.quirks"):
        # A model name of its own: each drop is said once per provider, model and name.
        sent = json.loads(KIRO.build(provider(), request, "claude-sampling-log", CREDENTIAL).body)
    assert "temperature" not in json.dumps(sent)
    assert "77" not in json.dumps(sent)
    assert "`temperature`" in caplog.text
    assert "`max_tokens`" in caplog.text
