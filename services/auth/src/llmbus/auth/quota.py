"""Quotas: RPM and TPM of client keys, providers and credentials, enforced in Redis so
that every replica of every service shares one count.

One GCRA script (`gcra.lua`, loaded once and then called by its SHA) admits a request
against all its scopes at once or refuses it without recording anything, so no
read-then-write race exists between replicas. Each limited (scope, kind) costs one
key, `llmbus:quota:<kind>:<id>:rpm|tpm`, holding its theoretical arrival time; it
expires when the scope is idle again.

TPM is reserved from the caller's estimate at admission and corrected by `settle` with
the real usage (a negative correction refunds).
"""

from __future__ import annotations

import logging
from importlib.resources import files
from typing import Final

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.bus import Bus, Delivery
from llmbus.proto import AUTH_QUOTA_RESERVE, BusError, QuotaGrant, QuotaReserve, QuotaScope, QuotaSettle

__all__ = ["QuotaHandlers", "QuotaStore"]

log = logging.getLogger(__name__)

ADMISSIONS = Counter("llmbus_auth_quota_admissions_total", "Quota reservations", ["kind", "result"])

_PREFIX: Final = "llmbus:quota:"
_SCRIPT: Final = files("llmbus.auth").joinpath("gcra.lua").read_text()
_MICROS: Final = 1_000_000


def _limited(scopes: list[QuotaScope]) -> list[QuotaScope]:
    return [scope for scope in scopes if scope.rpm > 0 or scope.tpm > 0]


def _key(scope: QuotaScope, kind: str) -> str:
    return f"{_PREFIX}{scope.kind}:{scope.id}:{kind}"


class QuotaStore:
    """The GCRA counters. `period` is the window the limits are counted over (a minute;
    tests may shorten it)."""

    def __init__(self, redis: Redis, period: float = 60.0) -> None:
        self._redis = redis
        self._period_us = round(period * _MICROS)
        # redis-py's Script runs EVALSHA and loads the script (SCRIPT LOAD) only when
        # Redis answers NOSCRIPT: once per process, and again after a Redis restart.
        self._script = redis.register_script(_SCRIPT)

    async def reserve(self, request: QuotaReserve) -> QuotaGrant:
        """Admit the request against every scope, or refuse it naming the scope and the
        kind (`rpm`, `tpm`) that refused and when it would admit."""
        scopes = _limited(request.scopes)
        if not scopes:
            return QuotaGrant(admitted=True)
        keys = [key for scope in scopes for key in (_key(scope, "rpm"), _key(scope, "tpm"))]
        limits = [limit for scope in scopes for limit in (scope.rpm, scope.tpm)]
        args: list[str | int] = ["reserve", max(0, request.tokens), self._period_us, *limits]
        try:
            result = await self._script(keys=keys, args=args)
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        if int(result[0]) == 1:
            return QuotaGrant(admitted=True)
        index = int(result[1]) - 1
        scope = scopes[index // 2]
        return QuotaGrant(
            admitted=False,
            retry_after=int(result[2]) / _MICROS,
            limited_by=f"{scope.kind}:{scope.id}",
            reason="rpm" if index % 2 == 0 else "tpm",
        )

    async def settle(self, settle: QuotaSettle) -> None:
        """Correct the TPM reservations of `settle.scopes` by `tokens - reserved`."""
        scopes = [scope for scope in settle.scopes if scope.tpm > 0]
        delta = settle.tokens - settle.reserved
        if not scopes or delta == 0:
            return
        keys = [_key(scope, "tpm") for scope in scopes]
        args: list[str | int] = ["settle", delta, self._period_us, *(scope.tpm for scope in scopes)]
        try:
            await self._script(keys=keys, args=args)
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None


class QuotaHandlers:
    """`auth.v1.quota.reserve` (request/reply) and `auth.v1.quota.settle` (a topic in the
    `auth` queue group: each correction is applied by one replica)."""

    def __init__(self, bus: Bus, store: QuotaStore) -> None:
        self.bus = bus
        self.store = store

    async def reserve(self, request: QuotaReserve, delivery: Delivery) -> None:
        kind = request.scopes[0].kind if request.scopes else "none"
        try:
            grant = await self.store.reserve(request)
        except KeyStoreUnavailable:
            ADMISSIONS.labels(kind, "store_unavailable").inc()
            await self.bus.respond_error(
                delivery,
                BusError(
                    status=503,
                    code="quota_store_unavailable",
                    message="the quota store (Redis) is unavailable",
                ),
            )
            return
        ADMISSIONS.labels(kind, "admitted" if grant.admitted else grant.reason).inc()
        await self.bus.respond(delivery, AUTH_QUOTA_RESERVE, grant)

    async def settle(self, settle: QuotaSettle, _: Delivery) -> None:
        try:
            await self.store.settle(settle)
        except KeyStoreUnavailable:
            log.warning("quota of request %s not corrected: the store is unavailable", settle.request_id)
