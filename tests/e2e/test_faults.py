"""Faults of our own parts: a worker that dies mid-stream."""

from __future__ import annotations

import signal
import time

import openai
import pytest

from llmbus.testing import Stack

pytestmark = pytest.mark.e2e


async def test_a_worker_killed_mid_stream_ends_the_stream_with_an_error(
    stack: Stack, client: openai.AsyncOpenAI
) -> None:
    worker = stack.start_service(
        "worker-doomed", "worker", {"LLMBUS_FAMILY": "openai", "LLMBUS_PROVIDERS": "doomed"}
    )
    try:
        stack.wait_ready("worker-doomed")
        stream = await client.chat.completions.create(
            model="doomed-model",
            messages=[{"role": "user", "content": "keep going"}],
            stream=True,
        )
        first = await stream.__anext__()
        assert first.choices[0].delta.role == "assistant"
        worker.signal(signal.SIGKILL)
        began = time.monotonic()

        async def drain() -> None:
            async with stream:  # closed at once, not left to the garbage collector
                async for _ in stream:
                    pass

        with pytest.raises(openai.APIError) as caught:
            await drain()
        # The edge stops waiting after its idle timeout (1.5 s in these tests).
        assert time.monotonic() - began < 5
        assert "worker" in caught.value.message
    finally:
        worker.stop()
        stack.processes.pop("worker-doomed", None)
