"""Client keys at run time, behind the management key; answered by auth.

    POST   /v1/keys              a new key: 201 with the key itself, shown this once
    GET    /v1/keys              every key by id and prefix (`?include_revoked=true`)
    GET    /v1/keys/{id}/usage   requests and tokens, in total, per model and per UTC day
    DELETE /v1/keys/{id}         revoked on every edge within a second

Keys from the config file are listed too; revoking one is a 409 (the file owns it)."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from llmbus.api import InvalidRequest
from llmbus.edge import admin
from llmbus.edge.deps import Context, Manager
from llmbus.proto import (
    AUTH_KEYS_USAGE,
    ClientLimits,
    KeyCreate,
    KeyInfo,
    KeyUsageRequest,
    UsageCounts,
)

__all__ = ["router"]

router = APIRouter()
_encode = msgspec.json.Encoder().encode


_COUNT_MAX = 2**31 - 1
"""Limits beyond any real use, and within what the bus encodes: larger is a clear 400."""


class NewKey(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of `POST /v1/keys`; every field is optional."""

    name: str = ""
    owner: str = ""
    rpm: Annotated[int, msgspec.Meta(ge=0, le=_COUNT_MAX)] = 0
    tpm: Annotated[int, msgspec.Meta(ge=0, le=_COUNT_MAX)] = 0
    max_tokens: Annotated[int, msgspec.Meta(ge=0, le=_COUNT_MAX)] = 0
    models: list[str] = []
    expires_at: float | None = None
    """Unix seconds."""
    expires_in: float | None = None
    """Seconds from now."""

    def expiry(self, now: float) -> float:
        if self.expires_at is not None and self.expires_in is not None:
            raise InvalidRequest("Give `expires_at` or `expires_in`, not both.", param="expires_in")
        if self.expires_in is not None:
            if self.expires_in <= 0:
                raise InvalidRequest("`expires_in` must be a positive number of seconds.", param="expires_in")
            return now + self.expires_in
        return self.expires_at or 0.0

    def create(self, now: float, actor: str) -> KeyCreate:
        limits = ClientLimits(rpm=self.rpm, tpm=self.tpm, max_tokens=self.max_tokens, models=self.models)
        return KeyCreate(
            name=self.name, owner=self.owner, limits=limits, expires_at=self.expiry(now), actor=actor
        )


class LimitsView(msgspec.Struct):
    rpm: int
    tpm: int
    max_tokens: int
    models: list[str]


class KeyView(msgspec.Struct):
    """A key as the API shows it: never the key, only its prefix."""

    id: str
    prefix: str
    name: str
    owner: str
    limits: LimitsView
    created_at: float
    expires_at: float | None
    revoked: bool
    source: str

    @classmethod
    def of(cls, info: KeyInfo) -> KeyView:
        limits = info.limits
        return cls(
            id=info.id,
            prefix=info.prefix,
            name=info.name,
            owner=info.owner,
            limits=LimitsView(limits.rpm, limits.tpm, limits.max_tokens, limits.models),
            created_at=info.created_at,
            expires_at=info.expires_at or None,
            revoked=info.revoked,
            source=info.source,
        )


class CreatedView(KeyView):
    key: str
    """The key itself: shown in this answer only."""


class KeyListView(msgspec.Struct):
    data: list[KeyView]
    object: str = "list"


class CountsView(msgspec.Struct):
    requests: int
    input_tokens: int
    output_tokens: int

    @classmethod
    def of(cls, counts: UsageCounts) -> CountsView:
        return cls(counts.requests, counts.input_tokens, counts.output_tokens)


class UsageView(msgspec.Struct):
    id: str
    days: int
    total: CountsView
    by_model: dict[str, CountsView]
    by_day: dict[str, CountsView]


def _json(document: object, status: int = 200) -> Response:
    return Response(_encode(document), status_code=status, media_type="application/json")


@router.post("/v1/keys")
async def create_key(request: Request, context: Context, actor: Manager) -> Response:
    try:
        body = msgspec.json.decode(await request.body() or b"{}", type=NewKey)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"Invalid key request: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise InvalidRequest("The body is not valid JSON.") from None
    created = await admin.create_key(context.bus, body.create(time.time(), actor))
    view = KeyView.of(created.info)
    document = CreatedView(**msgspec.structs.asdict(view), key=created.key)
    return _json(document, status=201)


@router.get("/v1/keys")
async def list_keys(context: Context, _: Manager, include_revoked: bool = False) -> Response:
    listing = await admin.list_keys(context.bus, include_revoked=include_revoked)
    return _json(KeyListView(data=[KeyView.of(info) for info in listing]))


@router.get("/v1/keys/{key_id}/usage")
async def key_usage(
    key_id: str, context: Context, _: Manager, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> Response:
    with admin.asking_auth():
        usage = await context.bus.request(AUTH_KEYS_USAGE, KeyUsageRequest(id=key_id, days=days), timeout=3)
    return _json(
        UsageView(
            id=usage.id,
            days=days,
            total=CountsView.of(usage.total),
            by_model={model: CountsView.of(c) for model, c in usage.by_model.items()},
            by_day={day: CountsView.of(c) for day, c in usage.by_day.items()},
        )
    )


@router.delete("/v1/keys/{key_id}")
async def revoke_key(key_id: str, context: Context, actor: Manager) -> Response:
    info = await admin.revoke_key(context.bus, key_id, actor)
    return _json(KeyView.of(info))
