"""`/v1/messages` through the running gateway: every error reaches an Anthropic client
in Anthropic's format with the right status, and `count_tokens` answers for the models
the gateway routes."""

from __future__ import annotations

import anthropic
import httpx2 as httpx
import pytest

from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY

pytestmark = pytest.mark.e2e

USER: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hello"}]


async def test_missing_key_is_401_authentication_error(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post(
            "/v1/messages",
            json={"model": "gpt-4o-mini", "max_tokens": 16, "messages": USER},
            headers={"anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 401
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "authentication_error"


async def test_wrong_key_raises_the_sdks_authentication_error(stack: Stack) -> None:
    async with anthropic.AsyncAnthropic(base_url=stack.base_url, api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError):
            await bad.messages.create(model="gpt-4o-mini", max_tokens=16, messages=USER)


async def test_unknown_model_is_404_not_found_error(claude_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await claude_client.messages.create(model="no-such-model", max_tokens=16, messages=USER)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in caught.value.message


async def test_bad_body_is_400_naming_the_field(claude_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude_client.messages.create(
            model="gpt-4o-mini", max_tokens=16, messages=USER, extra_body={"temperature": 3}
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "temperature" in caught.value.body["error"]["message"]


async def test_server_tools_are_refused_with_400(claude_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude_client.messages.create(
            model="gpt-4o-mini",
            max_tokens=16,
            messages=USER,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert "web_search_20250305" in caught.value.message


async def test_upstream_rate_limit_is_429_rate_limit_error_with_retry_after(stack: Stack) -> None:
    # `flaky/` picks the provider whose only key is rate limited upstream: no failover.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=20) as http:
        response = await http.post(
            "/v1/messages",
            json={"model": "flaky/resilient", "max_tokens": 16, "messages": USER},
            headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert int(response.headers["retry-after"]) >= 1


async def test_a_stream_failing_midway_ends_with_an_error_event(
    claude_client: anthropic.AsyncAnthropic,
) -> None:
    received: list[str] = []

    async def consume() -> None:
        async with claude_client.messages.stream(
            model="midstream-error", max_tokens=64, messages=USER
        ) as stream:
            async for text in stream.text_stream:
                received.append(text)

    with pytest.raises(anthropic.APIStatusError) as caught:
        await consume()
    assert received, "the first deltas arrive before the failure"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["message"]


async def test_count_tokens_estimates_for_a_routed_model(claude_client: anthropic.AsyncAnthropic) -> None:
    counted = await claude_client.messages.count_tokens(
        model="gpt-4o-mini", system="Be brief.", messages=[{"role": "user", "content": "x" * 400}]
    )
    assert counted.input_tokens > 100
    with pytest.raises(anthropic.NotFoundError):
        await claude_client.messages.count_tokens(model="no-such-model", messages=USER)
