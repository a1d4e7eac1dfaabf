"""Log lines: JSON objects (or text) with the trace and request ids, secrets masked; and
which bus messages get a consumer span of their own."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llmbus.bus import Delivery
from llmbus.bus import client as bus_client
from llmbus.bus.client import connect
from llmbus.proto import CANCEL, CONTROL_REGISTRY, WORKER_STATUS, CancelRequest, RegistryQuery, WorkerStatus
from llmbus.telemetry.logs import (
    JsonFormatter,
    TextFormatter,
    _RedactingFilter,
    log_format,
    log_requests,
    redact,
)
from llmbus.telemetry.requests import (
    bind_request_id,
    claim_request_id,
    client_request_id,
    new_request,
    reset_request,
)
from llmbus.testing import free_port, start_nats
from llmbus.testing.leaks import SecretBook

SECRETS = [
    "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0",
    "gho_" + "abcdefghijklmnopqrstuvwxyz0123",
    "AKIA" + "ABCDEFGHIJKLMNOP",
    "ghp_" + "ZYXWVUTSRQPONMLKJIHGFEDC",
]


class _Captured:
    def __init__(self, logger: logging.Logger, stream: io.StringIO) -> None:
        self.logger = logger
        self.stream = stream

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def json(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines()]


def _capture(formatter: logging.Formatter, name: str) -> Iterator[_Captured]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(_RedactingFilter())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield _Captured(logger, stream)
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def json_log() -> Iterator[_Captured]:
    yield from _capture(JsonFormatter("edge"), "llmbus.test.json")


@pytest.fixture
def text_log() -> Iterator[_Captured]:
    yield from _capture(TextFormatter("edge"), "llmbus.test.text")


def test_a_json_line_names_time_level_service_logger_and_message(json_log: _Captured) -> None:
    json_log.logger.warning("upstream %s refused: %d", "openai", 429)
    [line] = json_log.json()
    assert line["level"] == "warning"
    assert line["service"] == "edge"
    assert line["logger"] == "llmbus.test.json"
    assert line["message"] == "upstream openai refused: 429"
    assert str(line["time"]).endswith("Z")
    assert "T" in str(line["time"])
    assert "trace_id" not in line, "no span is current"
    assert "request_id" not in line, "no request is being handled"


def test_a_json_line_carries_the_current_span_and_request(json_log: _Captured) -> None:
    tracer = TracerProvider().get_tracer("test")
    info, token = new_request()
    try:
        with tracer.start_as_current_span("POST /v1/chat/completions") as span:
            json_log.logger.info("answering")
        json_log.logger.info("after the span")
    finally:
        reset_request(token)
    json_log.logger.info("after the request")
    inside, after_span, after_request = json_log.json()
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["request_id"] == info.id
    assert "trace_id" not in after_span
    assert after_span["request_id"] == info.id
    assert "request_id" not in after_request


def test_a_traceback_stays_inside_its_json_line(json_log: _Captured) -> None:
    try:
        raise RuntimeError("boom with " + SECRETS[0])
    except RuntimeError:
        json_log.logger.exception("handler failed")
    [line] = json_log.lines()
    parsed = json.loads(line)
    assert "Traceback" in str(parsed["exc"])
    assert "RuntimeError" in str(parsed["exc"])
    assert SECRETS[0] not in line, "a secret in an exception message is masked too"


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_are_masked_in_messages_and_arguments(json_log: _Captured, secret: str) -> None:
    json_log.logger.info("key " + secret)
    json_log.logger.info("header %s", {"authorization": "Bearer " + secret})
    text = json_log.stream.getvalue()
    assert secret not in text
    assert text.count("[redacted]") == 2


def test_redaction_keeps_what_is_not_a_secret() -> None:
    assert redact("Bearer abcdefghijkl") == "Bearer [redacted]"
    assert redact("aws_secret_access_key=" + "a" * 40) == "aws_secret_access_key=[redacted]"
    plain = "model gpt-4o-mini on provider openai, request 3f2a9c, task-runner ok"
    assert redact(plain) == plain


def test_text_lines_are_for_humans_with_the_request_id(text_log: _Captured) -> None:
    token = bind_request_id("0123abcd")
    try:
        text_log.logger.info("routed to %s", "openai")
    finally:
        reset_request(token)
    [line] = text_log.lines()
    assert " edge INFO llmbus.test.text: routed to openai [request_id=0123abcd]" in line
    assert not line.startswith("{")


def test_the_http_request_id_is_the_first_calls_bus_id_and_later_calls_get_their_own() -> None:
    info, token = new_request("client-id_1.2")
    try:
        first, second = claim_request_id("gpt-4o-mini"), claim_request_id()
    finally:
        reset_request(token)
    assert first == info.id
    assert second != first
    assert len(second) == 32
    assert info.bus_ids == [first, second]
    assert info.model == "gpt-4o-mini"
    assert info.client_id == "client-id_1.2"


@pytest.mark.parametrize("sent", ["", "a" * 129, "has space", "new\nline", "semi;colon", "ünï"])
def test_a_malformed_client_request_id_is_ignored(sent: str) -> None:
    assert client_request_id(sent) is None


# Subscriptions: which messages get a consumer span


@pytest.fixture(scope="module")
def quiet_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bus of its own: on the session's, the end-to-end stack's workers send their
    status and its edges ask the routers, which these subscriptions would hear too."""
    port = free_port()
    process = start_nats(port, tmp_path_factory.mktemp("logging-bus"))
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """The bus client's spans, recorded in memory (as if the process exported spans)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(bus_client, "_tracer", provider.get_tracer("llmbus.bus"))
    monkeypatch.setattr(bus_client, "recording", lambda: True)
    return exporter


async def test_periodic_worker_status_starts_no_trace_but_a_traced_message_continues_its_own(
    quiet_nats_url: str, spans: InMemorySpanExporter
) -> None:
    bus = await connect(quiet_nats_url, name="test-logging-spans")
    seen: list[str] = []
    done = asyncio.Event()

    async def on_status(status: WorkerStatus, _: Delivery) -> None:
        seen.append(status.instance)
        if len(seen) == 3:
            done.set()

    try:
        await bus.subscribe(WORKER_STATUS, on_status)
        await bus.flush()
        # As a worker sends its status every few seconds: untraced.
        await bus.publish(WORKER_STATUS, WorkerStatus(instance="w1", family="openai"), traced=False)
        await bus.publish(WORKER_STATUS, WorkerStatus(instance="w2", family="openai"), traced=False)
        # A message sent inside a trace: its consumer span continues that trace.
        sender = TracerProvider().get_tracer("sender")
        with sender.start_as_current_span("sender") as parent:
            await bus.publish_raw(
                WORKER_STATUS.subject(),
                WORKER_STATUS.codec.encode(WorkerStatus(instance="w3", family="openai")),
                traced=True,
            )
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0.1)  # the consumer span ends after its handler returns
    finally:
        await bus.drain()
    assert sorted(seen) == ["w1", "w2", "w3"]
    finished = [s for s in spans.get_finished_spans() if s.name == "process health.v1.worker"]
    assert len(finished) == 1, "only the message that carried a trace context has a span"
    [span] = finished
    assert span.kind == SpanKind.CONSUMER
    assert span.parent is not None
    assert span.context.trace_id == parent.get_span_context().trace_id


async def test_a_request_someone_waits_on_gets_a_span_even_without_a_trace_context(
    quiet_nats_url: str, spans: InMemorySpanExporter
) -> None:
    bus = await connect(quiet_nats_url, name="test-logging-requests")
    got = asyncio.Event()

    async def on_query(_: RegistryQuery, delivery: Delivery) -> None:
        assert delivery.reply
        got.set()

    try:
        await bus.subscribe(CONTROL_REGISTRY, on_query, subject="control.v1.registry")
        await bus.flush()
        # Sent with no trace context at all, as a process that records nothing would.
        await bus.publish_raw(
            CONTROL_REGISTRY.subject(),
            CONTROL_REGISTRY.codec.encode(RegistryQuery(kind="providers")),
            reply=bus.new_inbox(),
        )
        await asyncio.wait_for(got.wait(), 5)
        await asyncio.sleep(0.1)
    finally:
        await bus.drain()
    names = [s.name for s in spans.get_finished_spans()]
    assert names.count("process control.v1.registry") == 1


async def test_a_handlers_log_lines_name_the_request_of_its_message(
    quiet_nats_url: str, json_log: _Captured
) -> None:
    bus = await connect(quiet_nats_url, name="test-logging-request-ids")
    handled = asyncio.Event()

    async def on_cancel(request: CancelRequest, _: Delivery) -> None:
        json_log.logger.info("cancelling")
        handled.set()

    try:
        await bus.subscribe(CANCEL, on_cancel)
        await bus.flush()
        await bus.publish(CANCEL, CancelRequest(request_id="feedc0de" * 4), request_id="feedc0de" * 4)
        await asyncio.wait_for(handled.wait(), 5)
    finally:
        await bus.drain()
    json_log.logger.info("afterwards")
    during, after = json_log.json()
    assert during["request_id"] == "feedc0de" * 4
    assert "request_id" not in after


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "json"), ("json", "json"), ("TEXT", "text"), (" text ", "text"), ("xml", "json")],
)
def test_the_log_format_setting(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str) -> None:
    if value is None:
        monkeypatch.delenv("LLMBUS_LOG_FORMAT", raising=False)
    else:
        monkeypatch.setenv("LLMBUS_LOG_FORMAT", value)
    assert log_format() == expected


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("0", False), ("1", True), ("true", True)])
def test_request_logging_is_off_unless_asked_for(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("LLMBUS_LOG_REQUESTS", raising=False)
    else:
        monkeypatch.setenv("LLMBUS_LOG_REQUESTS", value)
    assert log_requests() is expected


def test_the_suites_log_scan_reads_json_lines(tmp_path: Path) -> None:
    book = SecretBook()
    secret = 'pass"word\\with-escapes'
    book.add(secret, "a password with quotes")
    log = tmp_path / "service.log"
    lines = [
        json.dumps({"message": "plain line"}),
        json.dumps({"message": "connecting with " + secret}),
        "not json: " + secret,
    ]
    assert secret not in lines[1], "JSON escapes it"
    log.write_text("\n".join(lines) + "\n")
    leaks = book.scan([tmp_path])
    assert [(leak.line, leak.label) for leak in leaks] == [
        (2, "a password with quotes"),
        (3, "a password with quotes"),
    ]
