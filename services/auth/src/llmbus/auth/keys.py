"""Client keys in Redis, stored only as SHA-256 hashes.

`llmbus:key:<sha256>` is a hash with the client's id, name and creation time. Keys from
the config file are written at start; a key removed from the file is revoked (its record
is marked `source=config`, so keys created at run time are left alone)."""

from __future__ import annotations

import hashlib
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.proto import Client

__all__ = ["KeyStore", "KeyStoreUnavailable", "hash_key"]

_PREFIX = "llmbus:key:"
_CONFIG_SET = "llmbus:keys:config"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStoreUnavailable(Exception):
    """Redis cannot be reached."""


class KeyStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def lookup(self, key_hash: str) -> Client | None:
        try:
            raw = await self._redis.hgetall(_PREFIX + key_hash)
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        record = {_text(k): _text(v) for k, v in raw.items()}
        if not record or record.get("revoked") == "1" or "id" not in record:
            return None
        return Client(id=record["id"], name=record.get("name", ""))

    async def sync_config_keys(self, keys: list[tuple[str, str]]) -> list[str]:
        """Make the config file's keys (`(key, name)` pairs) valid and revoke config keys
        no longer listed. Returns the hashes revoked."""
        wanted = {hash_key(key): name for key, name in keys}
        try:
            previous = {_text(h) for h in await self._redis.smembers(_CONFIG_SET)}
            async with self._redis.pipeline(transaction=True) as pipe:
                for key_hash, name in wanted.items():
                    pipe.hset(
                        _PREFIX + key_hash,
                        mapping={
                            "id": f"key_{key_hash[:12]}",
                            "name": name,
                            "source": "config",
                            "revoked": "0",
                        },
                    )
                    pipe.hsetnx(_PREFIX + key_hash, "created", str(int(time.time())))
                    pipe.sadd(_CONFIG_SET, key_hash)
                revoked = sorted(previous - wanted.keys())
                for key_hash in revoked:
                    pipe.hset(_PREFIX + key_hash, "revoked", "1")
                    pipe.srem(_CONFIG_SET, key_hash)
                await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        return revoked
