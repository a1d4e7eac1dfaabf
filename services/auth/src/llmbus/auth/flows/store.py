"""Device flows in Redis, so that every auth replica answers for every flow.

    llmbus:flow:<id>        string  FlowRecord as JSON; TTL = the device code's lifetime
                                    (a few minutes more once the flow has ended, so that
                                    the page polling it reads the outcome)
    llmbus:lock:flow:<id>   string  the lease: the id of the replica polling the upstream
                                    for this flow; TTL `lease_seconds`, renewed every poll

The grant (device code, the OIDC client's secret) is sealed by the vault with the flow as
associated data, and dropped when the flow ends. A replica that dies mid-flow lets its
lease lapse; another one takes the flow over (`claimable`, `claim`) and keeps polling.

    FlowStoreError
    ├── FlowStoreUnavailable    Redis cannot be reached
    └── UnknownFlow             no flow has that id (never had, or it has expired)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.auth.flows.types import DeviceGrant

__all__ = [
    "FlowRecord",
    "FlowState",
    "FlowStore",
    "FlowStoreError",
    "FlowStoreUnavailable",
    "Sealer",
    "UnknownFlow",
]

_PREFIX = "llmbus:flow:"
_LEASE = "llmbus:lock:flow:"
_KEEP_ENDED = 300
"""Seconds an ended flow stays readable."""

FlowState = Literal["pending", "success", "expired", "denied", "error"]

_RENEW = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class FlowStoreError(Exception):
    """Base of the flow store's errors."""


class FlowStoreUnavailable(FlowStoreError):
    """Redis cannot be reached."""


class UnknownFlow(FlowStoreError):
    def __init__(self, flow_id: str) -> None:
        super().__init__(f"No login flow has the id `{flow_id}` (or it has expired).")
        self.flow_id = flow_id


class Sealer(Protocol):
    """The vault's two calls (`llmbus.auth.vault.Vault`)."""

    def seal(self, credential: str, plaintext: bytes) -> bytes: ...

    def open(self, credential: str, sealed: bytes) -> bytes: ...


class FlowRecord(msgspec.Struct, kw_only=True):
    flow_id: str
    provider: str
    method: Literal["github", "builder-id", "identity-center"]
    start_url: str = ""
    region: str = ""
    user_code: str
    verification_uri: str
    verification_uri_complete: str = ""
    expires_at: float
    interval: int
    status: FlowState = "pending"
    credential: str = ""
    error: str = ""
    sealed_grant: bytes = b""


_decode_record = msgspec.json.Decoder(FlowRecord).decode
_decode_grant = msgspec.json.Decoder(DeviceGrant).decode


class FlowStore:
    def __init__(self, redis: Redis, sealer: Sealer, owner: str, *, lease_seconds: float = 30.0) -> None:
        self.redis = redis
        self.sealer = sealer
        self.owner = owner
        """This replica's id, the value of the leases it holds."""
        self.lease_ms = int(lease_seconds * 1000)

    def seal(self, record: FlowRecord, grant: DeviceGrant) -> None:
        record.sealed_grant = self.sealer.seal(f"flow/{record.flow_id}", msgspec.json.encode(grant))

    def grant(self, record: FlowRecord) -> DeviceGrant:
        return _decode_grant(self.sealer.open(f"flow/{record.flow_id}", record.sealed_grant))

    async def create(self, record: FlowRecord, ttl: int) -> None:
        """Store a new flow, leased to this replica."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(_PREFIX + record.flow_id, msgspec.json.encode(record), ex=max(1, ttl))
                pipe.set(_LEASE + record.flow_id, self.owner, px=self.lease_ms)
                await pipe.execute()
        except RedisError:
            raise FlowStoreUnavailable("the flow store (Redis) is unavailable") from None

    async def get(self, flow_id: str) -> FlowRecord:
        try:
            raw = await self.redis.get(_PREFIX + flow_id)
        except RedisError:
            raise FlowStoreUnavailable("the flow store (Redis) is unavailable") from None
        if raw is None:
            raise UnknownFlow(flow_id)
        return _decode_record(raw)

    async def finish(
        self, record: FlowRecord, status: FlowState, *, credential: str = "", error: str = ""
    ) -> None:
        """Record the outcome (and forget the grant); keep it readable a while."""
        record.status, record.credential, record.error, record.sealed_grant = status, credential, error, b""
        try:
            await self.redis.set(_PREFIX + record.flow_id, msgspec.json.encode(record), ex=_KEEP_ENDED)
        except RedisError:
            raise FlowStoreUnavailable("the flow store (Redis) is unavailable") from None

    async def claim(self, flow_id: str) -> bool:
        """Take the lease of a flow nobody polls."""
        try:
            return bool(await self.redis.set(_LEASE + flow_id, self.owner, px=self.lease_ms, nx=True))
        except RedisError:
            return False

    async def renew(self, flow_id: str) -> bool:
        """Extend this replica's lease (or take it again when it lapsed unclaimed, after a
        long `slow_down`); False when another replica holds it now."""
        try:
            return bool(await self.redis.eval(_RENEW, 1, _LEASE + flow_id, self.owner, self.lease_ms))
        except RedisError:
            return False

    async def release(self, flow_id: str) -> None:
        try:
            await self.redis.eval(_RELEASE, 1, _LEASE + flow_id, self.owner)
        except RedisError:
            pass  # it lapses on its own

    async def pending(self) -> AsyncIterator[FlowRecord]:
        """Every flow still waiting for the user (a scan: there are only a few)."""
        try:
            async for key in self.redis.scan_iter(match=_PREFIX + "*", count=100):
                raw = await self.redis.get(key)
                if raw is not None:
                    record = _decode_record(raw)
                    if record.status == "pending":
                        yield record
        except RedisError:
            raise FlowStoreUnavailable("the flow store (Redis) is unavailable") from None
