"""The Copilot adapter: its headers and URL, then the adapter and its token source
against the mock upstream (GitHub's token trade and Copilot's chat API), in-process
through the real HttpClient over an ASGI transport."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx2
import msgspec
import pytest

from llmbus.config import Config, ProviderConfig
from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings
from llmbus.proto import ChatRequest, Delta, Done, ImagePart, Message, TextPart, ToolCall, Usage
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.adapters import Credential, Output, adapter_for
from llmbus.providers.adapters.copilot import Copilot
from llmbus.providers.errors import UpstreamError
from llmbus.providers.http import HttpClient

ADAPTER = Copilot()
TOKEN = Credential(name="gh", token="tid=abc;exp=1:mac", endpoint="https://api.business.githubcopilot.com/")
HELLO = [Message(role="user", content="hello there")]


def _provider(**fields: object) -> ConfiguredProvider:
    entry = msgspec.convert({"github_token": "gho_unit", **fields}, ProviderConfig)
    return configured_providers(Config(providers={"copilot": entry}))["copilot"]


def _headers(chat: ChatRequest, provider: ConfiguredProvider | None = None) -> dict[str, str]:
    call = ADAPTER.build(provider or _provider(), chat, "gpt-4.1", TOKEN)
    return {name.lower(): value for name, value in call.headers.items()}


def test_the_registry_serves_the_copilot_family_with_this_adapter() -> None:
    assert isinstance(adapter_for("copilot"), Copilot)


def test_request_goes_to_the_api_host_the_token_names() -> None:
    call = ADAPTER.build(_provider(), ChatRequest(model="m", messages=HELLO), "gpt-4.1", TOKEN)
    assert call.url == "https://api.business.githubcopilot.com/chat/completions"
    assert call.method == "POST"


def test_without_an_endpoint_in_the_token_the_providers_endpoint_is_used() -> None:
    credential = msgspec.structs.replace(TOKEN, endpoint=None)
    call = ADAPTER.build(_provider(), ChatRequest(model="m", messages=HELLO), "gpt-4.1", credential)
    assert call.url == "https://api.githubcopilot.com/chat/completions"


def test_headers_carry_the_copilot_token_and_the_editor_identity() -> None:
    headers = _headers(ChatRequest(model="m", messages=HELLO, stream=True))
    assert headers["authorization"] == f"Bearer {TOKEN.token}"
    assert headers["copilot-integration-id"] == "vscode-chat"
    assert headers["openai-intent"] == "conversation-panel"
    assert headers["editor-version"].startswith("vscode/")
    assert headers["editor-plugin-version"].startswith("copilot-chat/")
    assert headers["user-agent"].startswith("GitHubCopilotChat/")
    assert headers["x-github-api-version"] == "2025-04-01"
    assert headers["accept"] == "text/event-stream"
    assert uuid.UUID(headers["x-request-id"]).version == 4


def test_every_request_gets_its_own_request_id() -> None:
    chat = ChatRequest(model="m", messages=HELLO)
    assert _headers(chat)["x-request-id"] != _headers(chat)["x-request-id"]


def test_provider_headers_replace_the_editor_identity_but_not_the_token() -> None:
    provider = _provider(
        headers={"editor-version": "vscode/2.0.0", "Authorization": "Bearer stolen", "X-Extra": "1"}
    )
    headers = _headers(ChatRequest(model="m", messages=HELLO), provider)
    assert headers["editor-version"] == "vscode/2.0.0"
    assert headers["x-extra"] == "1"
    assert headers["authorization"] == f"Bearer {TOKEN.token}"
    call = ADAPTER.build(provider, ChatRequest(model="m", messages=HELLO), "gpt-4.1", TOKEN)
    assert [name for name in call.headers if name.lower() == "editor-version"] == ["editor-version"]


@pytest.mark.parametrize(
    ("messages", "initiator"),
    [
        ([Message(role="user", content="hi")], "user"),
        (
            [
                Message(role="user", content="weather?"),
                Message(role="assistant", tool_calls=[ToolCall(id="c1", name="w", arguments="{}")]),
                Message(role="tool", tool_call_id="c1", content="sunny"),
            ],
            "agent",
        ),
        ([Message(role="user", content="hi"), Message(role="assistant", content="Hel")], "agent"),
    ],
)
def test_x_initiator_is_user_only_when_the_last_message_is_the_users(
    messages: list[Message], initiator: str
) -> None:
    assert _headers(ChatRequest(model="m", messages=messages))["x-initiator"] == initiator


def test_vision_header_only_when_the_request_carries_images() -> None:
    image = Message(
        role="user", content=[TextPart(text="what?"), ImagePart(url="data:image/png;base64,iVBORw0KGgo=")]
    )
    assert _headers(ChatRequest(model="m", messages=[image]))["copilot-vision-request"] == "true"
    assert "copilot-vision-request" not in _headers(ChatRequest(model="m", messages=HELLO))


def test_probe_lists_the_models_of_the_tokens_api() -> None:
    call = ADAPTER.probe(_provider(), TOKEN)
    assert call.method == "GET"
    assert call.url == "https://api.business.githubcopilot.com/models"
    assert call.headers["Authorization"] == f"Bearer {TOKEN.token}"
    assert call.headers["Copilot-Integration-Id"] == "vscode-chat"


# --- against the mock upstream ------------------------------------------------------


@pytest.fixture
async def mock_http() -> AsyncIterator[HttpClient]:
    app = create_app(MockSettings(chunks=3, copilot_token_seconds=1))
    client = HttpClient(transport=httpx2.ASGITransport(app=app))
    yield client
    await client.aclose()


def _mock_provider() -> ConfiguredProvider:
    # The endpoint is a decoy: the token's `endpoints.api` must win.
    return _provider(auth_endpoint="http://mock", endpoint="http://nowhere.test")


async def _complete(http: HttpClient, chat: ChatRequest, credential: Credential) -> list[Output]:
    provider = _mock_provider()
    call = ADAPTER.build(provider, chat, "gpt-4.1", credential)
    async with http.stream(call.method, call.url, headers=call.headers, content=call.body) as response:
        if response.status >= 400:
            raise ADAPTER.error(response.status, response.headers, await response.read())
        return [item async for item in ADAPTER.events(response, chat.stream)]


async def test_adapter_and_token_source_stream_an_answer_from_the_mock(mock_http: HttpClient) -> None:
    provider = _mock_provider()
    credential = await ADAPTER.credentials(mock_http).get(provider, provider.credentials[0])
    assert credential.endpoint == "http://mock/copilot"
    chat = ChatRequest(model="gpt-4.1", messages=HELLO, stream=True)
    outputs = await _complete(mock_http, chat, credential)
    assert "".join(o.text for o in outputs if isinstance(o, Delta)) == "Mock answer to: hello there"
    assert isinstance(outputs[-2], Usage)
    assert outputs[-1] == Done(seq=0, finish_reason="stop")


async def test_probe_against_the_mock_succeeds_with_a_minted_token(mock_http: HttpClient) -> None:
    provider = _mock_provider()
    credential = await ADAPTER.credentials(mock_http).get(provider, provider.credentials[0])
    call = ADAPTER.probe(provider, credential)
    status, _, body = await mock_http.fetch(call.method, call.url, headers=call.headers)
    assert status == 200
    assert b'"claude-sonnet-4"' in body


async def test_an_expired_token_is_refused_and_a_fresh_one_after_invalidate_works(
    mock_http: HttpClient,
) -> None:
    provider = _mock_provider()
    tokens = ADAPTER.credentials(mock_http)
    entry = provider.credentials[0]
    stale = await tokens.get(provider, entry)
    await asyncio.sleep(1.1)
    chat = ChatRequest(model="gpt-4.1", messages=HELLO)
    with pytest.raises(UpstreamError) as raised:
        await _complete(mock_http, chat, stale)
    assert raised.value.status == 401
    assert "token expired" in raised.value.message
    tokens.invalidate(provider, entry)
    fresh = await tokens.get(provider, entry)
    assert fresh.token != stale.token
    outputs = await _complete(mock_http, chat, fresh)
    assert outputs[-1] == Done(seq=0, finish_reason="stop")


async def test_a_refused_github_token_never_reaches_the_chat_api(mock_http: HttpClient) -> None:
    provider = _provider(auth_endpoint="http://mock", github_token="gho_error-401")
    with pytest.raises(UpstreamError) as raised:
        await ADAPTER.credentials(mock_http).get(provider, provider.credentials[0])
    assert getattr(raised.value, "upstream_status", None) == 401
    assert "gho_error-401" not in raised.value.message
