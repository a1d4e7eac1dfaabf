"""Client keys in a real Redis: hashed at rest, config sync, revocation."""

from __future__ import annotations

import asyncio
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


async def test_keys_made_at_run_time_survive_redis_losing_its_data(redis: Redis) -> None:
    store = KeyStore(redis)
    await store.sync_config_keys([("sk-config-one", "ops")])
    key, info = await store.create(name="ci", owner="team-a")
    await store.restore()  # at start: the marker that says Redis has the keys
    assert not await store.lost()
    await redis.flushdb()  # Redis restarted empty
    assert await store.lost()

    # Many requests at once after the loss: one restore, every lookup finds the key.
    found, *others = await asyncio.gather(*(store.lookup(hash_key(key)) for _ in range(50)))
    assert all(other == found for other in others)
    assert found is not None, "a valid key is looked up again once the copy is written back"
    assert (found.id, found.name, found.owner) == (info.id, "ci", "team-a")
    assert await store.lookup(hash_key("sk-config-one")) is not None
    assert {k.id for k in await store.list_keys()} == {f"key_{hash_key('sk-config-one')[:12]}", info.id}
    assert await store.lookup(hash_key("sk-never-made")) is None


async def test_a_replica_learns_the_keys_another_made_and_restores_them(redis: Redis) -> None:
    maker, other = KeyStore(redis), KeyStore(redis)
    key, _ = await maker.create(name="made-elsewhere")
    assert await other.remember_all() == 1
    await redis.flushdb()
    restored, _ = await other.restore()
    assert restored == 1
    assert await other.lookup(hash_key(key)) is not None


async def test_a_restore_never_brings_back_a_revoked_key(redis: Redis) -> None:
    first, second = KeyStore(redis), KeyStore(redis)
    key, info = await first.create(name="doomed")
    await second.remember_all()
    await first.revoke(info.id)
    second.forget(hash_key(key))  # the revocation event every replica hears
    await redis.flushdb()
    # The replica that revoked it and the one that heard of it restore in either order.
    await second.restore()
    await first.restore()
    assert await first.lookup(hash_key(key)) is None
    assert await second.lookup(hash_key(key)) is None
    assert (await first.get(info.id)).revoked


async def test_a_restore_leaves_records_redis_still_has_alone(redis: Redis) -> None:
    stale, live = KeyStore(redis), KeyStore(redis)
    key, info = await live.create(name="kept")
    await stale.remember_all()
    await live.revoke(info.id)  # `stale` never heard of it
    await redis.delete("llmbus:keys:present")  # as if the marker alone were lost
    restored, _ = await stale.restore()
    assert restored == 0, "Redis still has the record: it is not overwritten"
    assert await live.lookup(hash_key(key)) is None
