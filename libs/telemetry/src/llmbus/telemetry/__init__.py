"""llmbus telemetry: tracing, logging with redaction, metrics endpoint."""

from llmbus.telemetry.http import serve_metrics
from llmbus.telemetry.logs import redact, setup_logging
from llmbus.telemetry.refs import credential_ref
from llmbus.telemetry.requests import bind_request_id, request_id
from llmbus.telemetry.tracing import extract, inject, recording, setup_tracing, shutdown_tracing, tracer

__all__ = [
    "bind_request_id",
    "credential_ref",
    "extract",
    "inject",
    "recording",
    "redact",
    "request_id",
    "serve_metrics",
    "setup_logging",
    "setup_tracing",
    "shutdown_tracing",
    "tracer",
]
