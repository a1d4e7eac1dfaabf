"""One request is one trace across every process, with correct parent links."""

from __future__ import annotations

import asyncio
import secrets

import openai
import pytest

from tests.e2e.otlp import CollectedSpan, OtlpReceiver

pytestmark = pytest.mark.e2e


CHAIN = [
    "llmbus-worker-openai:POST 127.0.0.1",
    "llmbus-worker-openai:process llm.v1.exec.{provider}",
    "llmbus-router:publish llm.v1.exec.{provider}",
    "llmbus-router:process llm.v1.route",
    "llmbus-edge:publish llm.v1.route",
    "llmbus-edge:POST /v1/chat/completions",
]


async def _wait_for(otlp: OtlpReceiver, trace_id: str, timeout: float = 10) -> list[CollectedSpan]:
    """The trace's spans once every span of the expected chain has been exported (each
    process exports on its own schedule), or whatever arrived by the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        spans = otlp.trace(trace_id)
        seen = {f"{s.service}:{s.name}" for s in spans}
        if set(CHAIN) <= seen or asyncio.get_running_loop().time() > deadline:
            return spans
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("stream", [False, True])
async def test_one_request_is_one_connected_trace_across_all_processes(
    client: openai.AsyncOpenAI, otlp: OtlpReceiver, stream: bool
) -> None:
    trace_id = secrets.token_hex(16)
    client_span = secrets.token_hex(8)
    response = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "trace me"}],
        stream=stream,
        extra_headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
    )
    if stream:
        assert isinstance(response, openai.AsyncStream)
        async for _ in response:
            pass
    services = {"llmbus-edge", "llmbus-router", "llmbus-worker-openai"}
    spans = await _wait_for(otlp, trace_id)
    by_id = {span.span_id: span for span in spans}
    assert services <= {span.service for span in spans}, spans

    roots = [span for span in spans if span.parent_id not in by_id]
    assert [(r.service, r.name, r.parent_id) for r in roots] == [
        ("llmbus-edge", "POST /v1/chat/completions", client_span)
    ]

    def chain(span: CollectedSpan) -> list[str]:
        out = [f"{span.service}:{span.name}"]
        while span.parent_id in by_id:
            span = by_id[span.parent_id]
            out.append(f"{span.service}:{span.name}")
        return out

    upstream = next(span for span in spans if span.name.startswith("POST 127.0.0.1"))
    assert chain(upstream) == CHAIN
