"""The edge's request ids and request log line, in process over the in-memory bus twin
(the fixtures of `test_edge_messages`): no tracer records here, so the trace id comes
from the client's own `traceparent`."""

from __future__ import annotations

import inspect
import io
import json
import logging
import secrets
from collections.abc import Iterator

import pytest

from llmbus.edge import hot
from llmbus.telemetry.logs import JsonFormatter
from tests.unit import test_edge_messages
from tests.unit.test_edge_messages import KEY, Edge

served = pytest.fixture(name="served")(inspect.unwrap(test_edge_messages.edge))
"""The edge app over the bus twin, with a fake auth, router and worker."""

CHAT = {"model": "claude-x", "messages": [{"role": "user", "content": "a private question"}]}


@pytest.fixture
def request_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("edge"))
    logger = logging.getLogger("llmbus.requests")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_finished_request_is_one_line_without_its_body(
    served: Edge, request_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.setattr(hot, "_LOG_REQUESTS", True)
    trace_id = secrets.token_hex(16)
    answered = await served.http.post(
        "/v1/chat/completions",
        json={**CHAT, "stream": stream},
        headers={"authorization": f"Bearer {KEY}", "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert answered.status_code == 200
    request_id = answered.headers["x-request-id"]
    assert f"chatcmpl-{request_id}" in answered.text, "the answer's id is the bus request id"
    [line] = _lines(request_lines)
    assert line["logger"] == "llmbus.requests"
    assert line["request_id"] == request_id
    assert line["trace_id"] == trace_id
    assert (line["method"], line["path"], line["status"], line["model"]) == (
        "POST",
        "/v1/chat/completions",
        200,
        "claude-x",
    )
    assert "private question" not in request_lines.getvalue()
    assert KEY not in request_lines.getvalue()


async def test_errors_are_logged_with_their_status_and_the_clients_id(
    served: Edge, request_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hot, "_LOG_REQUESTS", True)
    refused = await served.http.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={"authorization": "Bearer sk-wrong", "x-request-id": "mine-1"},
    )
    unknown = await served.http.get(
        "/v1/nowhere?key=sk-in-the-query-string", headers={"x-request-id": "x" * 129}
    )
    assert (refused.status_code, unknown.status_code) == (401, 404)
    assert refused.headers["x-client-request-id"] == "mine-1"
    assert "x-client-request-id" not in unknown.headers
    first, second = _lines(request_lines)
    assert (first["status"], first["client_request_id"], first["request_id"]) == (
        401,
        "mine-1",
        refused.headers["x-request-id"],
    )
    assert (second["status"], second["path"], second["request_id"]) == (
        404,
        "/v1/nowhere",
        unknown.headers["x-request-id"],
    )
    assert "client_request_id" not in second
    assert "sk-in-the-query-string" not in request_lines.getvalue(), "never the query string"


async def test_no_request_lines_unless_asked_for(
    served: Edge, request_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hot, "_LOG_REQUESTS", False)
    answered = await served.http.post(
        "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {KEY}"}
    )
    assert answered.status_code == 200
    assert answered.headers["x-request-id"]
    assert request_lines.getvalue() == ""
