"""The edge's usage reporter: one record per finished request, queued without I/O and
published in the background; records wait while the bus is down, within a bound."""

from __future__ import annotations

import asyncio

from llmbus.edge.usage import UsageReporter
from llmbus.proto import USAGE_BATCH, USAGE_REQUESTS, RequestRecord, RequestRecords
from llmbus.testing import InMemoryBus


def _record(n: int) -> RequestRecord:
    return RequestRecord(at=1.0, request_id=f"{n:032x}", key_id="key_a", model="mini")


async def _collect(bus: InMemoryBus, messages: list[int] | None = None) -> list[RequestRecord]:
    """The records sent, in order; `messages` gets the number of records of each message."""
    seen: list[RequestRecord] = []

    async def on_records(batch: RequestRecords, _: object) -> None:
        seen.extend(batch.records)
        if messages is not None:
            messages.append(len(batch.records))

    await bus.peer().subscribe(USAGE_REQUESTS, on_records)
    return seen


async def test_every_request_is_one_record_sent_once() -> None:
    bus = InMemoryBus()
    seen = await _collect(bus)
    reporter = UsageReporter(bus, interval=60)
    for n in range(3):
        reporter.add(_record(n))
    await reporter.flush()
    await reporter.flush()
    await bus.settle()
    assert [r.request_id for r in seen] == [f"{n:032x}" for n in range(3)]


async def test_records_wait_while_the_bus_is_down_and_go_out_once_it_is_back() -> None:
    bus = InMemoryBus()
    seen = await _collect(bus)
    reporter = UsageReporter(bus, interval=60, max_pending=3)
    bus.disconnect()
    for n in range(5):
        reporter.add(_record(n))
    await reporter.flush()
    assert reporter.dropped == 2
    bus.reconnect()
    await reporter.flush()
    await bus.settle()
    assert [r.request_id for r in seen] == [f"{n:032x}" for n in range(3)]
    assert reporter.dropped == 0


async def test_stopping_the_reporter_sends_what_is_left() -> None:
    bus = InMemoryBus()
    seen = await _collect(bus)
    reporter = UsageReporter(bus, interval=60)
    running = asyncio.create_task(reporter.run())
    await asyncio.sleep(0)
    reporter.add(_record(7))
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await bus.settle()
    assert [r.request_id for r in seen] == [f"{7:032x}"]


async def test_a_flush_sends_its_records_together_up_to_a_batch_a_message() -> None:
    bus = InMemoryBus()
    messages: list[int] = []
    seen = await _collect(bus, messages)
    reporter = UsageReporter(bus, interval=60)
    for n in range(USAGE_BATCH + 3):
        reporter.add(_record(n))
    await reporter.flush()
    await bus.settle()
    assert messages == [USAGE_BATCH, 3]
    assert [r.request_id for r in seen] == [f"{n:032x}" for n in range(USAGE_BATCH + 3)]
