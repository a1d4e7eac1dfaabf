"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llmbus.api import AuthenticationFailed, PermissionDenied
from llmbus.edge.context import EdgeContext
from llmbus.proto import Client

__all__ = ["Authenticated", "Context", "Manager", "api_key_of"]


async def _context(request: Request) -> EdgeContext:
    # async: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    context: EdgeContext = request.app.state.context
    return context


Context = Annotated[EdgeContext, Depends(_context)]


def api_key_of(request: Request) -> str | None:
    """The client key from `Authorization: Bearer …` or `x-api-key`."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


async def _client(request: Request, context: Context) -> Client:
    key = api_key_of(request)
    if not key:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`.",
            code="missing_api_key",
        )
    return await context.keys.verify(key)


Authenticated = Annotated[Client, Depends(_client)]


async def _manager(request: Request, context: Context) -> str:
    """Writes of the management API need the management key from the config file,
    as `Authorization: Bearer`, `x-api-key` or `x-management-key`."""
    key = request.headers.get("x-management-key") or api_key_of(request)
    if not context.management.configured:
        raise PermissionDenied(
            "The management API is read-only: set `management-key` in the config file to allow changes.",
            code="management_disabled",
        )
    if not key:
        raise AuthenticationFailed("This call needs the management key.", code="missing_management_key")
    if not context.management.matches(key):
        raise PermissionDenied("This call needs the management key.", code="invalid_management_key")
    return "management"


Manager = Annotated[str, Depends(_manager)]
