"""Auth's side of usage: the usage stream read into daily aggregates, and the query.

    usage.v1.requests      RequestRecords, an edge's records of about a second (one per
                           finished request), read from the durable stream through the
                           consumer every auth replica shares
    auth.v1.usage.query    UsageQuery → UsageReport (queue group `auth`)

The reader fetches messages in batches, counts a batch in one Redis transaction and only
then acknowledges it: a replica that dies before its acknowledgement leaves its records
to be delivered again (to any replica) after the consumer's `ack_wait`, and the
applied-sequence check of `UsageStore` keeps them from being counted twice. While Redis
is unavailable nothing is acknowledged, so nothing is lost either.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import msgspec
from prometheus_client import Counter

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.auth.usage import UsageStore
from llmbus.bus import Bus, BusUnavailable, Delivery
from llmbus.bus.stream import DurableConsumer, StreamMessage
from llmbus.proto import AUTH_USAGE_QUERY, USAGE_REQUESTS, BusError, RequestRecord, UsageQuery

__all__ = ["UsageHandlers", "UsageReader"]

log = logging.getLogger(__name__)

USAGE_RECORDS = Counter(
    "llmbus_auth_usage_records_total",
    "Usage records read from the usage stream",
    ["result"],
)
"""result: ok, failed (a request that failed, counted), duplicate (read again, counted
before), malformed (not a record: acknowledged and dropped)."""

BATCH: Final = 512
RETRY_SECONDS: Final = 1.0
"""Wait before reading again after Redis or the bus failed."""


class UsageHandlers:
    """`auth.v1.usage.query`, answered from the aggregates."""

    def __init__(self, bus: Bus, store: UsageStore) -> None:
        self.bus = bus
        self.store = store

    async def subscribe(self) -> None:
        await self.bus.subscribe(AUTH_USAGE_QUERY, self.query, queue=AUTH_USAGE_QUERY.queue)

    async def query(self, request: UsageQuery, delivery: Delivery) -> None:
        retention = self.store.retention_days
        if not 1 <= request.days <= retention:
            await self.bus.respond_error(
                delivery,
                BusError(
                    status=400,
                    code="invalid_days",
                    message=f"`days` must be from 1 to {retention} (the usage retention), got {request.days}",
                ),
            )
            return
        try:
            report = await self.store.report(request.by, request.days)
        except KeyStoreUnavailable:
            await self.bus.respond_error(
                delivery,
                BusError(
                    status=503, code="auth_store_unavailable", message="the auth store (Redis) is unavailable"
                ),
            )
            return
        await self.bus.respond(delivery, AUTH_USAGE_QUERY, report)


class UsageReader:
    """The usage stream read into the aggregates, in batches, through the durable
    consumer every auth replica shares."""

    def __init__(self, store: UsageStore, consumer: DurableConsumer, batch: int = BATCH) -> None:
        self.store = store
        self.consumer = consumer
        self.batch = batch

    async def start(self) -> None:
        """Create the stream and the consumer (idempotent), trying again until it works:
        auth serves keys meanwhile, and the records wait on the bus."""
        warned = False
        while True:
            try:
                await self.consumer.start()
                return
            except BusUnavailable as exc:
                if not warned:
                    log.error("usage stream not readable yet (is JetStream enabled?): %s", exc)
                    warned = True
                await asyncio.sleep(RETRY_SECONDS * 5)

    async def run(self) -> None:
        """Read the usage stream until cancelled (opening it first unless `start` did)."""
        try:
            if not self.consumer.started:
                await self.start()
            while True:
                try:
                    await self._once()
                except Exception:
                    # Nothing stops the reader: what it did not acknowledge comes back.
                    log.exception("usage stream: reading failed")
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            # Stop pulling before the bus drains: records delivered and not yet
            # acknowledged go to another replica (or this one, restarted) after ack_wait.
            await self.consumer.stop()

    async def _once(self) -> None:
        try:
            messages = await self.consumer.fetch(self.batch, timeout=1.0)
        except BusUnavailable as exc:
            log.warning("usage stream not read: %s", exc)
            await asyncio.sleep(RETRY_SECONDS)
            await self.start()
            return
        if not messages:
            return
        try:
            await self.apply(messages)
        except KeyStoreUnavailable:
            log.warning("%d usage records wait: the auth store is unavailable", len(messages))
            await asyncio.sleep(RETRY_SECONDS)
        except BusUnavailable as exc:
            log.warning("usage records counted but not acknowledged: %s", exc)

    async def apply(self, messages: list[StreamMessage]) -> None:
        """Count one batch, then acknowledge it."""
        decoded: list[tuple[int, RequestRecord]] = []
        again: list[int] = []
        for message in messages:
            try:
                batch = USAGE_REQUESTS.codec.decode(message.data)
            except msgspec.DecodeError:
                USAGE_RECORDS.labels("malformed").inc()
                log.warning("usage stream message %d holds no usage records: dropped", message.sequence)
                continue
            decoded.extend((message.sequence, record) for record in batch.records)
            if message.deliveries > 1:
                again.append(message.sequence)
        if again:
            seen = await self.store.applied(again)
            if seen:
                USAGE_RECORDS.labels("duplicate").inc(len(seen))
                decoded = [(sequence, record) for sequence, record in decoded if sequence not in seen]
        if decoded:
            await self.store.record(decoded)
        await self.consumer.ack(messages)
        for _, record in decoded:
            USAGE_RECORDS.labels("failed" if record.status >= 400 else "ok").inc()
