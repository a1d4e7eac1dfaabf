"""`GET /v1/models` in OpenAI's list shape."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter
from fastapi.responses import Response

from llmbus.api import NotFound
from llmbus.edge.deps import Authenticated, Context

__all__ = ["router"]

router = APIRouter()

_CREATED = 1_700_000_000


class ModelObject(msgspec.Struct):
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(msgspec.Struct):
    object: str
    data: list[ModelObject]


_encode = msgspec.json.Encoder().encode


def _listing(context: Context) -> list[ModelObject]:
    return [
        ModelObject(route.model, "model", _CREATED, route.offers[0].provider.name)
        for route in context.catalog.models()
    ]


@router.get("/v1/models")
async def list_models(context: Context, _: Authenticated) -> Response:
    return Response(_encode(ModelList("list", _listing(context))), media_type="application/json")


@router.get("/v1/models/{model:path}")
async def get_model(model: str, context: Context, _: Authenticated) -> Response:
    for item in _listing(context):
        if item.id == model:
            return Response(_encode(item), media_type="application/json")
    raise NotFound(
        f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
    )
