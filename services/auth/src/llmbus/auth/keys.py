"""Client keys in Redis, stored only as SHA-256 hashes.

    llmbus:key:<sha256>   hash  id, name, owner, limits (ClientLimits as JSON), created,
                                expires (unix seconds; 0: never), revoked ("0" | "1"),
                                source ("config" | "api"), prefix (the key's first characters)
    llmbus:keys:ids       hash  key id → sha256: the index by id (list, revoke, usage)
    llmbus:keys:config    set   sha256 of the keys the config file lists

Keys created at run time are random (`sk-llmbus-` + 43 URL-safe characters from
`secrets`); the key itself exists only in the reply to its creation. Keys from the config
file are written at start and re-written now and then (Redis may have lost them); a key
removed from the file is revoked, and a config key cannot be revoked through the API:
the file would bring it back.

Errors:

    KeyStoreError             (base of this module's errors)
    ├── KeyStoreUnavailable   Redis cannot be reached
    ├── UnknownKey            no key has that id
    ├── ConfigKeyReadOnly     the key comes from the config file
    └── InvalidKeyRequest     a creation asks for something impossible (negative limits,
                              an expiry in the past)
"""

from __future__ import annotations

import hashlib
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

_PREFIX = "llmbus:key:"
_IDS = "llmbus:keys:ids"
_CONFIG_SET = "llmbus:keys:config"

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

    async def _record(self, key_hash: str) -> dict[str, str]:
        try:
            raw = await self._redis.hgetall(_PREFIX + key_hash)
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        return {_text(k): _text(v) for k, v in raw.items()}

    async def lookup(self, key_hash: str, now: float | None = None) -> KeyInfo | None:
        """The key's record if it may be used now: known, not revoked, not expired."""
        record = await self._record(key_hash)
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
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    _PREFIX + key_hash,
                    mapping={
                        "id": info.id,
                        "name": name,
                        "owner": owner,
                        "limits": _encode(limits),
                        "created": repr(now),
                        "expires": repr(expires_at),
                        "revoked": "0",
                        "source": "api",
                        "prefix": info.prefix,
                    },
                )
                pipe.hset(_IDS, info.id, key_hash)
                await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
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
        return msgspec.structs.replace(_info(record), revoked=True), key_hash

    async def sync_config_keys(self, keys: list[tuple[str, str]]) -> list[str]:
        """Make the config file's keys (`(key, name)` pairs) valid and revoke config keys
        no longer listed. Returns the hashes revoked."""
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
