"""Credential rests, as auth keeps them: what workers announce on
`auth.v1.events.cooldowns` (routers hear it at the same moment), lengthened while the
upstream keeps refusing, recovered, or cleared through the management API.

    worker ──Cooldown──▶ routers (rest now, for the announced time)
           └─────────────▶ auth ──(n-th refusal in a row)──▶ control.v1.cooldowns ──▶ routers
    worker ──Cooldown(until=0)──▶ routers (probation over) and auth (streak forgotten)
    edge ──CooldownClear──▶ auth ──▶ control.v1.cooldowns.cleared ──▶ routers, workers

Routers rest a credential on the worker's word even when auth is down; auth only ever
lengthens a rest, never shortens one it did not clear.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import Counter

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.auth.runtime import RuntimeStore
from llmbus.bus import Bus, BusFailure, Delivery
from llmbus.config import CooldownConfig
from llmbus.proto import (
    AUTH_COOLDOWN_CLEAR,
    CONTROL_COOLDOWNS,
    CONTROL_COOLDOWNS_CLEARED,
    BusError,
    Cooldown,
    CooldownClear,
    CooldownCleared,
)

__all__ = ["CooldownHandlers"]

log = logging.getLogger(__name__)

COOLDOWNS = Counter("llmbus_auth_cooldowns_total", "Credential cooldowns recorded", ["provider", "kind"])

_STORE_DOWN = BusError(
    status=503, code="auth_store_unavailable", message="the auth store (Redis) is unavailable"
)


class CooldownHandlers:
    def __init__(self, bus: Bus, runtime: RuntimeStore, policies: Mapping[str, CooldownConfig]) -> None:
        self.bus = bus
        self.runtime = runtime
        self.policies = policies
        """Each configured provider's cooldown policy; replaced on reload."""

    async def record(self, cooldown: Cooldown, _: Delivery) -> None:
        """`auth.v1.events.cooldowns` (queue group `auth`): keep, lengthen or forget a rest."""
        who = f"{cooldown.provider}/{cooldown.credential}"
        if not cooldown.until:
            COOLDOWNS.labels(cooldown.provider, "recovered").inc()
            try:
                await self.runtime.clear_cooldowns(cooldown.provider, cooldown.credential, cooldown.model)
            except KeyStoreUnavailable:
                log.warning("cannot forget the rest of %s", who)
            return
        COOLDOWNS.labels(cooldown.provider, "rate_limited" if cooldown.model else "refused").inc()
        policy = self.policies.get(cooldown.provider, CooldownConfig())
        try:
            kept = await self.runtime.record_refusal(cooldown, policy.max_seconds)
        except KeyStoreUnavailable:
            log.warning("cannot store the cooldown of %s", who)
            return
        if kept.until > cooldown.until:
            log.info(
                "credential %s%s refused again: resting until %.0f",
                who,
                f" ({cooldown.model})" if cooldown.model else "",
                kept.until,
            )
            try:
                await self.bus.publish(CONTROL_COOLDOWNS, kept, traced=False)
            except BusFailure:
                log.warning("cannot announce the longer rest of %s", who)

    async def clear(self, request: CooldownClear, delivery: Delivery) -> None:
        """`auth.v1.cooldowns.clear`: end rests now, on every router."""
        if request.provider not in self.policies:
            await self.bus.respond_error(
                delivery,
                BusError(
                    status=404, code="provider_not_found", message=f"No provider named `{request.provider}`."
                ),
            )
            return
        try:
            cleared = await self.runtime.clear_cooldowns(request.provider, request.credential, request.model)
        except KeyStoreUnavailable:
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        event = CooldownCleared(
            provider=request.provider, credential=request.credential, model=request.model, cleared=cleared
        )
        await self.bus.publish(CONTROL_COOLDOWNS_CLEARED, event)
        log.info(
            "cooldowns of %s cleared by %s (credential %s, model %s): %d",
            request.provider,
            request.actor or "unknown",
            request.credential or "all",
            request.model or "all",
            cleared,
        )
        await self.bus.respond(delivery, AUTH_COOLDOWN_CLEAR, event)
