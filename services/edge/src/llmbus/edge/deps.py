"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llmbus.api import AuthenticationFailed
from llmbus.edge.context import EdgeContext
from llmbus.proto import Client

__all__ = ["Authenticated", "Context", "api_key_of"]


def _context(request: Request) -> EdgeContext:
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
