"""Client key checks: hashed here, verified by auth over the bus, cached briefly.

Only the key's SHA-256 leaves this process. Revocations from auth drop cache entries at
once; an entry never outlives its key's expiry, which is checked on every request."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from llmbus.api import AuthenticationFailed, Unavailable
from llmbus.bus import Bus, BusFailure, Delivery, RemoteError
from llmbus.proto import (
    AUTH_KEY_EVENTS,
    AUTH_KEY_VERIFY,
    Client,
    ClientLimits,
    KeyEvent,
    KeyVerifyReply,
    KeyVerifyRequest,
)

__all__ = ["Caller", "KeyCache"]

_MAX_ENTRIES = 10_000
_NO_LIMITS = ClientLimits()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, and what their key allows (the relay enforces `limits`)."""

    client: Client
    limits: ClientLimits = _NO_LIMITS
    expires_at: float = 0.0
    """Unix seconds; 0: never."""

    @classmethod
    def of(cls, reply: KeyVerifyReply) -> Caller | None:
        if not reply.valid or reply.client is None:
            return None
        return cls(client=reply.client, limits=reply.limits, expires_at=reply.expires_at)


class KeyCache:
    def __init__(self, bus: Bus, ttl: float) -> None:
        self._bus = bus
        self._ttl = ttl
        self._entries: dict[str, tuple[float, Caller | None]] = {}

    async def start(self) -> None:
        await self._bus.subscribe(AUTH_KEY_EVENTS, self._on_event)

    async def _on_event(self, event: KeyEvent, _: Delivery) -> None:
        self._entries.pop(event.key_hash, None)

    async def verify(self, key: str) -> Caller:
        key_hash = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        cached = self._entries.get(key_hash)
        if cached is not None and cached[0] > now:
            caller = cached[1]
        else:
            try:
                reply = await self._bus.request(
                    AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash=key_hash), timeout=2.0
                )
            except RemoteError as exc:
                raise Unavailable(f"cannot check the API key: {exc.message}", code=exc.code) from None
            except BusFailure:
                raise Unavailable(
                    "cannot check the API key: the auth service is unavailable", code="auth_unavailable"
                ) from None
            caller = Caller.of(reply)
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = (now + min(self._ttl, reply.ttl), caller)
        if caller is None:
            raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
        if caller.expires_at and caller.expires_at <= time.time():
            self._entries.pop(key_hash, None)
            raise AuthenticationFailed("This API key has expired.", code="expired_api_key")
        return caller
