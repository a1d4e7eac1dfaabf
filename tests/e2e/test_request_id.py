"""Following one request: its `x-request-id` is the id on the bus, on the edge's server
span and on the edge's log lines about it; every route answers with one; and the
routers' periodic handling of worker status starts no trace of its own."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY
from tests.e2e.otlp import CollectedSpan, OtlpReceiver

pytestmark = pytest.mark.e2e

OURS = re.compile(r"[0-9a-f]{32}")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "follow me"}]}


def _edge_lines(stack: Stack) -> list[dict[str, Any]]:
    """The edge's JSON log lines (any other line would be a bug in itself)."""
    path = Path(stack.log_dir) / "edge.log"
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    parsed = []
    for line in lines:
        assert line.startswith("{"), f"not a JSON line: {line}"
        parsed.append(json.loads(line))
    return parsed


async def _request_line(stack: Stack, request_id: str) -> dict[str, Any]:
    """The edge's line about the finished request (logged after the answer is sent)."""
    for _ in range(100):
        for line in _edge_lines(stack):
            if line.get("logger") == "llmbus.requests" and line.get("request_id") == request_id:
                return line
        await asyncio.sleep(0.05)
    raise AssertionError(f"no request line for {request_id}")


async def _server_span(otlp: OtlpReceiver, request_id: str) -> CollectedSpan:
    for _ in range(100):
        with otlp._lock:
            spans = list(otlp.spans)
        for span in spans:
            if span.kind == 2 and span.attributes.get("llmbus.request_id") == request_id:  # SERVER
                return span
        await asyncio.sleep(0.1)
    raise AssertionError(f"no server span for {request_id}")


@pytest.mark.parametrize("stream", [False, True])
async def test_the_request_id_is_the_bus_id_the_span_attribute_and_in_the_edge_log(
    client: openai.AsyncOpenAI, stack: Stack, otlp: OtlpReceiver, stream: bool
) -> None:
    raw = await client.chat.completions.with_raw_response.create(**CHAT, stream=stream)  # type: ignore[call-overload]
    request_id = raw.headers["x-request-id"]
    assert OURS.fullmatch(request_id), request_id
    assert "x-client-request-id" not in raw.headers
    answer = raw.parse()
    if stream:
        ids = {chunk.id async for chunk in answer}
    else:
        ids = {answer.id}
    # The answer's id is made of the request id on the bus.
    assert ids == {f"chatcmpl-{request_id}"}

    span = await _server_span(otlp, request_id)
    assert (span.service, span.name) == ("llmbus-edge", "POST /v1/chat/completions")
    line = await _request_line(stack, request_id)
    assert line["service"] == "edge"
    assert line["method"] == "POST"
    assert line["path"] == "/v1/chat/completions"
    assert line["status"] == 200
    assert line["model"] == "gpt-4o-mini"
    assert isinstance(line["duration_ms"], float)
    assert line["trace_id"] == span.trace_id
    assert "follow me" not in json.dumps(line), "never a body"
    assert CLIENT_KEY not in json.dumps(line)


async def test_a_clients_own_request_id_is_echoed_beside_ours(stack: Stack) -> None:
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=20) as http:
        mine = await http.post(
            "/v1/chat/completions", json=CHAT, headers={**headers, "x-request-id": "job-7.a_b"}
        )
        assert mine.status_code == 200, mine.text
        assert mine.headers["x-client-request-id"] == "job-7.a_b"
        assert OURS.fullmatch(mine.headers["x-request-id"])
        line = await _request_line(stack, mine.headers["x-request-id"])
        assert line["client_request_id"] == "job-7.a_b"

        for bad in ("x" * 129, "has space", "semi;colon"):
            answered = await http.post(
                "/v1/chat/completions", json=CHAT, headers={**headers, "x-request-id": bad}
            )
            assert answered.status_code == 200
            assert "x-client-request-id" not in answered.headers, bad
            assert OURS.fullmatch(answered.headers["x-request-id"])


async def test_every_route_and_error_answers_with_a_request_id(stack: Stack) -> None:
    bearer = {"authorization": f"Bearer {CLIENT_KEY}"}
    anthropic_key = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    calls: list[tuple[str, str, dict[str, str], Any, int]] = [
        ("POST", "/v1/chat/completions", bearer, {**CHAT, "stream": True}, 200),
        ("POST", "/v1/chat/completions", {}, CHAT, 401),
        (
            "POST",
            "/v1/chat/completions",
            bearer,
            {"model": "no-such-model", "messages": CHAT["messages"]},
            404,
        ),
        ("POST", "/v1/chat/completions", bearer, {"model": "gpt-4o-mini"}, 400),
        ("POST", "/v1/messages", anthropic_key, {**CHAT, "max_tokens": 20}, 200),
        ("POST", "/v1/completions", bearer, {"model": "gpt-4o-mini", "prompt": "hi"}, 200),
        ("POST", "/v1/responses", bearer, {"model": "gpt-4o-mini", "input": "hi", "store": False}, 200),
        ("POST", "/v1/embeddings", bearer, {"model": "text-embedding-3-small", "input": "hi"}, 200),
        (
            "POST",
            "/v1beta/models/gpt-4o-mini:generateContent",
            {"x-goog-api-key": CLIENT_KEY},
            {"contents": [{"parts": [{"text": "hi"}]}]},
            200,
        ),
        ("GET", "/v1/models", bearer, None, 200),
        ("GET", "/v1/no-such-path", bearer, None, 404),
        ("GET", "/v1/providers", bearer, None, 200),
        ("GET", "/v1/keys", {"x-management-key": "wrong-management-key"}, None, 403),
        ("GET", "/healthz", {}, None, 200),
    ]
    seen: set[str] = set()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=20) as http:
        for method, path, headers, body, status in calls:
            answered = await http.request(method, path, headers=headers, json=body)
            assert answered.status_code == status, (path, answered.text)
            request_id = answered.headers.get("x-request-id", "")
            assert OURS.fullmatch(request_id), (method, path, status)
            seen.add(request_id)
    assert len(seen) == len(calls), "one id per request"


async def test_worker_status_starts_no_trace_of_its_own(stack: Stack, otlp: OtlpReceiver) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=20) as http:
        answered = await http.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {CLIENT_KEY}"}
        )
        assert answered.status_code == 200
    await _server_span(otlp, answered.headers["x-request-id"])
    # Workers send their status every 0.5 s here; the routers handle each one.
    await asyncio.sleep(2)
    with otlp._lock:
        spans = list(otlp.spans)
    assert {span.service for span in spans} >= {"llmbus-edge", "llmbus-router"}, "spans are exported"
    periodic = [span for span in spans if span.name.startswith("process health.")]
    assert periodic == []
