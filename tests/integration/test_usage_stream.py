"""Usage records through a real nats-server with JetStream and a real Redis: the edge's
reporter publishes them as the `edge` user, auth's reader (`UsageReader`, as the `auth`
user, with the durable stream and consumer of the subject table) keeps the daily
aggregates, and `auth.v1.usage.query` answers from them (`UsageHandlers`). Replicas
share the consumer without counting a record twice; a reader that dies before it
acknowledges loses nothing and doubles nothing. A server of its own, so the stream is
these tests' alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError
from redis.asyncio import Redis

from llmbus.auth.usage import UsageStore
from llmbus.auth.usage_handlers import UsageHandlers, UsageReader
from llmbus.bus import BusUnavailable, NatsBus, RemoteError, connect
from llmbus.bus.stream import DurableConsumer
from llmbus.edge.usage import UsageReporter
from llmbus.proto import (
    AUTH_USAGE_QUERY,
    USAGE_CONSUMER,
    USAGE_REQUESTS,
    USAGE_STREAM,
    RequestRecord,
    UsageQuery,
    UsageReport,
    UsageRow,
)
from llmbus.telemetry import credential_ref
from llmbus.testing.bususers import HARNESS, BusUsers

DAY = 86_400
RETENTION = 30


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    # Database 4: the end-to-end stack uses database 0, other tests 1 to 3.
    client = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/4")
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def harness(server: str, users: BusUsers) -> AsyncIterator[NATS]:
    """A connection that may do anything: it inspects the stream, and deletes it after
    each test (its consumer with it) so that every test starts from none."""
    nc = await nats.connect(users.url(server, HARNESS))
    yield nc
    try:
        await nc.jetstream().delete_stream(USAGE_STREAM)
    except NotFoundError:
        pass
    await nc.close()


async def _as(server: str, users: BusUsers, user: str) -> NatsBus:
    return await connect(server, name=f"test-{user}", user=user, password=users.password(user))


def _consumer(bus: NatsBus, ack_wait: float = 30.0) -> DurableConsumer:
    """Auth's consumer, as `llmbus.auth.main` makes it."""
    return DurableConsumer(
        bus,
        stream=USAGE_STREAM,
        subject=USAGE_REQUESTS.subject(),
        durable=USAGE_CONSUMER,
        max_age=RETENTION * DAY,
        ack_wait=ack_wait,
    )


@asynccontextmanager
async def _auth_replica(
    server: str, users: BusUsers, redis: Redis, ack_wait: float = 30.0, batch: int = 512
) -> AsyncIterator[UsageReader]:
    """One auth replica's usage side: the query handler and the stream's reader."""
    bus = await _as(server, users, "auth")
    store = UsageStore(redis, RETENTION)
    await UsageHandlers(bus, store).subscribe()
    reader = UsageReader(store, _consumer(bus, ack_wait), batch=batch)
    await reader.start()
    reading = asyncio.create_task(reader.run())
    try:
        yield reader
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await reader.consumer.stop()
        await bus.drain()


async def _all_acknowledged(harness: NATS, published: int, within: float = 15.0) -> None:
    """Wait until the consumer has every published record delivered and acknowledged."""
    js = harness.jetstream()
    for _ in range(int(within / 0.05)):
        info = await js.consumer_info(USAGE_STREAM, USAGE_CONSUMER)
        if info.delivered.stream_seq >= published and not info.num_ack_pending and not info.num_pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the usage records were not all acknowledged within {within}s: {info}")


def _record(
    n: int,
    *,
    key: str = "key_a",
    provider: str = "openai",
    credential: str = "openai#0",
    model: str = "gpt-4o-mini",
    status: int = 200,
    at: float | None = None,
    input_tokens: int = 10,
    output_tokens: int = 5,
) -> RequestRecord:
    return RequestRecord(
        at=at or time.time(),
        request_id=f"{n:032x}",
        trace_id=f"{n + 1:032x}",
        key_id=key,
        provider=provider,
        credential=credential_ref(credential),
        model=model,
        upstream_model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=2,
        reasoning_tokens=1,
        latency_ms=12.5,
        status=status,
        error="" if status < 400 else "upstream_error",
        api="openai",
    )


async def _publish(server: str, users: BusUsers, records: list[RequestRecord], *, each: bool = True) -> None:
    """As the edge does: queued by the reporter, sent by its flush; with `each`, one flush
    (one stream message) per record, so that replicas and crashes split them finely."""
    edge = await _as(server, users, "edge")
    reporter = UsageReporter(edge, interval=60)
    for record in records:
        reporter.add(record)
        if each:
            await reporter.flush()
    await reporter.flush()
    await edge.flush()
    await edge.drain()


def _today(offset: int = 0) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + offset * DAY))


async def _query(server: str, users: BusUsers, by: str, days: int) -> UsageReport:
    edge = await _as(server, users, "edge")
    try:
        return await edge.request(AUTH_USAGE_QUERY, UsageQuery(by=by, days=days), timeout=3)  # type: ignore[arg-type]
    finally:
        await edge.drain()


async def test_records_from_the_edge_become_daily_aggregates_by_key_provider_credential_and_model(
    server: str, users: BusUsers, redis: Redis, harness: NATS
) -> None:
    yesterday = time.time() - DAY
    records = [
        _record(1),
        _record(2, key="key_b", status=502, input_tokens=0, output_tokens=0),
        _record(3, provider="claude", credential="claude#1", model="claude/sonnet", input_tokens=7),
        _record(4, at=yesterday, input_tokens=100, output_tokens=50),
    ]
    async with _auth_replica(server, users, redis):
        await _publish(server, users, records)
        await _all_acknowledged(harness, len(records))
        by_model = await _query(server, users, "model", 2)
        by_key = await _query(server, users, "key", 1)
        by_provider = await _query(server, users, "provider", 7)
        by_credential = await _query(server, users, "credential", 1)

    def row(day: str, group: str, requests: int, errors: int, tokens_in: int, tokens_out: int) -> UsageRow:
        return UsageRow(
            day=day,
            group=group,
            requests=requests,
            errors=errors,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cached_tokens=2 * requests,
            reasoning_tokens=requests,
        )

    today, before = _today(), _today(-1)
    assert by_model == UsageReport(
        by="model",
        days=2,
        rows=[
            row(before, "gpt-4o-mini", 1, 0, 100, 50),
            row(today, "claude/sonnet", 1, 0, 7, 5),
            row(today, "gpt-4o-mini", 2, 1, 10, 5),
        ],
    )
    assert by_key.rows == [row(today, "key_a", 2, 0, 17, 10), row(today, "key_b", 1, 1, 0, 0)]
    assert [(r.day, r.group, r.requests, r.errors) for r in by_provider.rows] == [
        (before, "openai", 1, 0),
        (today, "claude", 1, 0),
        (today, "openai", 2, 1),
    ]
    # Credentials are named by their hash only.
    assert {r.group: r.requests for r in by_credential.rows} == {
        credential_ref("openai#0"): 2,
        credential_ref("claude#1"): 1,
    }
    assert all(len(r.group) == 16 and "#" not in r.group for r in by_credential.rows)


async def test_the_stream_and_the_aggregates_keep_records_for_the_retention(
    server: str, users: BusUsers, redis: Redis, harness: NATS
) -> None:
    async with _auth_replica(server, users, redis):
        await _publish(server, users, [_record(1)])
        await _all_acknowledged(harness, 1)
    stream = await harness.jetstream().stream_info(USAGE_STREAM)
    assert stream.config.max_age == RETENTION * DAY
    assert stream.config.storage == "file"
    assert stream.state.messages == 1  # the record stays on the stream, acknowledged or not
    for dimension in ("key", "provider", "credential", "model"):
        ttl = await redis.ttl(f"llmbus:usage:by:{dimension}:{_today()}")
        assert (RETENTION - 1) * DAY < ttl <= RETENTION * DAY, dimension


async def test_two_auth_replicas_share_the_consumer_and_count_each_record_once(
    server: str, users: BusUsers, redis: Redis, harness: NATS
) -> None:
    records = [_record(n, key=f"key_{n % 3}") for n in range(300)]
    async with (
        _auth_replica(server, users, redis, batch=16),
        _auth_replica(server, users, redis, batch=16),
    ):
        await _publish(server, users, records)
        await _all_acknowledged(harness, len(records))
        report = await _query(server, users, "key", 1)
    assert sum(r.requests for r in report.rows) == 300
    assert sum(r.input_tokens for r in report.rows) == 3000
    assert {r.group: r.requests for r in report.rows} == {"key_0": 100, "key_1": 100, "key_2": 100}


async def test_records_a_reader_took_but_never_acknowledged_are_counted_once_after_it_dies(
    server: str, users: BusUsers, redis: Redis, harness: NATS
) -> None:
    records = [_record(n) for n in range(20)]
    # A replica takes the first 10 and dies before writing; another takes the next 10,
    # writes them and dies before acknowledging.
    for writes in (False, True):
        bus = await _as(server, users, "auth")
        consumer = _consumer(bus, ack_wait=1.0)
        await consumer.start()
        if not writes:
            await _publish(server, users, records)
        taken = await consumer.fetch(10, timeout=2)
        assert len(taken) == 10
        if writes:
            batch = [(m.sequence, r) for m in taken for r in USAGE_REQUESTS.codec.decode(m.data).records]
            await UsageStore(redis, RETENTION).record(batch)
        await bus.nc.close()  # gone, without an acknowledgement
    # A surviving replica gets every record again after the consumer's ack_wait.
    async with _auth_replica(server, users, redis, ack_wait=1.0):
        await _all_acknowledged(harness, len(records))
        report = await _query(server, users, "model", 1)
    assert [(r.group, r.requests, r.input_tokens) for r in report.rows] == [("gpt-4o-mini", 20, 200)]


async def test_the_records_of_one_flush_are_one_message_counted_once_after_a_crash(
    server: str, users: BusUsers, redis: Redis, harness: NATS
) -> None:
    records = [_record(n) for n in range(30)]
    bus = await _as(server, users, "auth")
    consumer = _consumer(bus, ack_wait=1.0)
    await consumer.start()
    await _publish(server, users, records, each=False)
    taken = await consumer.fetch(10, timeout=2)
    assert len(taken) == 1, "the edge's flush is one stream message"
    batch = [(m.sequence, r) for m in taken for r in USAGE_REQUESTS.codec.decode(m.data).records]
    assert len(batch) == 30
    await UsageStore(redis, RETENTION).record(batch)
    await bus.nc.close()  # counted, then gone without an acknowledgement
    async with _auth_replica(server, users, redis, ack_wait=1.0):
        await _all_acknowledged(harness, 1)
        report = await _query(server, users, "model", 1)
    assert [(r.group, r.requests, r.input_tokens) for r in report.rows] == [("gpt-4o-mini", 30, 300)]


async def test_a_query_for_more_days_than_the_retention_or_none_is_refused(
    server: str, users: BusUsers, redis: Redis, harness: NATS
) -> None:
    async with _auth_replica(server, users, redis):
        for days in (0, RETENTION + 1):
            with pytest.raises(RemoteError) as refused:
                await _query(server, users, "model", days)
            assert (refused.value.status, refused.value.code) == (400, "invalid_days")
            assert f"1 to {RETENTION}" in refused.value.message
        report = await _query(server, users, "model", RETENTION)
    assert report == UsageReport(by="model", days=RETENTION, rows=[])


async def test_the_edge_user_may_not_read_or_create_the_usage_stream(server: str, users: BusUsers) -> None:
    edge = await _as(server, users, "edge")
    try:
        consumer = _consumer(edge)
        with pytest.raises(BusUnavailable, match="JetStream stream"):
            await consumer.start()
    finally:
        await edge.drain()


async def test_reading_an_idle_stream_returns_empty_batches_whatever_timeout_nats_py_raises(
    server: str, users: BusUsers, harness: NATS
) -> None:
    bus = await _as(server, users, "auth")
    try:
        consumer = _consumer(bus)
        await consumer.start()
        # Short waits make nats-py give up from either of its timeouts (its own and
        # asyncio's); each is an empty batch, never an error that would stop the reader.
        for timeout in (0.001, 0.003, 0.01, 0.03) * 10:
            assert await consumer.fetch(16, timeout=timeout) == []
    finally:
        await bus.drain()


async def test_a_new_retention_reaches_the_existing_stream_when_auth_starts_again(
    server: str, users: BusUsers, harness: NATS
) -> None:
    bus = await _as(server, users, "auth")
    try:
        await _consumer(bus).start()
        shorter = DurableConsumer(
            bus,
            stream=USAGE_STREAM,
            subject=USAGE_REQUESTS.subject(),
            durable=USAGE_CONSUMER,
            max_age=7 * DAY,
        )
        await shorter.start()  # what auth does at its next start, after a config change
        await shorter.stop()
    finally:
        await bus.drain()
    stream = await harness.jetstream().stream_info(USAGE_STREAM)
    assert stream.config.max_age == 7 * DAY
