"""The edge's usage reporter: one record per finished request, queued without I/O and
published in the background; records wait while the bus is down, within a bound."""

from __future__ import annotations

import asyncio

from llmbus.edge.usage import UsageReporter
from llmbus.proto import USAGE_REQUESTS, RequestRecord
from llmbus.testing import InMemoryBus


def _record(n: int) -> RequestRecord:
    return RequestRecord(at=1.0, request_id=f"{n:032x}", key_id="key_a", model="mini")


async def _collect(bus: InMemoryBus) -> list[RequestRecord]:
    seen: list[RequestRecord] = []

    async def on_record(record: RequestRecord, _: object) -> None:
        seen.append(record)

    await bus.peer().subscribe(USAGE_REQUESTS, on_record)
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
