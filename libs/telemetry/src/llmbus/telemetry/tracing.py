"""OpenTelemetry set-up and W3C trace-context propagation.

The SDK is configured by the standard `OTEL_*` variables. Spans are exported over OTLP
when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set or
`OTEL_TRACES_EXPORTER` names `otlp`; otherwise the tracer provider is a no-op: a span
costs nothing but carries its parent's context, so a client's `traceparent` still crosses
every hop, and nothing is recorded. Sample with the standard `OTEL_TRACES_SAMPLER`
(`parentbased_traceidratio`) and `OTEL_TRACES_SAMPLER_ARG` when exporting under load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

__all__ = ["extract", "inject", "recording", "setup_tracing", "shutdown_tracing", "tracer"]

_provider: trace.TracerProvider | None = None


def setup_tracing(service: str) -> trace.TracerProvider:
    """Install the global tracer provider for this process (once): the SDK's with an OTLP
    exporter when exporting, a no-op one otherwise (an SDK span that goes nowhere costs
    about 15 µs to create and end)."""
    global _provider
    if _provider is not None:
        return _provider
    if not _exporting():
        _provider = trace.NoOpTracerProvider()
        trace.set_tracer_provider(_provider)
        return _provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    name = os.environ.get("OTEL_SERVICE_NAME") or f"llmbus-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the exporter."""
    global _provider
    if isinstance(_provider, TracerProvider):
        _provider.shutdown()
    _provider = None


def recording() -> bool:
    """Whether this process records spans (it exports them). When it does not, a span
    would only carry its parent's context, and a hot path may carry the context alone."""
    return isinstance(_provider, TracerProvider)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject(headers: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, `tracestate`)."""
    carrier: dict[str, str] = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str] | None) -> context.Context:
    """The trace context carried by message or HTTP headers."""
    return propagate.extract(headers or {})


def _exporting() -> bool:
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "")
    if exporters:
        return "otlp" in exporters.split(",")
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
