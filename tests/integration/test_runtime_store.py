"""Provider switches and credential cooldowns in a real Redis: what a starting router
catches up on."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.auth.runtime import RuntimeStore
from llmbus.proto import Cooldown


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    # Database 2: the end-to-end stack uses database 0 of the same server.
    client = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/2")
    await client.flushdb()
    yield client
    await client.aclose()


async def test_switches_survive_and_the_last_one_wins(redis: Redis) -> None:
    store = RuntimeStore(redis)
    await store.set_enabled("claude", False)
    await store.set_enabled("openai", False)
    await store.set_enabled("openai", True)
    state = await RuntimeStore(redis).state()
    assert state.enabled == {"claude": False, "openai": True}


async def test_cooldowns_are_kept_until_they_expire(redis: Redis) -> None:
    store = RuntimeStore(redis)
    now = time.time()
    await store.add_cooldown(
        Cooldown(provider="openai", credential="key-1", until=now + 60, reason="rate limited")
    )
    await store.add_cooldown(Cooldown(provider="openai", credential="key-2", until=now - 1, reason="old"))
    state = await store.state()
    assert [(c.provider, c.credential, c.reason) for c in state.cooldowns] == [
        ("openai", "key-1", "rate limited")
    ]
    assert await redis.hlen("llmbus:cooldowns") == 1, "expired entries are dropped when read"


async def test_credentials_with_slashes_in_provider_names_round_trip(redis: Redis) -> None:
    store = RuntimeStore(redis)
    await store.add_cooldown(Cooldown(provider="openai", credential="team/key", until=time.time() + 30))
    [cooldown] = (await store.state()).cooldowns
    assert (cooldown.provider, cooldown.credential) == ("openai", "team/key")


async def test_an_unreachable_store_raises_its_own_error() -> None:
    store = RuntimeStore(Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5))
    with pytest.raises(KeyStoreUnavailable):
        await store.state()
