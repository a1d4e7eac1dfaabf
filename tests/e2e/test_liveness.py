"""Heartbeats keep a request alive while the upstream is silent; a client that goes away
cancels the upstream call."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2 as httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY

pytestmark = pytest.mark.e2e

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "take your time"}]


async def _outcome(mock: httpx.AsyncClient, model: str, timeout: float = 8) -> dict[str, Any]:
    """The mock's record of the last request for `model`, once it has finished."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        records = [
            r
            for r in (await mock.get("/__mock__/requests")).json()
            if isinstance(r["body"], dict) and r["body"].get("model") == model
        ]
        if records and records[-1]["outcome"] not in {"pending", "streaming"}:
            return records[-1]  # type: ignore[no-any-return]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the upstream call for {model} never ended: {records[-1:]}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_silent_longer_than_the_idle_timeout_still_answers(
    client: openai.AsyncOpenAI, stream: bool
) -> None:
    # The mock waits 2.5 s before its first byte, the edge's idle timeout is 1.5 s:
    # only the worker's heartbeats keep the request alive.
    if stream:
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model="slow-start", messages=USER, stream=True
            )
        ]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = await client.chat.completions.create(model="slow-start", messages=USER)
        text = completion.choices[0].message.content or ""
    assert "take your time" in text


async def test_client_that_goes_away_cancels_the_upstream_call(
    client: openai.AsyncOpenAI, stack: Stack
) -> None:
    async with httpx.AsyncClient(base_url=stack.mock_url) as mock:
        await mock.post("/__mock__/reset")
        # `slow` streams one chunk every 0.5 s: the whole answer takes seconds.
        stream = await client.chat.completions.create(model="slow", messages=USER, stream=True)
        first = await stream.__anext__()
        assert first.choices[0].delta.role == "assistant"
        await stream.close()
        record = await _outcome(mock, "slow")
    assert record["outcome"] == "aborted"


async def test_an_unhurried_stream_runs_to_its_end(client: openai.AsyncOpenAI, stack: Stack) -> None:
    """The counterpart of the cancel test: the same stream, read to the end, completes."""
    async with httpx.AsyncClient(base_url=stack.mock_url) as mock:
        await mock.post("/__mock__/reset")
        stream = await client.chat.completions.create(model="slow", messages=USER, stream=True)
        async for _ in stream:
            pass
        record = await _outcome(mock, "slow")
    assert record["outcome"] == "completed"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_client_that_gives_up_before_the_first_byte_cancels_the_upstream_call(
    stack: Stack, stream: bool
) -> None:
    """The upstream hangs; the client stops waiting after half a second: the worker drops
    the upstream call at once, well before its own read timeout (4 s here) would."""
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=headers) as gateway:

        async def in_flight() -> int:
            status = (await gateway.get("/v1/providers/openai/status")).json()
            return int(status["in_flight"])

        async with openai.AsyncOpenAI(
            base_url=f"{stack.base_url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=0.5
        ) as impatient:
            with pytest.raises(openai.APITimeoutError):
                await impatient.chat.completions.create(model="hang", messages=USER, stream=stream)
        gave_up = asyncio.get_running_loop().time()
        while await in_flight():
            assert asyncio.get_running_loop().time() - gave_up < 2.5, "the upstream call is still held"
            await asyncio.sleep(0.1)
