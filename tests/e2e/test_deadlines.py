"""Deadlines on real processes under concurrent load: an upstream that hangs ends in a
clean 504 within its first-byte timeout (the provider's, or the one a client's
`x-llmbus-timeout` asks for), a trickling stream ends at its deadline with an error
event, a malformed timeout header is a 400 in the client's format, and a client that
goes away before the first byte or mid-stream cancels the upstream call at once.

Outcomes are counted as in `test_failover`: succeeded, clean error, hung, broken (hung
and broken must be 0)."""

from __future__ import annotations

import asyncio
from collections import Counter

import anthropic
import httpx2 as httpx
import openai
import pytest

from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY
from tests.e2e.test_failover import USER, MockRecords, run_many, run_openai

pytestmark = pytest.mark.e2e

N = 8


@pytest.fixture
async def mock(stack: Stack) -> MockRecords:
    records = MockRecords(stack)
    await records.reset()
    return records


async def _all_aborted(mock: MockRecords, model: str, n: int, within: float) -> float:
    """Seconds until the mock saw all `n` calls for `model` end unfinished (the gateway
    dropped them); fails after `within`."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        calls = await mock.sent(model=model)
        if len(calls) == n and all(c["outcome"] == "aborted" for c in calls):
            return loop.time() - began
        assert loop.time() - began < within, f"upstream calls still held: {[c['outcome'] for c in calls]}"
        await asyncio.sleep(0.05)


async def test_an_upstream_that_hangs_ends_in_a_504_within_the_providers_first_byte_timeout(
    client: openai.AsyncOpenAI, mock: MockRecords
) -> None:
    """dl-quick's first-byte timeout is 1 s (the workers' read timeout is 4 s here, the
    default first-byte timeout 120 s)."""
    outcomes = await run_openai(client, "dl-hang", n=N)
    outcomes.bounded()
    assert outcomes.errors == Counter({504: N}), outcomes
    assert max(outcomes.seconds) < 3.5
    await _all_aborted(mock, "hang", N, within=3)


@pytest.mark.parametrize("header", ["x-llmbus-timeout"])
async def test_a_client_header_shortens_the_wait_for_a_hung_upstream(
    client: openai.AsyncOpenAI, mock: MockRecords, header: str
) -> None:
    """dl-hang-open has no timeout of its own: the client's 1 s ends it, as a 504."""
    outcomes = await run_openai(client, "dl-hang-open", n=N, headers={header: "1"})
    outcomes.bounded()
    assert outcomes.errors == Counter({504: N}), outcomes
    assert max(outcomes.seconds) < 3.5, "the client's deadline, not the read timeout (4 s)"
    await _all_aborted(mock, "hang", N, within=3)


async def test_a_trickling_stream_ends_at_the_clients_deadline_with_an_error_event(
    client: openai.AsyncOpenAI, mock: MockRecords
) -> None:
    """The trickle streams a chunk a second for half a minute: never silent long enough
    for an idle timeout, so only the deadline ends it, with an error event after the
    stream's first chunks."""
    chunks: list[int] = []

    async def one(_: bool) -> str:
        response = await client.chat.completions.create(
            model="dl-trickle", messages=USER, stream=True, extra_headers={"x-llmbus-timeout": "2.5"}
        )
        seen = 0
        try:
            async with response:
                async for _chunk in response:
                    seen += 1
        finally:
            chunks.append(seen)
        return "finished"

    outcomes = await run_many(one, n=N)
    outcomes.bounded()
    assert outcomes.succeeded == 0, outcomes
    assert outcomes.clean_errors == N, outcomes
    assert all(seen > 1 for seen in chunks), "each stream had started before its deadline"
    assert max(outcomes.seconds) < 6
    await _all_aborted(mock, "trickle", N, within=3)


async def test_a_providers_total_timeout_ends_a_trickling_stream(
    client: openai.AsyncOpenAI, mock: MockRecords
) -> None:
    """dl-quick's total is 3 s, with no client header at all."""
    chunks: list[int] = []

    async def one(_: bool) -> str:
        response = await client.chat.completions.create(model="dl-trickle-capped", messages=USER, stream=True)
        seen = 0
        try:
            async with response:
                async for _chunk in response:
                    seen += 1
        finally:
            chunks.append(seen)
        return "finished"

    outcomes = await run_many(one, n=N)
    outcomes.bounded()
    assert outcomes.succeeded == 0, outcomes
    assert outcomes.clean_errors == N, outcomes
    assert all(seen > 1 for seen in chunks), "each stream had started before its deadline"
    assert max(outcomes.seconds) < 7
    await _all_aborted(mock, "trickle", N, within=3)


async def test_a_timeout_header_that_is_not_seconds_is_a_400_in_the_clients_format(
    client: openai.AsyncOpenAI, claude_client: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, extra_headers={"x-llmbus-timeout": "soon"}
        )
    assert caught.value.code == "invalid_timeout"
    with pytest.raises(anthropic.BadRequestError) as refused:
        await claude_client.messages.create(
            model="gpt-4o-mini",
            max_tokens=16,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-llmbus-timeout": "-1"},
        )
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert "x-llmbus-timeout" in body["error"]["message"]


async def test_clients_that_give_up_before_the_first_byte_cancel_their_upstream_calls(
    stack: Stack, mock: MockRecords
) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{stack.base_url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=0.5
    ) as impatient:
        outcomes = await run_openai(impatient, "dl-hang-open", n=N)
    assert outcomes.hung == 0
    assert len(outcomes.broken) == N, "each client timed out itself"
    await _all_aborted(mock, "hang", N, within=1.5)


async def test_clients_that_go_away_mid_stream_cancel_their_upstream_calls_within_a_second(
    stack: Stack, mock: MockRecords
) -> None:
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=10
    ) as http:

        async def read_then_leave() -> None:
            body = {"model": "dl-trickle", "messages": USER, "stream": True}
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if '"content":"' in line and '"content":""' not in line:
                        return  # a delta with text: the stream is under way; leave

        await asyncio.gather(*(read_then_leave() for _ in range(N)))
    assert len(await mock.sent(model="trickle")) == N
    await _all_aborted(mock, "trickle", N, within=1.5)
