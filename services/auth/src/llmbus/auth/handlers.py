"""Auth request handlers: client keys, provider switches, runtime state, cooldowns."""

from __future__ import annotations

import logging
import time

import msgspec
from prometheus_client import Counter

from llmbus.auth.credentials import CredentialStore
from llmbus.auth.keys import KeyStore, KeyStoreUnavailable, verify_reply
from llmbus.auth.runtime import RuntimeStore
from llmbus.bus import Bus, Delivery
from llmbus.proto import (
    AUTH_KEY_VERIFY,
    AUTH_PROVIDER_TOGGLE,
    AUTH_STATE,
    CONTROL_PROVIDER_ENABLED,
    BusError,
    KeyVerifyRequest,
    ProviderEnabled,
    ProviderToggle,
    RuntimeStateRequest,
)

__all__ = ["AuthHandlers"]

log = logging.getLogger(__name__)

KEY_CHECKS = Counter("llmbus_auth_key_checks_total", "Client key verifications", ["result"])
TOGGLES = Counter("llmbus_auth_provider_toggles_total", "Providers switched on or off", ["enabled"])

_STORE_DOWN = BusError(
    status=503, code="auth_store_unavailable", message="the auth store (Redis) is unavailable"
)


class AuthHandlers:
    def __init__(
        self,
        bus: Bus,
        keys: KeyStore,
        runtime: RuntimeStore,
        providers: set[str],
        cache_ttl: float = 30.0,
        *,
        credentials: CredentialStore | None = None,
    ) -> None:
        self.bus = bus
        self.credentials = credentials
        """Stored credentials, whose health a starting router needs (None: none kept)."""
        self.keys = keys
        self.runtime = runtime
        self.providers = providers
        """Provider names known to the configuration; replaced on reload."""
        self.cache_ttl = cache_ttl

    async def verify_key(self, request: KeyVerifyRequest, delivery: Delivery) -> None:
        try:
            info = await self.keys.lookup(request.key_hash)
        except KeyStoreUnavailable:
            KEY_CHECKS.labels("store_unavailable").inc()
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        KEY_CHECKS.labels("valid" if info is not None else "invalid").inc()
        await self.bus.respond(delivery, AUTH_KEY_VERIFY, verify_reply(info, self.cache_ttl))

    async def toggle_provider(self, request: ProviderToggle, delivery: Delivery) -> None:
        if request.provider not in self.providers:
            await self.bus.respond_error(
                delivery,
                BusError(
                    status=404, code="provider_not_found", message=f"No provider named `{request.provider}`."
                ),
            )
            return
        try:
            await self.runtime.set_enabled(request.provider, request.enabled)
        except KeyStoreUnavailable:
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        TOGGLES.labels(str(request.enabled).lower()).inc()
        event = ProviderEnabled(provider=request.provider, enabled=request.enabled, at=time.time())
        await self.bus.publish(CONTROL_PROVIDER_ENABLED, event)
        log.info(
            "provider %s %s by %s",
            request.provider,
            "enabled" if request.enabled else "disabled",
            request.actor,
        )
        await self.bus.respond(delivery, AUTH_PROVIDER_TOGGLE, event)

    async def runtime_state(self, _: RuntimeStateRequest, delivery: Delivery) -> None:
        try:
            state = await self.runtime.state()
            if self.credentials is not None:
                state = msgspec.structs.replace(state, credentials=await self.credentials.list())
        except KeyStoreUnavailable:
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        await self.bus.respond(delivery, AUTH_STATE, state)
