"""GCRA quotas in a real Redis: exact admission counts, retry-after values, all-or-none
admission across scopes, TPM corrections and refunds, and the bus handlers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.auth.quota import QuotaHandlers, QuotaStore
from llmbus.bus import RemoteError
from llmbus.proto import AUTH_QUOTA_RESERVE, AUTH_QUOTA_SETTLE, QuotaReserve, QuotaScope, QuotaSettle
from llmbus.testing import InMemoryBus


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    # Database 3: the end-to-end stack uses database 0 of the same server.
    client = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    await client.flushdb()
    yield client
    await client.aclose()


def _key(rpm: int = 0, tpm: int = 0, id: str = "key_a") -> QuotaScope:
    return QuotaScope(kind="key", id=id, rpm=rpm, tpm=tpm)


def _reserve(*scopes: QuotaScope, tokens: int = 0) -> QuotaReserve:
    return QuotaReserve(request_id=uuid.uuid4().hex, scopes=list(scopes), tokens=tokens)


async def test_exactly_the_rpm_limit_is_admitted_at_once_and_the_next_waits_one_interval(
    redis: Redis,
) -> None:
    store = QuotaStore(redis)
    grants = [await store.reserve(_reserve(_key(rpm=7))) for _ in range(10)]
    assert [g.admitted for g in grants] == [True] * 7 + [False] * 3
    refused = grants[7]
    assert (refused.limited_by, refused.reason) == ("key:key_a", "rpm")
    # 60 s / 7 requests: the next one is admitted one emission interval later.
    assert refused.retry_after == pytest.approx(60 / 7, abs=0.05)


async def test_concurrent_reservations_from_many_connections_admit_exactly_the_limit(
    redis: Redis, redis_url: str
) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/3"
    clients = [Redis.from_url(url) for _ in range(8)]
    stores = [QuotaStore(client) for client in clients]
    try:
        grants = await asyncio.gather(
            *(stores[i % len(stores)].reserve(_reserve(_key(rpm=25))) for i in range(120))
        )
    finally:
        for client in clients:
            await client.aclose()
    assert sum(g.admitted for g in grants) == 25


async def test_tpm_admits_until_the_tokens_of_a_minute_are_reserved(redis: Redis) -> None:
    store = QuotaStore(redis)
    scope = _key(tpm=1000)
    assert (await store.reserve(_reserve(scope, tokens=600))).admitted
    assert (await store.reserve(_reserve(scope, tokens=400))).admitted
    refused = await store.reserve(_reserve(scope, tokens=100))
    assert (refused.admitted, refused.reason) == (False, "tpm")
    # 100 tokens at 1000 per minute come back after 6 s.
    assert refused.retry_after == pytest.approx(6.0, abs=0.05)


async def test_a_refusal_by_one_scope_records_nothing_in_the_others(redis: Redis) -> None:
    store = QuotaStore(redis)
    key = _key(rpm=10, tpm=10_000)
    provider = QuotaScope(kind="provider", id="claude", rpm=2)
    assert (await store.reserve(_reserve(key, provider, tokens=100))).admitted
    assert (await store.reserve(_reserve(key, provider, tokens=100))).admitted
    for _ in range(5):
        refused = await store.reserve(_reserve(key, provider, tokens=100))
        assert (refused.admitted, refused.limited_by) == (False, "provider:claude")
    # The key's own allowance saw two requests and 200 tokens, not seven and 700.
    alone = [await store.reserve(_reserve(key, tokens=1000)) for _ in range(9)]
    assert [g.admitted for g in alone] == [True] * 8 + [False]
    assert alone[-1].reason == "rpm"


async def test_the_longest_wait_is_reported_when_several_scopes_refuse(redis: Redis) -> None:
    store = QuotaStore(redis)
    fast = _key(rpm=60, id="fast")
    slow = QuotaScope(kind="credential", id="claude/main", rpm=2)
    for _ in range(2):
        assert (await store.reserve(_reserve(fast, slow))).admitted
    for _ in range(58):
        assert (await store.reserve(_reserve(fast))).admitted
    refused = await store.reserve(_reserve(fast, slow))
    assert refused.limited_by == "credential:claude/main"
    assert refused.retry_after == pytest.approx(30.0, abs=0.05)


async def test_settling_below_the_estimate_refunds_the_difference(redis: Redis) -> None:
    store = QuotaStore(redis)
    scope = _key(tpm=1000)
    first = _reserve(scope, tokens=800)
    assert (await store.reserve(first)).admitted
    assert not (await store.reserve(_reserve(scope, tokens=700))).admitted
    await store.settle(QuotaSettle(request_id=first.request_id, scopes=[scope], reserved=800, tokens=200))
    assert (await store.reserve(_reserve(scope, tokens=700))).admitted
    assert not (await store.reserve(_reserve(scope, tokens=200))).admitted


async def test_settling_above_the_estimate_charges_the_difference(redis: Redis) -> None:
    store = QuotaStore(redis)
    scope = _key(tpm=1000)
    first = _reserve(scope, tokens=100)
    assert (await store.reserve(first)).admitted
    await store.settle(QuotaSettle(request_id=first.request_id, scopes=[scope], reserved=100, tokens=900))
    refused = await store.reserve(_reserve(scope, tokens=200))
    assert not refused.admitted
    assert refused.retry_after == pytest.approx(6.0, abs=0.05)


async def test_a_refund_never_banks_more_than_one_period(redis: Redis) -> None:
    store = QuotaStore(redis)
    scope = _key(tpm=1000)
    await store.settle(QuotaSettle(request_id="r", scopes=[scope], reserved=5000, tokens=0))
    assert await redis.exists("llmbus:quota:key:key_a:tpm") == 0
    assert (await store.reserve(_reserve(scope, tokens=1000))).admitted
    assert not (await store.reserve(_reserve(scope, tokens=10))).admitted


async def test_a_request_larger_than_a_minute_passes_only_when_the_allowance_is_untouched(
    redis: Redis,
) -> None:
    store = QuotaStore(redis)
    scope = _key(tpm=1000)
    assert (await store.reserve(_reserve(scope, tokens=3000))).admitted
    refused = await store.reserve(_reserve(scope, tokens=1))
    # It owes two more minutes of allowance.
    assert refused.retry_after == pytest.approx(120.0, abs=0.1)


async def test_allowance_comes_back_with_time(redis: Redis) -> None:
    store = QuotaStore(redis, period=0.3)
    scope = _key(rpm=3)
    assert all([(await store.reserve(_reserve(scope))).admitted for _ in range(3)])
    refused = await store.reserve(_reserve(scope))
    assert not refused.admitted
    await asyncio.sleep(refused.retry_after + 0.01)
    assert (await store.reserve(_reserve(scope))).admitted


async def test_scopes_without_limits_are_admitted_without_touching_redis(redis: Redis) -> None:
    store = QuotaStore(redis)
    assert (await store.reserve(_reserve(_key(), tokens=10**9))).admitted
    assert await redis.dbsize() == 0


async def test_the_script_is_loaded_again_after_redis_forgot_it(redis: Redis) -> None:
    store = QuotaStore(redis)
    assert (await store.reserve(_reserve(_key(rpm=5)))).admitted
    await redis.script_flush()
    assert (await store.reserve(_reserve(_key(rpm=5)))).admitted


async def test_an_unreachable_store_raises_its_own_error() -> None:
    store = QuotaStore(Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5))
    with pytest.raises(KeyStoreUnavailable):
        await store.reserve(_reserve(_key(rpm=5)))


async def test_the_bus_handlers_reserve_and_settle(redis: Redis) -> None:
    bus = InMemoryBus()
    handlers = QuotaHandlers(bus, QuotaStore(redis))
    await bus.subscribe(AUTH_QUOTA_RESERVE, handlers.reserve, queue=AUTH_QUOTA_RESERVE.queue)
    await bus.subscribe(AUTH_QUOTA_SETTLE, handlers.settle, queue=AUTH_QUOTA_SETTLE.queue)
    scope = _key(tpm=100)
    grant = await bus.request(AUTH_QUOTA_RESERVE, _reserve(scope, tokens=100), timeout=2)
    assert grant.admitted
    assert not (await bus.request(AUTH_QUOTA_RESERVE, _reserve(scope, tokens=50), timeout=2)).admitted
    await bus.publish(AUTH_QUOTA_SETTLE, QuotaSettle(request_id="r", scopes=[scope], reserved=100, tokens=40))
    await bus.flush()
    assert (await bus.request(AUTH_QUOTA_RESERVE, _reserve(scope, tokens=50), timeout=2)).admitted


async def test_the_reserve_handler_answers_an_error_when_redis_is_down() -> None:
    bus = InMemoryBus()
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    handlers = QuotaHandlers(bus, QuotaStore(down))
    await bus.subscribe(AUTH_QUOTA_RESERVE, handlers.reserve, queue=AUTH_QUOTA_RESERVE.queue)
    with pytest.raises(RemoteError) as caught:
        await bus.request(AUTH_QUOTA_RESERVE, _reserve(_key(rpm=1)), timeout=2)
    assert caught.value.code == "quota_store_unavailable"
