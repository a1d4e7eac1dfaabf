"""The management calls the edge makes on the bus, shared by the JSON management API
(`routes/keys.py`, `routes/providers.py`) and the web console (`console/`): one place
asks auth to create, list and revoke keys, switch providers, clear cooldowns and report
usage, and turns its failures into API errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from llmbus.api import ApiError, InvalidRequest
from llmbus.bus import Bus
from llmbus.edge.bus_errors import answered_by
from llmbus.proto import (
    AUTH_COOLDOWN_CLEAR,
    AUTH_KEYS_CREATE,
    AUTH_KEYS_LIST,
    AUTH_KEYS_REVOKE,
    AUTH_PROVIDER_TOGGLE,
    AUTH_USAGE_QUERY,
    CooldownClear,
    CooldownCleared,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyListRequest,
    KeyRevoke,
    ProviderEnabled,
    ProviderToggle,
    UsageDimension,
    UsageQuery,
    UsageReport,
)

__all__ = [
    "asking_auth",
    "clear_cooldowns",
    "create_key",
    "list_keys",
    "revoke_key",
    "toggle_provider",
    "usage_report",
]

_TIMEOUT = 3.0


@contextmanager
def asking_auth() -> Iterator[None]:
    """Bus failures as `answered_by` maps them; a conflict (a config key) stays a 409,
    said as an invalid request rather than a server error."""
    try:
        with answered_by("auth"):
            yield
    except ApiError as exc:
        if exc.status == 409:
            raise InvalidRequest(exc.message, code=exc.code, status=409) from None
        raise


async def create_key(bus: Bus, create: KeyCreate) -> KeyCreated:
    with asking_auth():
        return await bus.request(AUTH_KEYS_CREATE, create, timeout=_TIMEOUT)


async def list_keys(bus: Bus, *, include_revoked: bool) -> list[KeyInfo]:
    with asking_auth():
        listing = await bus.request(
            AUTH_KEYS_LIST, KeyListRequest(include_revoked=include_revoked), timeout=_TIMEOUT
        )
    return listing.keys


async def revoke_key(bus: Bus, key_id: str, actor: str) -> KeyInfo:
    with asking_auth():
        return await bus.request(AUTH_KEYS_REVOKE, KeyRevoke(id=key_id, actor=actor), timeout=_TIMEOUT)


async def toggle_provider(bus: Bus, provider: str, *, enabled: bool, actor: str) -> ProviderEnabled:
    with answered_by("auth"):
        return await bus.request(
            AUTH_PROVIDER_TOGGLE,
            ProviderToggle(provider=provider, enabled=enabled, actor=actor),
            timeout=_TIMEOUT,
        )


async def clear_cooldowns(
    bus: Bus, provider: str, actor: str, *, credential: str = "", model: str = ""
) -> CooldownCleared:
    """End the provider's credential rests now on every router (so that the next
    request probes the upstream again): all of them, or those of one credential and/or
    one upstream model."""
    with answered_by("auth"):
        return await bus.request(
            AUTH_COOLDOWN_CLEAR,
            CooldownClear(provider=provider, credential=credential, model=model, actor=actor),
            timeout=_TIMEOUT,
        )


async def usage_report(bus: Bus, by: UsageDimension, days: int) -> UsageReport:
    """Auth's daily aggregates of the last `days` UTC days, grouped by `by`."""
    with answered_by("auth"):
        return await bus.request(AUTH_USAGE_QUERY, UsageQuery(by=by, days=days), timeout=5)
