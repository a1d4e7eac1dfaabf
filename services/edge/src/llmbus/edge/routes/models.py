"""`GET /v1/models` (OpenAI's list shape, every routable name with its aliases and
prefixes, `?provider=` to narrow it) and `GET /v1/models/{model}`; answered by a router."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from llmbus.edge.deps import Authenticated, Context
from llmbus.proto import RegistryQuery

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/models")
async def list_models(context: Context, _: Authenticated, provider: str = "") -> Response:
    params = {"provider": provider} if provider else {}
    return await context.registry.query(RegistryQuery(kind="models", params=params))


@router.get("/v1/models/{model:path}")
async def get_model(model: str, context: Context, _: Authenticated) -> Response:
    return await context.registry.query(RegistryQuery(kind="model", name=model))
