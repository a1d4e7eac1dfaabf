"""One request's whole trace, found over HTTP through a trace backend's query API (Jaeger's
own when it runs, the test receiver's Jaeger-shaped one otherwise) by the request's
`x-request-id`: the edge, the router, the worker and the upstream call, linked parent to
child, with the GenAI and messaging conventions on its spans and no credential in clear.
An idle stack exports no trace of its own."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest

from llmbus.telemetry import credential_ref
from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY
from tests.e2e.otlp import OtlpReceiver

pytestmark = pytest.mark.e2e

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
UPSTREAM_KEYS = ("sk-test-upstream", "sk-fo-first", "sk-fo-second")
"""The upstream keys of the providers these tests reach: never in a trace."""

CHAIN = [
    ("llmbus-edge", "POST /v1/chat/completions", "server"),
    ("llmbus-edge", "publish llm.v1.route", "producer"),
    ("llmbus-router", "process llm.v1.route", "consumer"),
    ("llmbus-router", "publish llm.v1.exec.{provider}", "producer"),
    ("llmbus-worker-openai", "process llm.v1.exec.{provider}", "consumer"),
    ("llmbus-worker-openai", "POST 127.0.0.1", "client"),
]
"""The path of a request from the edge to the upstream, root first."""

Trace = dict[str, Any]
Span = dict[str, Any]


def _tags(span: Span) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def _service(trace: Trace, span: Span) -> str:
    return str(trace["processes"][span["processID"]]["serviceName"])


def _id(value: str, width: int) -> str:
    """A trace or span id as 32 or 16 hex digits (Jaeger may drop leading zeros)."""
    return value.lower().zfill(width)


def _parent(span: Span) -> str:
    refs = [ref for ref in span["references"] if ref["refType"] == "CHILD_OF"]
    return _id(refs[0]["spanID"], 16) if refs else ""


async def _find_trace(http: httpx.AsyncClient, request_id: str, wanted: Counter[str]) -> Trace:
    """The trace of the request named `request_id`, looked up by the edge's
    `llmbus.request_id` tag, then fetched by its id once it holds the `wanted` spans
    (operation names, counted; each process exports on its own schedule)."""
    search = {"service": "llmbus-edge", "tags": json.dumps({"llmbus.request_id": request_id})}
    trace: Trace = {"spans": []}
    for _ in range(150):
        found = await http.get("/api/traces", params=search)
        assert found.status_code == 200, found.text
        data = found.json()["data"] or []
        if data:
            assert len(data) == 1, [t["traceID"] for t in data]
            fetched = await http.get(f"/api/traces/{data[0]['traceID']}")
            assert fetched.status_code == 200, fetched.text
            [trace] = fetched.json()["data"]
            if Counter(span["operationName"] for span in trace["spans"]) >= wanted:
                return trace
        await asyncio.sleep(0.1)
    raise AssertionError(f"the trace of {request_id} is incomplete: {trace['spans']}")


def _path(trace: Trace, leaf: Span) -> list[tuple[str, str, str]]:
    """From `leaf` up to the root of the trace: service, operation and span kind."""
    by_id = {_id(span["spanID"], 16): span for span in trace["spans"]}
    out = []
    span: Span | None = leaf
    while span is not None:
        out.append((_service(trace, span), span["operationName"], _tags(span).get("span.kind", "")))
        span = by_id.get(_parent(span))
    return out[::-1]


def _upstream_calls(trace: Trace) -> list[Span]:
    return [
        s
        for s in trace["spans"]
        if _service(trace, s).startswith("llmbus-worker-") and _tags(s).get("span.kind") == "client"
    ]


def _no_secrets(trace: Trace, *secrets: str) -> None:
    text = json.dumps(trace)
    for secret in secrets:
        assert secret not in text, f"{secret} in the trace"


async def _usage_of_stream(answered: httpx.Response) -> dict[str, int]:
    """The `usage` of the stream's last chunk (asked with `include_usage`)."""
    usage: dict[str, int] = {}
    async for line in answered.aiter_lines():
        if line.startswith("data: {"):
            usage = json.loads(line[6:]).get("usage") or usage
    return usage


@pytest.mark.parametrize("stream", [False, True])
async def test_a_requests_whole_trace_is_found_by_its_request_id(
    stack: Stack, trace_api: str, stream: bool
) -> None:
    body: dict[str, Any] = {
        "model": "gpt-4-turbo",
        "messages": [{"role": "user", "content": "find my trace"}],
        "max_tokens": 64,
        "temperature": 0.25,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=20) as gateway,
        httpx.AsyncClient(base_url=trace_api, timeout=10) as query,
    ):
        async with gateway.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as answered:
            assert answered.status_code == 200
            request_id = answered.headers["x-request-id"]
            usage = (
                await _usage_of_stream(answered) if stream else json.loads(await answered.aread())["usage"]
            )
        trace = await _find_trace(query, request_id, Counter(name for _, name, _ in CHAIN))

    [upstream] = _upstream_calls(trace)
    assert _path(trace, upstream) == CHAIN
    spans = {(_service(trace, s), s["operationName"]): s for s in trace["spans"]}
    server = _tags(spans["llmbus-edge", "POST /v1/chat/completions"])
    assert server["llmbus.request_id"] == request_id
    assert _parent(spans["llmbus-edge", "POST /v1/chat/completions"]) == "", "the request starts the trace"

    # The upstream call is the GenAI inference span.
    call = _tags(upstream)
    assert call["gen_ai.operation.name"] == "chat"
    assert call["gen_ai.provider.name"] == "openai"
    assert call["gen_ai.request.model"] == "gpt-4-turbo-preview", "the model the upstream was asked for"
    assert call["gen_ai.response.model"] == "gpt-4-turbo-preview"
    assert call["gen_ai.request.max_tokens"] == 64
    assert call["gen_ai.request.temperature"] == 0.25
    assert usage["prompt_tokens"] > 0
    assert call["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert call["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert json.loads(call["gen_ai.response.finish_reasons"]) == ["stop"]
    assert call["http.response.status_code"] == 200

    # The worker's attempt names the provider and the credential by its digest only.
    attempt = _tags(spans["llmbus-worker-openai", "process llm.v1.exec.{provider}"])
    assert attempt["llmbus.provider"] == "openai"
    assert attempt["llmbus.credential"] == credential_ref("key-1")
    assert attempt["llmbus.outcome"] == "answered"
    _no_secrets(trace, *UPSTREAM_KEYS, CLIENT_KEY, '"key-1"')

    # The bus spans follow the messaging conventions.
    published = _tags(spans["llmbus-router", "publish llm.v1.exec.{provider}"])
    assert published["messaging.system"] == "nats"
    assert published["messaging.operation.type"] == "send"
    assert published["messaging.destination.name"] == "llm.v1.exec.openai"
    assert published["messaging.message.body.size"] > 0
    processed = _tags(spans["llmbus-router", "process llm.v1.route"])
    assert processed["messaging.operation.type"] == "process"
    assert processed["messaging.destination.name"] == "llm.v1.route"
    assert processed["messaging.message.body.size"] > 0


async def test_a_failover_shows_in_the_found_trace_as_attempt_events(stack: Stack, trace_api: str) -> None:
    """fo-provider fails at fo-first (500) and is answered by fo-second."""
    body = {"model": "fo-provider", "messages": [{"role": "user", "content": "fail me over"}]}
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=20) as gateway,
        httpx.AsyncClient(base_url=trace_api, timeout=10) as query,
    ):
        answered = await gateway.post("/v1/chat/completions", json=body, headers=AUTH)
        assert answered.status_code == 200, answered.text
        assert "fail me over" in answered.json()["choices"][0]["message"]["content"]
        request_id = answered.headers["x-request-id"]
        attempts_and_calls = Counter({"process llm.v1.exec.{provider}": 2, "POST 127.0.0.1": 2})
        trace = await _find_trace(query, request_id, attempts_and_calls)

    attempts = {
        _tags(s)["llmbus.provider"]: s
        for s in trace["spans"]
        if s["operationName"] == "process llm.v1.exec.{provider}"
    }
    assert set(attempts) == {"fo-first", "fo-second"}
    failed, answered_by = attempts["fo-first"], attempts["fo-second"]
    assert _tags(failed)["llmbus.credential"] == credential_ref("key-1")
    assert _tags(failed)["llmbus.outcome"] == "failed"
    [event] = [
        {field["key"]: field["value"] for field in log["fields"]}
        for log in failed["logs"]
        if {"key": "event", "type": "string", "value": "llmbus.failover"} in log["fields"]
    ]
    assert event["llmbus.next.provider"] == "fo-second"
    assert event["llmbus.next.attempt"] == 2
    assert event["llmbus.next.credential"] == credential_ref("key-1")
    assert event["llmbus.error"] == _tags(failed)["llmbus.error"]
    assert _tags(answered_by)["llmbus.attempt"] == 2

    # Each attempt made its own upstream call, a child of the attempt.
    calls = {_parent(s): _tags(s) for s in _upstream_calls(trace)}
    first, second = calls[_id(failed["spanID"], 16)], calls[_id(answered_by["spanID"], 16)]
    assert first["http.response.status_code"] == 500
    assert first["gen_ai.request.model"] == "error-500"
    assert "gen_ai.usage.output_tokens" not in first
    assert second["gen_ai.request.model"] == "gpt-4o-mini"
    assert second["gen_ai.usage.output_tokens"] > 0
    _no_secrets(trace, *UPSTREAM_KEYS, '"key-1"')


async def test_an_idle_stack_starts_no_trace(stack: Stack, otlp: OtlpReceiver) -> None:
    """Workers send their status every 0.5 s here, and probe their upstream every 2 s;
    routers and auth handle the status: none of that makes a trace."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=20) as gateway:
        answered = await gateway.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers=AUTH,
        )
        assert answered.status_code == 200
    # Spans are exported (the request's), then the stack idles for several intervals.
    for _ in range(100):
        if any(
            s.attributes.get("llmbus.request_id") == answered.headers["x-request-id"]
            for s in otlp.collected()
        ):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the request's server span was not exported")
    await asyncio.sleep(1)  # the request's last spans
    before = len(otlp.collected())
    await asyncio.sleep(5)
    roots = [(s.service, s.name) for s in otlp.collected()[before:] if not s.parent_id]
    assert roots == [], sorted(set(roots))
