"""Client-facing errors and their wire bodies.

    ApiError                  status, type, code, message, param
    ├── InvalidRequest        400 invalid_request_error
    ├── AuthenticationFailed  401 authentication_error
    ├── PermissionDenied      403 permission_error
    ├── NotFound              404 not_found_error (unknown model, provider)
    ├── RateLimited           429 rate_limit_error
    ├── UpstreamFailed        502 upstream_error (the provider failed)
    ├── Unavailable           503 service_unavailable (no worker, no capacity)
    └── GatewayTimeout        504 timeout

Handlers raise these; one table per client dialect turns them into a response body.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ApiError",
    "AuthenticationFailed",
    "GatewayTimeout",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Unavailable",
    "UpstreamFailed",
    "error_from_status",
    "openai_error_body",
]


class ApiError(Exception):
    status = 500
    type = "api_error"
    default_code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class InvalidRequest(ApiError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class AuthenticationFailed(ApiError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(ApiError):
    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class NotFound(ApiError):
    status = 404
    type = "not_found_error"
    default_code = "not_found"


class RateLimited(ApiError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamFailed(ApiError):
    status = 502
    type = "upstream_error"
    default_code = "upstream_error"


class Unavailable(ApiError):
    status = 503
    type = "service_unavailable"
    default_code = "service_unavailable"


class GatewayTimeout(ApiError):
    status = 504
    type = "timeout_error"
    default_code = "timeout"


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    429: RateLimited,
    502: UpstreamFailed,
    503: Unavailable,
    504: GatewayTimeout,
}


def error_from_status(status: int, message: str, code: str = "", retry_after: float = 0.0) -> ApiError:
    """The ApiError for a status carried on the bus."""
    cls = _BY_STATUS.get(status, ApiError)
    return cls(message, code=code or None, status=status, retry_after=retry_after or None)


class _ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail


_encode = msgspec.json.Encoder().encode


def openai_error_body(error: ApiError) -> bytes:
    """`{"error": {"message", "type", "param", "code"}}`."""
    return _encode(_ErrorBody(_ErrorDetail(error.message, error.type, error.param, error.code)))
