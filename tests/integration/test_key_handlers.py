"""Auth's client-key handlers over the in-memory bus and a real Redis: keys created at run
time, listed without their secret, revoked on every edge, expired, usage counted per
model and day from the usage records, and management-key attempts locked out after five
failures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from llmbus.auth.handlers import AuthHandlers
from llmbus.auth.keys import KeyStore, hash_key
from llmbus.auth.keys_handlers import KeyHandlers
from llmbus.auth.lockouts import LockoutStore
from llmbus.auth.runtime import RuntimeStore
from llmbus.auth.usage import UsageStore
from llmbus.bus import Delivery, RemoteError
from llmbus.proto import (
    AUTH_KEY_EVENTS,
    AUTH_KEY_VERIFY,
    AUTH_KEYS_CREATE,
    AUTH_KEYS_LIST,
    AUTH_KEYS_REVOKE,
    AUTH_KEYS_USAGE,
    AUTH_MANAGEMENT_ATTEMPT,
    ClientLimits,
    KeyCreate,
    KeyEvent,
    KeyListRequest,
    KeyRevoke,
    KeyUsageRequest,
    KeyVerifyRequest,
    ManagementAttempt,
    RequestRecord,
    UsageCounts,
)
from llmbus.testing import InMemoryBus

DAY = 86_400.0


@dataclass
class Auth:
    edge: InMemoryBus
    redis: Redis
    events: list[KeyEvent]


@pytest.fixture
async def auth(redis_url: str) -> AsyncIterator[Auth]:
    # Database 2: the end-to-end stack uses database 0, the key store tests database 1.
    redis = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/2")
    await redis.flushdb()
    bus = InMemoryBus()
    keys = KeyStore(redis)
    await keys.sync_config_keys([("sk-config-key-of-the-file", "ops")])
    verify = AuthHandlers(bus, keys, RuntimeStore(redis), set())
    await bus.subscribe(AUTH_KEY_VERIFY, verify.verify_key, queue="auth")
    await KeyHandlers(bus, keys, UsageStore(redis), LockoutStore(redis, lock_seconds=60)).subscribe()
    edge = bus.peer()
    events: list[KeyEvent] = []

    async def on_event(event: KeyEvent, _: Delivery) -> None:
        events.append(event)

    await edge.subscribe(AUTH_KEY_EVENTS, on_event)
    yield Auth(edge, redis, events)
    await edge.drain()
    await bus.drain()
    await redis.aclose()


async def _everything_stored(redis: Redis) -> bytes:
    """Every key and hash value in the database, as one blob to search for a secret."""
    dump = ""
    for name in await redis.keys("*"):
        dump += str(name)
        if await redis.type(name) == b"hash":
            dump += "".join(str(k) + str(v) for k, v in (await redis.hgetall(name)).items())
    return dump.encode()


async def _create(auth: Auth, **fields: object) -> tuple[str, str]:
    created = await auth.edge.request(AUTH_KEYS_CREATE, KeyCreate(**fields), timeout=2)  # type: ignore[arg-type]
    return created.key, created.info.id


async def test_a_created_key_is_valid_with_its_limits_and_stored_only_hashed(auth: Auth) -> None:
    limits = ClientLimits(rpm=10, tpm=1000, max_tokens=64, models=["gpt-4o*"])
    created = await auth.edge.request(
        AUTH_KEYS_CREATE, KeyCreate(name="ci", owner="team-a", limits=limits), timeout=2
    )
    assert created.key.startswith("sk-llmbus-")
    assert len(created.key) >= len("sk-llmbus-") + 32
    assert created.info.prefix == created.key[:13] + "…"
    assert (created.info.name, created.info.owner, created.info.source) == ("ci", "team-a", "api")
    reply = await auth.edge.request(
        AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash=hash_key(created.key)), timeout=2
    )
    assert reply.valid
    assert reply.client is not None
    assert reply.client.id == created.info.id
    assert reply.limits == limits
    assert created.key.encode() not in await _everything_stored(auth.redis)


async def test_two_created_keys_differ(auth: Auth) -> None:
    first, _ = await _create(auth)
    second, _ = await _create(auth)
    assert first != second


async def test_the_list_shows_config_and_api_keys_by_prefix_never_the_key(auth: Auth) -> None:
    key, key_id = await _create(auth, name="ci")
    listing = await auth.edge.request(AUTH_KEYS_LIST, KeyListRequest(), timeout=2)
    by_source = {info.source: info for info in listing.keys}
    assert by_source["api"].id == key_id
    assert by_source["config"].name == "ops"
    assert by_source["config"].prefix == "sk-con…"
    encoded = AUTH_KEYS_LIST.reply.encode(listing)
    assert key.encode() not in encoded
    assert b"sk-config-key-of-the-file" not in encoded


async def test_a_revoked_key_is_refused_and_every_edge_is_told(auth: Auth) -> None:
    key, key_id = await _create(auth)
    info = await auth.edge.request(AUTH_KEYS_REVOKE, KeyRevoke(id=key_id, actor="test"), timeout=2)
    assert info.revoked
    await auth.edge.settle()
    assert auth.events == [KeyEvent(key_hash=hash_key(key), action="revoked")]
    reply = await auth.edge.request(AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash=hash_key(key)), timeout=2)
    assert not reply.valid
    hidden = await auth.edge.request(AUTH_KEYS_LIST, KeyListRequest(), timeout=2)
    assert key_id not in {i.id for i in hidden.keys}
    shown = await auth.edge.request(AUTH_KEYS_LIST, KeyListRequest(include_revoked=True), timeout=2)
    assert next(i for i in shown.keys if i.id == key_id).revoked


async def test_a_config_key_cannot_be_revoked_through_the_api(auth: Auth) -> None:
    listing = await auth.edge.request(AUTH_KEYS_LIST, KeyListRequest(), timeout=2)
    config_id = next(info.id for info in listing.keys if info.source == "config")
    with pytest.raises(RemoteError) as caught:
        await auth.edge.request(AUTH_KEYS_REVOKE, KeyRevoke(id=config_id), timeout=2)
    assert (caught.value.status, caught.value.code) == (409, "config_key")
    assert "config file" in caught.value.message
    reply = await auth.edge.request(
        AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash=hash_key("sk-config-key-of-the-file")), timeout=2
    )
    assert reply.valid


async def test_an_unknown_id_is_404(auth: Auth) -> None:
    with pytest.raises(RemoteError) as revoking:
        await auth.edge.request(AUTH_KEYS_REVOKE, KeyRevoke(id="key_nope"), timeout=2)
    with pytest.raises(RemoteError) as reading:
        await auth.edge.request(AUTH_KEYS_USAGE, KeyUsageRequest(id="key_nope"), timeout=2)
    for caught in (revoking, reading):
        assert (caught.value.status, caught.value.code) == (404, "key_not_found")


async def test_impossible_limits_and_past_expiries_are_400_naming_the_field(auth: Auth) -> None:
    with pytest.raises(RemoteError) as caught:
        await _create(auth, limits=ClientLimits(rpm=-1))
    assert (caught.value.status, caught.value.code) == (400, "invalid_rpm")
    with pytest.raises(RemoteError) as caught:
        await _create(auth, expires_at=time.time() - 1)
    assert (caught.value.status, caught.value.code) == (400, "invalid_expires_at")


async def test_a_key_is_cached_no_longer_than_it_lives_and_refused_once_expired(auth: Auth) -> None:
    key, _ = await _create(auth, expires_at=time.time() + 5)
    reply = await auth.edge.request(AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash=hash_key(key)), timeout=2)
    assert reply.valid
    assert 0 < reply.ttl <= 5
    assert reply.expires_at > time.time()
    store = KeyStore(auth.redis)
    assert await store.lookup(hash_key(key), now=time.time() + 6) is None


def _record(
    key_id: str, model: str, at: float, status: int = 200, input_tokens: int = 0, output_tokens: int = 0
) -> RequestRecord:
    return RequestRecord(
        at=at,
        request_id="r" * 32,
        key_id=key_id,
        model=model,
        status=status,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


async def test_a_key_s_usage_is_counted_per_model_and_per_day_from_its_records(auth: Auth) -> None:
    _, key_id = await _create(auth)
    now = time.time()
    records = [
        _record(key_id, "gpt-4o-mini", now, input_tokens=10, output_tokens=5),
        _record(key_id, "gpt-4o-mini", now, input_tokens=20, output_tokens=7),
        _record(key_id, "claude/sonnet", now - DAY, input_tokens=3, output_tokens=1),
        _record(key_id, "claude/sonnet", now, status=502),
        _record(key_id, "gpt-4o-mini", now - 40 * DAY, input_tokens=99),
        _record("key_other", "gpt-4o-mini", now, input_tokens=1000),
    ]
    # What auth's reader of the usage stream does with a batch (test_usage_stream.py
    # reads them through the real stream).
    await UsageStore(auth.redis).record(list(enumerate(records, start=1)))
    usage = await auth.edge.request(AUTH_KEYS_USAGE, KeyUsageRequest(id=key_id, days=30), timeout=2)
    assert usage.total == UsageCounts(requests=4, input_tokens=33, output_tokens=13)
    assert usage.by_model == {
        "claude/sonnet": UsageCounts(requests=2, input_tokens=3, output_tokens=1),
        "gpt-4o-mini": UsageCounts(requests=2, input_tokens=30, output_tokens=12),
    }
    assert sorted(usage.by_day.values(), key=lambda c: c.requests) == [
        UsageCounts(requests=1, input_tokens=3, output_tokens=1),
        UsageCounts(requests=3, input_tokens=30, output_tokens=12),
    ]
    longer = await auth.edge.request(AUTH_KEYS_USAGE, KeyUsageRequest(id=key_id, days=60), timeout=2)
    assert longer.total.input_tokens == 132
    ttl = await auth.redis.ttl(f"llmbus:usage:{key_id}:{next(iter(usage.by_day))}")
    assert 89 * DAY < ttl <= 90 * DAY


async def test_five_wrong_management_keys_lock_the_source_out_even_with_the_right_key(auth: Auth) -> None:
    for failure in range(1, 5):
        verdict = await auth.edge.request(
            AUTH_MANAGEMENT_ATTEMPT, ManagementAttempt(source="203.0.113.9", ok=False), timeout=2
        )
        assert (verdict.locked, verdict.failures) == (False, failure)
    verdict = await auth.edge.request(
        AUTH_MANAGEMENT_ATTEMPT, ManagementAttempt(source="203.0.113.9", ok=False), timeout=2
    )
    assert verdict.locked
    assert 59 < verdict.retry_after <= 60
    verdict = await auth.edge.request(
        AUTH_MANAGEMENT_ATTEMPT, ManagementAttempt(source="203.0.113.9", ok=True), timeout=2
    )
    assert verdict.locked
    other = await auth.edge.request(
        AUTH_MANAGEMENT_ATTEMPT, ManagementAttempt(source="198.51.100.1", ok=True), timeout=2
    )
    assert not other.locked


async def test_the_right_management_key_forgets_earlier_failures(auth: Auth) -> None:
    for ok in (False, False, False, False, True, False, False, False, False):
        verdict = await auth.edge.request(
            AUTH_MANAGEMENT_ATTEMPT, ManagementAttempt(source="192.0.2.4", ok=ok), timeout=2
        )
        assert not verdict.locked
    assert verdict.failures == 4
