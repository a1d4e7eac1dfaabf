"""Client keys in a real Redis: hashed at rest, config sync, revocation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from llmbus.auth.keys import KeyStore, KeyStoreUnavailable, hash_key


def _raw(value: bytes | str) -> bytes:
    """The client is opened without decode_responses, so Redis hands back bytes."""
    assert isinstance(value, bytes)
    return value


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    # Database 1: the end-to-end stack uses database 0 of the same server.
    client = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")
    await client.flushdb()
    yield client
    await client.aclose()


async def test_config_keys_are_stored_only_as_hashes(redis: Redis) -> None:
    store = KeyStore(redis)
    await store.sync_config_keys([("sk-secret-one", "ops")])
    dump = b"".join(
        [
            _raw(k) + b"".join(_raw(v) for v in (await redis.hgetall(k)).values())
            for k in await redis.keys("*")
            if await redis.type(k) == b"hash"
        ]
    )
    assert b"sk-secret-one" not in dump
    client = await store.lookup(hash_key("sk-secret-one"))
    assert client is not None
    assert client.name == "ops"
    assert await store.lookup(hash_key("sk-other")) is None


async def test_a_key_removed_from_config_is_revoked(redis: Redis) -> None:
    store = KeyStore(redis)
    await store.sync_config_keys([("k1", "a"), ("k2", "b")])
    revoked = await store.sync_config_keys([("k1", "a")])
    assert revoked == [hash_key("k2")]
    assert await store.lookup(hash_key("k2")) is None
    assert await store.lookup(hash_key("k1")) is not None


async def test_unreachable_redis_is_a_store_error() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        with pytest.raises(KeyStoreUnavailable):
            await KeyStore(client).lookup("x")
    finally:
        await client.aclose()
