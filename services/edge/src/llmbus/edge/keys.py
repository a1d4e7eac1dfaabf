"""Client key checks: hashed here, verified by auth over the bus, cached briefly.

Only the key's SHA-256 leaves this process. Revocations from auth drop cache entries at
once; an entry never outlives its key's expiry, which is checked on every request.

Keys stay known under load and through auth's or Redis's troubles:
- the config file's keys are known here, without asking auth (they are valid even when
  Redis has just restarted empty and auth has not written them again yet);
- however many requests arrive with one key, one check of it is in flight at a time;
- a valid entry is checked again in the background during the last fifth of its life, so
  no request waits at its expiry;
- when auth cannot answer, a key it accepted before keeps working for `grace` seconds."""

from __future__ import annotations

import asyncio
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
    def __init__(self, bus: Bus, ttl: float, grace: float = 300.0) -> None:
        self._bus = bus
        self._ttl = ttl
        self._grace = grace
        self._entries: dict[str, tuple[float, float, Caller | None]] = {}
        """key hash → (fresh until, checked at, caller or None for an invalid key)."""
        self._checks: dict[str, asyncio.Task[Caller | None]] = {}
        self._config: dict[str, Caller] = {}

    async def start(self) -> None:
        await self._bus.subscribe(AUTH_KEY_EVENTS, self._on_event)

    def set_config_keys(self, keys: list[tuple[str, str]]) -> None:
        """The config file's `(key, name)` pairs: valid here without asking auth, with
        the id auth gives them."""
        config: dict[str, Caller] = {}
        for key, name in keys:
            key_hash = hashlib.sha256(key.encode()).hexdigest()
            config[key_hash] = Caller(client=Client(id=f"key_{key_hash[:12]}", name=name))
        self._config = config

    async def _on_event(self, event: KeyEvent, _: Delivery) -> None:
        self._entries.pop(event.key_hash, None)

    async def verify(self, key: str) -> Caller:
        key_hash = hashlib.sha256(key.encode()).hexdigest()
        caller = self._config.get(key_hash)
        if caller is None:
            caller = await self._cached_or_checked(key_hash)
        if caller is None:
            raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
        if caller.expires_at and caller.expires_at <= time.time():
            self._entries.pop(key_hash, None)
            raise AuthenticationFailed("This API key has expired.", code="expired_api_key")
        return caller

    async def _cached_or_checked(self, key_hash: str) -> Caller | None:
        now = time.monotonic()
        cached = self._entries.get(key_hash)
        if cached is not None and cached[0] > now:
            fresh_until, checked_at, caller = cached
            if caller is not None and now > fresh_until - (fresh_until - checked_at) / 5:
                self._check(key_hash)  # ahead of expiry, in the background
            return caller
        try:
            return await asyncio.shield(self._check(key_hash))
        except Unavailable:
            if cached is not None and cached[2] is not None and now - cached[1] < self._grace:
                return cached[2]  # auth is away: a key it accepted a moment ago still is
            raise

    def _check(self, key_hash: str) -> asyncio.Task[Caller | None]:
        """The one check of `key_hash` in flight, started when there is none."""
        task = self._checks.get(key_hash)
        if task is None:
            task = asyncio.create_task(self._ask(key_hash))
            self._checks[key_hash] = task
            task.add_done_callback(lambda _: self._checks.pop(key_hash, None))
            # A background check that fails is only retried by the next request.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _ask(self, key_hash: str) -> Caller | None:
        try:
            reply = await self._bus.request(AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash=key_hash), timeout=2.0)
        except RemoteError as exc:
            raise Unavailable(f"cannot check the API key: {exc.message}", code=exc.code) from None
        except BusFailure:
            raise Unavailable(
                "cannot check the API key: the auth service is unavailable", code="auth_unavailable"
            ) from None
        caller = Caller.of(reply)
        now = time.monotonic()
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (now + min(self._ttl, reply.ttl), now, caller)
        return caller
