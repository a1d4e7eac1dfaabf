"""The workers' upstream HTTP client against the mock upstream over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx2
import pytest
import uvicorn

from llmbus.config import Config, ProviderConfig
from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings
from llmbus.proto import ChatRequest, Delta, Done, Message
from llmbus.providers import configured_providers
from llmbus.providers.adapters import Credential, adapter_for
from llmbus.providers.errors import UpstreamTimeout, UpstreamUnreachable
from llmbus.providers.http import HttpClient
from llmbus.testing import free_port

HEADERS = {"Authorization": "Bearer sk-test", "Content-Type": "application/json"}


@pytest.fixture
async def mock_url() -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(MockSettings(chunks=4, hang_seconds=1)), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _body(model: str, stream: bool) -> bytes:
    return b'{"model":"%s","messages":[{"role":"user","content":"hi"}],"stream":%s}' % (
        model.encode(),
        b"true" if stream else b"false",
    )


async def test_a_stream_read_up_to_done_leaves_its_connection_for_the_next_call(mock_url: str) -> None:
    client = HttpClient()
    try:
        for _ in range(3):
            async with client.stream(
                "POST", f"{mock_url}/v1/chat/completions", headers=HEADERS, content=_body("m", True)
            ) as response:
                seen = b""
                async for chunk in response.aiter_bytes():
                    seen += chunk
                    if b"[DONE]" in seen:
                        break
    finally:
        await client.aclose()
    async with httpx2.AsyncClient() as admin:
        peers = {r["peer"] for r in (await admin.get(f"{mock_url}/__mock__/requests")).json()}
    assert len(peers) == 1, f"one keep-alive connection for three calls, got {peers}"


async def test_an_upstream_that_goes_silent_is_a_timeout(mock_url: str) -> None:
    client = HttpClient(read_timeout=0.3)
    try:
        with pytest.raises(UpstreamTimeout):
            async with client.stream(
                "POST", f"{mock_url}/v1/chat/completions", headers=HEADERS, content=_body("hang", False)
            ) as response:
                await response.read()
    finally:
        await client.aclose()


@pytest.mark.parametrize("family", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_compressed_answer_is_decompressed_before_parsing(
    mock_url: str, family: str, stream: bool
) -> None:
    """The client asks for gzip (httpx's default Accept-Encoding); the mock's `gzip`
    scenario compresses whole bodies and streams alike, and the adapter still reads them."""
    name = {"openai": "openai", "anthropic": "claude", "gemini": "gemini"}[family]
    config = Config(providers={name: ProviderConfig(endpoint=mock_url, api_keys=["sk-gzip-key"])})
    provider = configured_providers(config)[name]
    adapter = adapter_for(family)
    chat = ChatRequest(model="m", messages=[Message(role="user", content="squeeze me")], stream=stream)
    call = adapter.build(provider, chat, "model-gzip", Credential(name="k", token="sk-gzip-key"))
    client = HttpClient()
    try:
        async with client.stream(call.method, call.url, headers=call.headers, content=call.body) as response:
            assert response.status == 200
            assert response.headers["content-encoding"] == "gzip"
            events = [event async for event in adapter.events(response, stream)]
    finally:
        await client.aclose()
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert text == "Mock answer to: squeeze me"
    assert isinstance(events[-1], Done)
    assert events[-1].finish_reason == "stop"


async def test_a_providers_proxy_url_carries_its_calls(mock_url: str) -> None:
    """The host below does not resolve: only through the proxy (here the mock itself,
    which serves the absolute-form request it receives) does the call succeed."""
    client = HttpClient(connect_timeout=2)
    try:
        status, _, body = await client.fetch(
            "GET", "http://upstream.invalid/v1/models", headers=HEADERS, proxy=mock_url
        )
        assert status == 200
        assert b'"object":"list"' in body
        with pytest.raises(UpstreamUnreachable):
            await client.fetch("GET", "http://upstream.invalid/v1/models", headers=HEADERS)
    finally:
        await client.aclose()
