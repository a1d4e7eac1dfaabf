"""Upstream errors: what an adapter or the HTTP client reports. httpx2 exceptions never
pass `llmbus.providers.http`.

    UpstreamError                   status (HTTP status the client should see), code, message, retryable
    ├── UpstreamUnreachable         connect or network failure (502, retryable)
    ├── UpstreamTimeout             no answer in time (504, retryable)
    ├── UpstreamStatus              the upstream answered with an error status
    ├── UpstreamProtocolError       the upstream's output cannot be parsed (502)
    ├── Unsupported                 the request asks for what the provider cannot express (400)
    └── CredentialUnavailable       no usable token: minting or refreshing it failed (503, retryable)
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

__all__ = [
    "CredentialUnavailable",
    "Unsupported",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamStatus",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "parse_retry_after",
]


class UpstreamError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        code: str = "upstream_error",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after


class UpstreamUnreachable(UpstreamError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=502, code="upstream_unreachable", retryable=True)


class UpstreamTimeout(UpstreamError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=504, code="upstream_timeout", retryable=True)


class UpstreamStatus(UpstreamError):
    """`upstream_status` is what the provider answered; `status` what our client sees:
    upstream 5xx becomes 502, 429 stays 429, other 4xx keep their status."""

    def __init__(
        self, upstream_status: int, message: str, *, code: str = "", retry_after: float | None = None
    ) -> None:
        self.upstream_status = upstream_status
        status = 502 if upstream_status >= 500 else upstream_status
        super().__init__(
            message,
            status=status,
            code=code or f"upstream_{upstream_status}",
            retryable=upstream_status == 429 or upstream_status >= 500 or upstream_status == 408,
            retry_after=retry_after,
        )


class UpstreamProtocolError(UpstreamError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=502, code="upstream_protocol_error", retryable=False)


class Unsupported(UpstreamError):
    """A request the target cannot express (a parameter it rejects, an image for a model
    without vision, ...): refused with a clear 400 instead of being dropped silently."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, status=400, code="unsupported_by_provider", retryable=False)
        self.param = param


class CredentialUnavailable(UpstreamError):
    """The credential could not be turned into a usable token. `upstream_status` is what
    the token service answered (401/403: the credential itself was refused), 0 when it
    could not be reached. Retryable: another credential may work."""

    def __init__(self, message: str, *, upstream_status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(
            message, status=503, code="credential_unavailable", retryable=True, retry_after=retry_after
        )
        self.upstream_status = upstream_status


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header: delay-seconds or an HTTP date; None when
    absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
