"""Routing errors.

RoutingError          status, code, message
├── UnknownModel      no provider serves the model (404)
└── NoRoute           a provider serves it, but none can take it now (503 or 400)
"""

from __future__ import annotations

__all__ = ["NoRoute", "RoutingError", "UnknownModel"]


class RoutingError(Exception):
    status = 500
    code = "routing_error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
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


class NoRoute(RoutingError):
    status = 503
    code = "no_provider_available"
