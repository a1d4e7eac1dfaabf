"""Logging set-up: JSON lines or plain text, with the trace and request ids, and secret
redaction.

`LLMBUS_LOG_FORMAT` chooses the format: `json` (the default: one JSON object per line with
`time`, `level`, `service`, `logger`, `message`, and `trace_id`, `span_id` when a span is
current, `request_id` when a request is being handled, `exc` for a traceback) or `text`
(for humans; `make run` uses it). Every record passes through a filter that masks anything
shaped like an API key or a bearer token, so a secret that slips into a message never
reaches the log (a last line of defence: code must not log secrets in the first place).

`LLMBUS_LOG_REQUESTS=1` adds one line per finished HTTP request at the edge (logger
`llmbus.requests`: method, path, status, duration, model, request id; never a body).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

from opentelemetry import trace

from llmbus.telemetry.requests import current_request

__all__ = ["JsonFormatter", "TextFormatter", "log_requests", "redact", "setup_logging"]

_SECRET = re.compile(
    r"(?P<bearer>(?i:bearer)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:sk|pk|rk|gho|ghu|ghp|ghr|ghs|github_pat|xai|AIza)[-_A-Za-z0-9]{12,}"
    r"|\baor[A-Za-z0-9]{20,}"
    r"|\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}\b"
    r"|(?P<aws>(?i:aws_?secret_?access_?key|aws_?session_?token|secretaccesskey|sessiontoken)"
    r"[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{16,}"
)


def redact(text: str) -> str:
    """`text` with API keys, bearer tokens and AWS keys replaced by `[redacted]`."""
    return _SECRET.sub(lambda m: (m.group("bearer") or m.group("aws") or "") + "[redacted]", text)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _ids() -> tuple[str | None, str | None, str | None]:
    """The current trace id, span id and request id, each when known."""
    trace_id = span_id = None
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    info = current_request()
    return trace_id, span_id, info.id if info is not None else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id, span_id, request_id = _ids()
        if trace_id:
            line["trace_id"], line["span_id"] = trace_id, span_id
        if request_id:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """Plain text for humans, with the request id (and the trace id) when known."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        trace_id, _, request_id = _ids()
        tags = [f"request_id={request_id}"] if request_id else []
        if trace_id:
            tags.append(f"trace_id={trace_id}")
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            tags += [f"{key}={value}" for key, value in fields.items()]
        if not tags:
            return redact(text)
        first, newline, rest = text.partition("\n")
        return redact(f"{first} [{' '.join(tags)}]{newline}{rest}")


def log_format() -> str:
    """`json` or `text`, from `LLMBUS_LOG_FORMAT` (json when unset or unknown)."""
    return "text" if os.environ.get("LLMBUS_LOG_FORMAT", "").strip().lower() == "text" else "json"


def log_requests() -> bool:
    """Whether the edge logs a line per finished request (`LLMBUS_LOG_REQUESTS`)."""
    return os.environ.get("LLMBUS_LOG_REQUESTS", "").strip().lower() in ("1", "true", "yes", "on")


def setup_logging(service: str, level: str = "info", fmt: str | None = None) -> None:
    """Log to stderr in `fmt` (`json` or `text`; `LLMBUS_LOG_FORMAT` when None)."""
    handler = logging.StreamHandler(sys.stderr)
    chosen = fmt or log_format()
    handler.setFormatter(JsonFormatter(service) if chosen == "json" else TextFormatter(service))
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "nats"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
