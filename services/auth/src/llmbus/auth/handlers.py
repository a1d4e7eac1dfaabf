"""Auth request handlers."""

from __future__ import annotations

from llmbus.auth.keys import KeyStore, KeyStoreUnavailable
from llmbus.bus import Bus, Delivery
from llmbus.proto import AUTH_KEY_VERIFY, BusError, KeyVerifyReply, KeyVerifyRequest

__all__ = ["AuthHandlers"]


class AuthHandlers:
    def __init__(self, bus: Bus, keys: KeyStore, cache_ttl: float = 30.0) -> None:
        self.bus = bus
        self.keys = keys
        self.cache_ttl = cache_ttl

    async def verify_key(self, request: KeyVerifyRequest, delivery: Delivery) -> None:
        try:
            client = await self.keys.lookup(request.key_hash)
        except KeyStoreUnavailable:
            await self.bus.respond_error(
                delivery,
                BusError(status=503, code="auth_store_unavailable", message="the key store is unavailable"),
            )
            return
        reply = KeyVerifyReply(valid=client is not None, client=client, ttl=self.cache_ttl if client else 5.0)
        await self.bus.respond(delivery, AUTH_KEY_VERIFY, reply)
