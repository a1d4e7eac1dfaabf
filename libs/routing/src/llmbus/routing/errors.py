"""Routing errors.

RoutingError              status, code, message, retry_after
├── UnknownModel          no provider serves the model, or it is excluded (404)
├── UnsupportedRequest    providers serve it, none with what the request needs (400)
├── RateLimited           every credential that could serve it is cooling down (429)
└── NoRoute               a provider serves it, but none can take it now (503)
"""

from __future__ import annotations

__all__ = ["NoRoute", "RateLimited", "RoutingError", "UnknownModel", "UnsupportedRequest"]


class RoutingError(Exception):
    status = 500
    code = "routing_error"

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, retry_after: float = 0.0
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class UnknownModel(RoutingError):
    status = 404
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist or you do not have access to it.")
        self.model = model


class UnsupportedRequest(RoutingError):
    status = 400
    code = "unsupported_capability"


class RateLimited(RoutingError):
    status = 429
    code = "rate_limited"


class NoRoute(RoutingError):
    status = 503
    code = "no_provider_available"
