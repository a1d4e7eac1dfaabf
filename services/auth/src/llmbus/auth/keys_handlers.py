"""Auth handlers for client keys at run time, their usage, and management-key attempts.

    auth.v1.keys.create|list|revoke|usage   request/reply (queue group `auth`)
    auth.v1.management.attempt              request/reply: count an attempt, lock sources out

The key store's errors become wire errors in one table (`_wire_error`); the handlers
never build a `BusError` themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from prometheus_client import Counter

from llmbus.auth.keys import (
    ConfigKeyReadOnly,
    InvalidKeyRequest,
    KeyStore,
    KeyStoreError,
    UnknownKey,
)
from llmbus.auth.lockouts import LockoutStore
from llmbus.auth.usage import UsageStore
from llmbus.bus import Bus, Delivery
from llmbus.proto import (
    AUTH_KEY_EVENTS,
    AUTH_KEYS_CREATE,
    AUTH_KEYS_LIST,
    AUTH_KEYS_REVOKE,
    AUTH_KEYS_USAGE,
    AUTH_MANAGEMENT_ATTEMPT,
    BusError,
    Endpoint,
    KeyCreate,
    KeyCreated,
    KeyEvent,
    KeyInfo,
    KeyList,
    KeyListRequest,
    KeyRevoke,
    KeyUsage,
    KeyUsageRequest,
    ManagementAttempt,
    ManagementVerdict,
)

__all__ = ["KeyHandlers"]

log = logging.getLogger(__name__)

R = TypeVar("R")

KEY_CHANGES = Counter("llmbus_auth_key_changes_total", "Client keys created or revoked", ["action"])
MANAGEMENT_ATTEMPTS = Counter("llmbus_auth_management_attempts_total", "Management key attempts", ["result"])


def _wire_error(exc: KeyStoreError) -> BusError:
    match exc:
        case UnknownKey():
            return BusError(status=404, code="key_not_found", message=str(exc))
        case ConfigKeyReadOnly():
            return BusError(status=409, code="config_key", message=str(exc))
        case InvalidKeyRequest():
            return BusError(status=400, code=f"invalid_{exc.field}", message=str(exc))
        case _:
            return BusError(
                status=503, code="auth_store_unavailable", message="the auth store (Redis) is unavailable"
            )


class KeyHandlers:
    def __init__(self, bus: Bus, keys: KeyStore, usage: UsageStore, lockouts: LockoutStore) -> None:
        self.bus = bus
        self.keys = keys
        self.usage_store = usage
        self.lockouts = lockouts

    async def subscribe(self) -> None:
        bus = self.bus
        await bus.subscribe(AUTH_KEYS_CREATE, self.create, queue=AUTH_KEYS_CREATE.queue)
        await bus.subscribe(AUTH_KEYS_LIST, self.list_keys, queue=AUTH_KEYS_LIST.queue)
        await bus.subscribe(AUTH_KEYS_REVOKE, self.revoke, queue=AUTH_KEYS_REVOKE.queue)
        await bus.subscribe(AUTH_KEYS_USAGE, self.usage, queue=AUTH_KEYS_USAGE.queue)
        # Every replica hears every revocation (no queue group): its copy of the keys
        # must never restore a key another replica revoked.
        await bus.subscribe(AUTH_KEY_EVENTS, self.on_key_event)
        await bus.subscribe(
            AUTH_MANAGEMENT_ATTEMPT, self.management_attempt, queue=AUTH_MANAGEMENT_ATTEMPT.queue
        )

    async def _answer(self, delivery: Delivery, endpoint: Endpoint[Any, R], work: Awaitable[R]) -> None:
        try:
            reply = await work
        except KeyStoreError as exc:
            await self.bus.respond_error(delivery, _wire_error(exc))
            return
        await self.bus.respond(delivery, endpoint, reply)

    async def on_key_event(self, event: KeyEvent, _: Delivery) -> None:
        if event.action == "revoked":
            self.keys.forget(event.key_hash)

    async def upkeep(self) -> None:
        """One round of keeping the keys safe from a Redis that loses its data: refresh
        this replica's copy of them, and write them back if Redis has lost them."""
        if await self.keys.lost():
            _, revoked = await self.keys.restore()
            for key_hash in revoked:
                await self.bus.publish(AUTH_KEY_EVENTS, KeyEvent(key_hash=key_hash))
        await self.keys.remember_all()

    async def create(self, request: KeyCreate, delivery: Delivery) -> None:
        await self._answer(delivery, AUTH_KEYS_CREATE, self._create(request))

    async def _create(self, request: KeyCreate) -> KeyCreated:
        key, info = await self.keys.create(
            name=request.name, owner=request.owner, limits=request.limits, expires_at=request.expires_at
        )
        KEY_CHANGES.labels("created").inc()
        log.info("client key %s (%s) created by %s", info.id, info.name or "unnamed", request.actor or "?")
        return KeyCreated(key=key, info=info)

    async def list_keys(self, request: KeyListRequest, delivery: Delivery) -> None:
        await self._answer(delivery, AUTH_KEYS_LIST, self._list(request))

    async def _list(self, request: KeyListRequest) -> KeyList:
        return KeyList(keys=await self.keys.list_keys(include_revoked=request.include_revoked))

    async def revoke(self, request: KeyRevoke, delivery: Delivery) -> None:
        await self._answer(delivery, AUTH_KEYS_REVOKE, self._revoke(request))

    async def _revoke(self, request: KeyRevoke) -> KeyInfo:
        info, key_hash = await self.keys.revoke(request.id)
        # Every edge drops the key from its cache at once: this is what makes a
        # revocation reach all of them within a second, whatever their cache TTL.
        await self.bus.publish(AUTH_KEY_EVENTS, KeyEvent(key_hash=key_hash, action="revoked"))
        KEY_CHANGES.labels("revoked").inc()
        log.info("client key %s revoked by %s", info.id, request.actor or "?")
        return info

    async def usage(self, request: KeyUsageRequest, delivery: Delivery) -> None:
        await self._answer(delivery, AUTH_KEYS_USAGE, self._usage(request))

    async def _usage(self, request: KeyUsageRequest) -> KeyUsage:
        await self.keys.get(request.id)
        return await self.usage_store.usage(request.id, request.days)

    async def management_attempt(self, attempt: ManagementAttempt, delivery: Delivery) -> None:
        await self._answer(delivery, AUTH_MANAGEMENT_ATTEMPT, self._attempt(attempt))

    async def _attempt(self, attempt: ManagementAttempt) -> ManagementVerdict:
        verdict, locked_now = await self.lockouts.attempt(attempt.source, attempt.ok)
        MANAGEMENT_ATTEMPTS.labels("locked" if verdict.locked else "ok" if attempt.ok else "refused").inc()
        if locked_now:
            log.warning(
                "management API: source %s locked out for %d minutes after %d wrong keys",
                attempt.source,
                round(self.lockouts.lock_seconds / 60),
                verdict.failures,
            )
        elif not attempt.ok and not verdict.locked:
            log.info(
                "management API: wrong key from %s (%d of %d)",
                attempt.source,
                verdict.failures,
                self.lockouts.max_failures,
            )
        return verdict
