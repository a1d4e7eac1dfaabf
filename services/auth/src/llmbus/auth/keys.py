"""Client keys in Redis, stored only as SHA-256 hashes.

    llmbus:key:<sha256>   hash  id, name, owner, limits (ClientLimits as JSON), created,
                                expires (unix seconds; 0: never), revoked ("0" | "1"),
                                source ("config" | "api"), prefix (the key's first characters)
    llmbus:keys:ids       hash  key id → sha256: the index by id (list, revoke, usage)
    llmbus:keys:config    set   sha256 of the keys the config file lists
    llmbus:keys:present   string  set with the keys; gone means Redis has lost its data

Keys created at run time are random (`sk-llmbus-` + 43 URL-safe characters from
`secrets`); the key itself exists only in the reply to its creation. Keys from the config
file are written at start and re-written now and then (Redis may have lost them); a key
removed from the file is revoked, and a config key cannot be revoked through the API:
the file would bring it back.

Redis may lose its data (restarted without persistence, a failover to an empty replica).
Every auth replica keeps a copy of the key records in memory (read at start and now and
then, written through on its own changes, told of other replicas' revocations), and a
key that Redis does not know while the `present` marker is gone is looked up again after
the records are written back: a valid key is never refused because Redis forgot it. A
record is restored only where Redis has none, and a revocation any replica knows of wins,
so a restore never brings a revoked key back.

Errors:

    KeyStoreError             (base of this module's errors)
    ├── KeyStoreUnavailable   Redis cannot be reached
    ├── UnknownKey            no key has that id
    ├── ConfigKeyReadOnly     the key comes from the config file
    └── InvalidKeyRequest     a creation asks for something impossible (negative limits,
                              an expiry in the past)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Mapping

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.proto import Client, ClientLimits, KeyInfo, KeyVerifyReply

__all__ = [
    "ConfigKeyReadOnly",
    "InvalidKeyRequest",
    "KeyStore",
    "KeyStoreError",
    "KeyStoreUnavailable",
    "UnknownKey",
    "hash_key",
    "key_prefix",
    "new_key",
    "verify_reply",
]

log = logging.getLogger(__name__)

_PREFIX = "llmbus:key:"
_IDS = "llmbus:keys:ids"
_CONFIG_SET = "llmbus:keys:config"
_PRESENT = "llmbus:keys:present"

_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  redis.call('HSET', KEYS[2], ARGV[1], string.sub(KEYS[1], string.len(KEYS[3]) + 1))
  return 1
end
return 0
"""
"""Write a record back only where Redis has none (another replica may have restored or
changed it already). ARGV: the key id, then the record's field/value pairs."""

KEY_SCHEME = "sk-llmbus-"
_SHOWN = 14
"""Characters of a key that its prefix shows at most (`sk-llmbus-` and 4 random ones)."""

_NO_LIMITS = ClientLimits()
_encode = msgspec.json.Encoder().encode
_decode_limits = msgspec.json.Decoder(ClientLimits).decode


class KeyStoreError(Exception):
    """Base of the key store's errors."""


class KeyStoreUnavailable(KeyStoreError):
    """Redis cannot be reached."""


class UnknownKey(KeyStoreError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"No client key has the id `{key_id}`.")
        self.key_id = key_id


class ConfigKeyReadOnly(KeyStoreError):
    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"The key `{key_id}` comes from the config file: remove it from `api-keys` there "
            "(the file would bring it back)."
        )
        self.key_id = key_id


class InvalidKeyRequest(KeyStoreError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh client key: 256 random bits, URL-safe."""
    return KEY_SCHEME + secrets.token_urlsafe(32)


def key_prefix(key: str) -> str:
    """What the listing shows of a key: at most its first 14 characters and never more
    than a quarter of it, so a short key from the config file is not given away."""
    return key[: min(_SHOWN, len(key) // 4)] + "…"


def verify_reply(info: KeyInfo | None, ttl: float, now: float | None = None) -> KeyVerifyReply:
    """What an edge is told about a key: valid with its limits, cached no longer than
    the key lives; invalid keys are cached briefly (a flood of wrong keys stays cheap)."""
    if info is None:
        return KeyVerifyReply(valid=False, ttl=5.0)
    if info.expires_at:
        ttl = min(ttl, max(info.expires_at - (now or time.time()), 0.0))
    return KeyVerifyReply(
        valid=True,
        client=Client(id=info.id, name=info.name),
        ttl=ttl,
        limits=info.limits,
        expires_at=info.expires_at,
    )


def _float(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def _info(record: Mapping[str, str]) -> KeyInfo:
    try:
        limits = _decode_limits(record["limits"]) if record.get("limits") else _NO_LIMITS
    except (msgspec.DecodeError, msgspec.ValidationError):
        limits = _NO_LIMITS
    return KeyInfo(
        id=record["id"],
        prefix=record.get("prefix", ""),
        name=record.get("name", ""),
        owner=record.get("owner", ""),
        limits=limits,
        created_at=_float(record.get("created")),
        expires_at=_float(record.get("expires")),
        revoked=record.get("revoked") == "1",
        source="config" if record.get("source") == "config" else "api",
    )


def _check(limits: ClientLimits, expires_at: float, now: float) -> None:
    for field in ("rpm", "tpm", "max_tokens"):
        if getattr(limits, field) < 0:
            raise InvalidKeyRequest(f"`{field}` cannot be negative (0 means no limit).", field)
    if any(not model.strip() for model in limits.models):
        raise InvalidKeyRequest("`models` cannot contain an empty name.", "models")
    if expires_at and expires_at <= now:
        raise InvalidKeyRequest("`expires_at` is in the past.", "expires_at")


class KeyStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._records: dict[str, dict[str, str]] = {}
        """The copy of the keys made at run time: sha256 → record."""
        self._config_keys: list[tuple[str, str]] = []
        self._restore = redis.register_script(_RESTORE)
        self._restoring: asyncio.Future[tuple[int, list[str]]] | None = None

    @property
    def remembered(self) -> int:
        """Keys made at run time that this replica could restore."""
        return len(self._records)

    def _remember(self, key_hash: str, record: Mapping[str, str]) -> None:
        if record.get("source") == "config" or "id" not in record:
            return
        known = self._records.get(key_hash)
        record = dict(record)
        if known is not None and known.get("revoked") == "1":
            record["revoked"] = "1"  # a revocation is never undone
        self._records[key_hash] = record

    def forget(self, key_hash: str) -> None:
        """Another replica revoked this key: a restore must not bring it back."""
        record = self._records.get(key_hash)
        if record is not None:
            record["revoked"] = "1"

    async def remember_all(self) -> int:
        """Read every key made at run time into the copy; returns how many are known."""
        try:
            hashes = [_text(h) for h in (await self._redis.hgetall(_IDS)).values()]
            async with self._redis.pipeline(transaction=False) as pipe:
                for key_hash in hashes:
                    pipe.hgetall(_PREFIX + key_hash)
                raws: list[dict[bytes | str, bytes | str]] = await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        for key_hash, raw in zip(hashes, raws, strict=True):
            self._remember(key_hash, {_text(k): _text(v) for k, v in raw.items()})
        return len(self._records)

    async def lost(self) -> bool:
        """True when Redis has lost the keys (its marker is gone)."""
        try:
            return not await self._redis.exists(_PRESENT)
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None

    async def restore(self) -> tuple[int, list[str]]:
        """Write back what Redis lost: the config's keys, then the keys made at run time
        that Redis has no record of, then the marker. Returns how many records were
        written back and the hashes of config keys revoked (see `sync_config_keys`).
        However many requests ask at once, one restore runs and they all wait for it."""
        if self._restoring is None or self._restoring.done():
            self._restoring = asyncio.ensure_future(self._restore_all())
        return await asyncio.shield(self._restoring)

    async def _restore_all(self) -> tuple[int, list[str]]:
        revoked = await self.sync_config_keys(self._config_keys)
        written: list[int] = []
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key_hash, record in self._records.items():
                    fields = [item for pair in record.items() for item in pair]
                    written.append(len(pipe))
                    await self._restore(
                        keys=[_PREFIX + key_hash, _IDS, _PREFIX], args=[record["id"], *fields], client=pipe
                    )
                    if record.get("revoked") == "1":
                        pipe.hset(_PREFIX + key_hash, "revoked", "1")
                pipe.set(_PRESENT, "1")
                results = await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        restored = sum(1 for index in written if results[index] == 1)
        if restored:
            log.warning("Redis had lost its client keys: %d made at run time written back", restored)
        return restored, revoked

    async def _record(self, key_hash: str) -> dict[str, str]:
        try:
            raw = await self._redis.hgetall(_PREFIX + key_hash)
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        return {_text(k): _text(v) for k, v in raw.items()}

    async def _record_unless_lost(self, key_hash: str) -> dict[str, str]:
        """A key Redis does not know, asked again together with the marker in one
        transaction (a restore writes records and marker in one too): with the marker
        there, the key is really unknown; without it, the keys are written back first."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.exists(_PRESENT)
                pipe.hgetall(_PREFIX + key_hash)
                present, raw = await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        if present:
            return {_text(k): _text(v) for k, v in raw.items()}
        await self.restore()
        return await self._record(key_hash)

    async def lookup(self, key_hash: str, now: float | None = None) -> KeyInfo | None:
        """The key's record if it may be used now: known, not revoked, not expired."""
        record = await self._record(key_hash)
        if not record or "id" not in record:
            record = await self._record_unless_lost(key_hash)
        if not record or "id" not in record:
            return None
        info = _info(record)
        if info.revoked or (info.expires_at and info.expires_at <= (now or time.time())):
            return None
        return info

    async def create(
        self,
        *,
        name: str = "",
        owner: str = "",
        limits: ClientLimits = _NO_LIMITS,
        expires_at: float = 0.0,
    ) -> tuple[str, KeyInfo]:
        """A new key and its record; the key is returned here and never again."""
        now = time.time()
        _check(limits, expires_at, now)
        key = new_key()
        key_hash = hash_key(key)
        info = KeyInfo(
            id=f"key_{secrets.token_hex(8)}",
            prefix=key_prefix(key),
            name=name,
            owner=owner,
            limits=limits,
            created_at=now,
            expires_at=expires_at,
        )
        record = {
            "id": info.id,
            "name": name,
            "owner": owner,
            "limits": _encode(limits).decode(),
            "created": repr(now),
            "expires": repr(expires_at),
            "revoked": "0",
            "source": "api",
            "prefix": info.prefix,
        }
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(_PREFIX + key_hash, items=[item for pair in record.items() for item in pair])
                pipe.hset(_IDS, info.id, key_hash)
                await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        self._remember(key_hash, record)
        return key, info

    async def _hash_of(self, key_id: str) -> str:
        try:
            key_hash = await self._redis.hget(_IDS, key_id)
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        if key_hash is None:
            raise UnknownKey(key_id)
        return _text(key_hash)

    async def get(self, key_id: str) -> KeyInfo:
        record = await self._record(await self._hash_of(key_id))
        if "id" not in record:
            raise UnknownKey(key_id)
        return _info(record)

    async def list_keys(self, include_revoked: bool = False) -> list[KeyInfo]:
        """Every key (config keys too), oldest first."""
        try:
            hashes = [_text(h) for h in (await self._redis.hgetall(_IDS)).values()]
            async with self._redis.pipeline(transaction=False) as pipe:
                for key_hash in hashes:
                    pipe.hgetall(_PREFIX + key_hash)
                raws: list[dict[bytes | str, bytes | str]] = await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        infos = []
        for raw in raws:
            record = {_text(k): _text(v) for k, v in raw.items()}
            if "id" in record:
                info = _info(record)
                if include_revoked or not info.revoked:
                    infos.append(info)
        return sorted(infos, key=lambda info: (info.created_at, info.id))

    async def revoke(self, key_id: str) -> tuple[KeyInfo, str]:
        """Revoke a key made at run time; returns its record and hash (for the event
        that makes every edge forget it). Revoking twice is not an error."""
        key_hash = await self._hash_of(key_id)
        record = await self._record(key_hash)
        if "id" not in record:
            raise UnknownKey(key_id)
        if record.get("source") == "config":
            raise ConfigKeyReadOnly(key_id)
        try:
            await self._redis.hset(_PREFIX + key_hash, "revoked", "1")
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        self._remember(key_hash, record)
        self.forget(key_hash)
        return msgspec.structs.replace(_info(record), revoked=True), key_hash

    async def sync_config_keys(self, keys: list[tuple[str, str]]) -> list[str]:
        """Make the config file's keys (`(key, name)` pairs) valid and revoke config keys
        no longer listed. Returns the hashes revoked."""
        self._config_keys = list(keys)
        wanted = {hash_key(key): (name, key_prefix(key)) for key, name in keys}
        try:
            previous = {_text(h) for h in await self._redis.smembers(_CONFIG_SET)}
            async with self._redis.pipeline(transaction=True) as pipe:
                for key_hash, (name, prefix) in wanted.items():
                    key_id = f"key_{key_hash[:12]}"
                    pipe.hset(
                        _PREFIX + key_hash,
                        mapping={
                            "id": key_id,
                            "name": name,
                            "source": "config",
                            "revoked": "0",
                            "prefix": prefix,
                        },
                    )
                    pipe.hsetnx(_PREFIX + key_hash, "created", str(int(time.time())))
                    pipe.hset(_IDS, key_id, key_hash)
                    pipe.sadd(_CONFIG_SET, key_hash)
                revoked = sorted(previous - wanted.keys())
                for key_hash in revoked:
                    pipe.hset(_PREFIX + key_hash, "revoked", "1")
                    pipe.srem(_CONFIG_SET, key_hash)
                await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        return revoked
