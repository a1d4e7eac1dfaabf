"""The edge's usage records: one `RequestRecord` per finished request, failed ones too,
on `usage.v1.requests`, where the durable usage stream keeps it and auth counts it.

A request that ends costs its record's construction and a list append here (no I/O, no
await on the request path); about once a second (and when the edge stops) the records
go out together, up to `USAGE_BATCH` in one message: one msgspec encode and one core NATS
publish for all of them, no JetStream acknowledgement awaited. Records wait while the
bus is unavailable, up to `max_pending`; beyond that they are dropped and counted in the
log."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from llmbus.bus import Bus, BusFailure
from llmbus.proto import USAGE_BATCH, USAGE_REQUESTS, RequestRecord, RequestRecords

__all__ = ["UsageReporter"]

log = logging.getLogger(__name__)


class UsageReporter:
    def __init__(self, bus: Bus, interval: float = 1.0, max_pending: int = 100_000) -> None:
        self._bus = bus
        self._interval = interval
        self._max_pending = max_pending
        self._pending: list[RequestRecord] = []
        self.dropped = 0
        """Records not sent: more were waiting than `max_pending` (the bus was down)."""

    def add(self, record: RequestRecord) -> None:
        """Queue the record of one finished request (no I/O)."""
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        self._pending.append(record)

    async def flush(self) -> None:
        """Publish what was queued since the last flush."""
        pending, self._pending = self._pending, []
        for sent in range(0, len(pending), USAGE_BATCH):
            batch = RequestRecords(records=pending[sent : sent + USAGE_BATCH])
            try:
                await self._bus.publish(USAGE_REQUESTS, batch, traced=False)
            except BusFailure:
                # Kept for the next flush, within `max_pending`: a short outage loses none.
                self._pending = (pending[sent:] + self._pending)[: self._max_pending]
                log.warning("%d usage records wait: the bus is unavailable", len(self._pending))
                return
        if self.dropped:
            log.warning("%d usage records dropped while the bus was unavailable", self.dropped)
            self.dropped = 0

    async def run(self) -> None:
        """Flush every `interval` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self._interval)
                await self.flush()
        finally:
            with contextlib.suppress(BusFailure):
                await self.flush()
