"""Logging set-up with secret redaction.

Every record passes through a filter that masks anything shaped like an API key or a
bearer token, so a secret that slips into a message never reaches the log.
"""

from __future__ import annotations

import logging
import re
import sys

__all__ = ["redact", "setup_logging"]

_SECRET = re.compile(
    r"(?P<bearer>(?i:bearer)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:sk|pk|rk|gho|ghu|ghp|ghr|ghs|xai|AIza)[-_A-Za-z0-9]{12,}"
    r"|\baor[A-Za-z0-9]{20,}"
)


def redact(text: str) -> str:
    """`text` with API keys and bearer tokens replaced by `[redacted]`."""
    return _SECRET.sub(lambda m: (m.group("bearer") or "") + "[redacted]", text)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(service: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "nats"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
