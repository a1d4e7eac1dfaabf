"""The provider management API of the spec. Reads are open to client keys and answered
by a router; the one write (`PUT …/enabled`) needs the management key and goes to auth,
which stores it in Redis and broadcasts it to every router."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from llmbus.api import InvalidRequest
from llmbus.edge import admin
from llmbus.edge.deps import Authenticated, Context, Manager
from llmbus.proto import RegistryQuery

__all__ = ["router"]

router = APIRouter()
_encode = msgspec.json.Encoder().encode


class _Enabled(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool


@router.get("/v1/providers")
async def list_providers(context: Context, _: Authenticated, type: str = "") -> Response:
    return await context.registry.query(
        RegistryQuery(kind="providers", params={"type": type} if type else {})
    )


@router.get("/v1/providers/{name}")
async def get_provider(name: str, context: Context, _: Authenticated) -> Response:
    return await context.registry.query(RegistryQuery(kind="provider", name=name))


@router.get("/v1/providers/{name}/models")
async def provider_models(name: str, context: Context, _: Authenticated) -> Response:
    return await context.registry.query(RegistryQuery(kind="provider_models", name=name))


@router.get("/v1/providers/{name}/capabilities")
async def provider_capabilities(name: str, context: Context, _: Authenticated) -> Response:
    return await context.registry.query(RegistryQuery(kind="provider_capabilities", name=name))


@router.get("/v1/providers/{name}/status")
async def provider_status(name: str, context: Context, _: Authenticated) -> Response:
    return await context.registry.query(RegistryQuery(kind="provider_status", name=name))


@router.put("/v1/providers/{name}/enabled")
async def set_enabled(name: str, request: Request, context: Context, actor: Manager) -> Response:
    try:
        wanted = msgspec.json.decode(await request.body(), type=_Enabled)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f'Expected a JSON body {{"enabled": true|false}}: {exc}', param="enabled"
        ) from None
    event = await admin.toggle_provider(context.bus, name, enabled=wanted.enabled, actor=actor)
    document = {"provider": event.provider, "enabled": event.enabled, "changed_at": event.at}
    return Response(_encode(document), media_type="application/json")


@router.delete("/v1/providers/{name}/cooldowns")
async def clear_cooldowns(
    name: str, context: Context, actor: Manager, credential: str = "", model: str = ""
) -> Response:
    """End the provider's credential rests now on every router: all of them, or those of
    one credential and/or one upstream model."""
    cleared = await admin.clear_cooldowns(context.bus, name, actor, credential=credential, model=model)
    document = {
        "provider": cleared.provider,
        "credential": cleared.credential or None,
        "model": cleared.model or None,
        "cleared": cleared.cleared,
    }
    return Response(_encode(document), media_type="application/json")


@router.get("/v1/capabilities")
async def capabilities(
    context: Context,
    _: Authenticated,
    model: Annotated[str, Query()] = "",
    feature: Annotated[str, Query()] = "",
) -> Response:
    params = {k: v for k, v in (("model", model), ("feature", feature)) if v}
    return await context.registry.query(RegistryQuery(kind="capabilities", params=params))


@router.get("/v1/metrics/providers")
async def provider_metrics(context: Context, _: Authenticated, provider: str = "") -> Response:
    return await context.registry.query(
        RegistryQuery(kind="metrics", params={"provider": provider} if provider else {})
    )
