"""The GenAI conventions on an upstream call's span, and the digest that stands for a
credential in telemetry."""

from __future__ import annotations

import hashlib

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmbus.proto import Usage
from llmbus.telemetry import credential_ref, genai


def _recorded(
    operation: str, family: str, model: str, max_tokens: int | None = None, temperature: float | None = None
) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("POST api.example") as span:
        genai.record_request(
            span,
            operation=operation,
            family=family,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        genai.record_answer(
            span,
            model="claude-sonnet-4-5-20250929",
            usage=Usage(seq=3, prompt_tokens=12, completion_tokens=7),
            finish_reason="length",
        )
    [finished] = exporter.get_finished_spans()
    return finished


def test_a_credential_is_named_by_a_short_stable_digest_of_its_id() -> None:
    ref = credential_ref("key-1")
    assert ref == credential_ref("key-1"), "the same in every process"
    assert ref == hashlib.sha256(b"key-1").hexdigest()[:16]
    assert len(ref) == 16
    assert "key" not in ref
    assert credential_ref("key-2") != ref


def test_a_chat_call_carries_the_request_and_the_answer() -> None:
    span = _recorded("chat", "anthropic", "claude-sonnet-4-5", max_tokens=100, temperature=0.5)
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.response.model": "claude-sonnet-4-5-20250929",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.response.finish_reasons": ("length",),
    }


def test_parameters_left_out_of_the_request_are_left_out_of_the_span() -> None:
    span = _recorded("embeddings", "gemini", "gemini-embedding-001")
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert "gen_ai.request.max_tokens" not in attributes
    assert "gen_ai.request.temperature" not in attributes


def test_every_family_has_a_provider_name() -> None:
    from llmbus.providers.adapters import FAMILIES

    assert set(FAMILIES) <= set(genai.PROVIDER_NAMES)
