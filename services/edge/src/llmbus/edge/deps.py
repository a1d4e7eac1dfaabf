"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from llmbus.api import AuthenticationFailed, PermissionDenied, RateLimited
from llmbus.edge.bus_errors import answered_by
from llmbus.edge.context import EdgeContext
from llmbus.edge.keys import Caller
from llmbus.proto import AUTH_MANAGEMENT_ATTEMPT, ManagementAttempt

__all__ = [
    "Authenticated",
    "Context",
    "Manager",
    "admit",
    "api_key_of",
    "authenticate",
    "check_management_key",
]


async def _context(request: Request) -> EdgeContext:
    # async: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    context: EdgeContext = request.app.state.context
    return context


Context = Annotated[EdgeContext, Depends(_context)]


def api_key_of(headers: Mapping[str, str]) -> str | None:
    """The client key from `Authorization: Bearer …`, `x-api-key` or (Gemini's)
    `x-goog-api-key` (header names in lower case)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or None


async def authenticate(context: EdgeContext, headers: Mapping[str, str]) -> Caller:
    """The caller whose client key the request carries, checked by auth (cached)."""
    key = api_key_of(headers)
    if not key:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>`, `x-api-key: <key>` "
            "or `x-goog-api-key: <key>`.",
            code="missing_api_key",
        )
    return await context.keys.verify(key)


async def _caller(request: Request, context: Context) -> Caller:
    return await authenticate(context, request.headers)


Authenticated = Annotated[Caller, Depends(_caller)]
"""The request's client and its key's limits."""


def admit(context: EdgeContext, source: str) -> None:
    """Refuse a client that the config does not let reach the management API (loopback
    only by default)."""
    if not context.management.admits(source):
        raise PermissionDenied(
            "The management API answers local clients only: allow others with "
            "`remote-management` in the config file.",
            code="management_not_local",
        )


async def check_management_key(context: EdgeContext, source: str, key: str | None) -> str:
    """The management key presented by a client at `source`, checked against the
    config's and counted by auth (a source that keeps guessing wrong is locked out on
    every edge). Returns the actor named in auth's logs; the management API and the
    console's login both ask here."""
    admit(context, source)
    if not context.management.configured:
        raise PermissionDenied(
            "The management API is read-only: set `management-key` in the config file to allow changes.",
            code="management_disabled",
        )
    if not key:
        raise AuthenticationFailed("This call needs the management key.", code="missing_management_key")
    matches = context.management.matches(key)
    # Asked on every call, the right key included: a locked-out source is refused even
    # with it, or the lockout would not slow a guesser down.
    with answered_by("auth"):
        verdict = await context.bus.request(
            AUTH_MANAGEMENT_ATTEMPT, ManagementAttempt(source=source, ok=matches), timeout=2.0
        )
    if verdict.locked:
        raise RateLimited(
            "Too many wrong management keys from this address: try again later.",
            code="management_locked_out",
            retry_after=verdict.retry_after,
        )
    if not matches:
        raise PermissionDenied("This call needs the management key.", code="invalid_management_key")
    return f"management@{source}"


async def _manager(request: Request, context: Context) -> str:
    """The management API needs the management key from the config file, as
    `Authorization: Bearer`, `x-api-key` or `x-management-key`, from a client that the
    config admits and that is not locked out (`check_management_key`)."""
    source = request.client.host if request.client else ""
    key = request.headers.get("x-management-key") or api_key_of(request.headers)
    return await check_management_key(context, source, key)


Manager = Annotated[str, Depends(_manager)]
