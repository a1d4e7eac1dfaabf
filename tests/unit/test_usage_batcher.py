"""The edge counts finished requests and reports one record per key, model, provider,
outcome and day to auth, instead of one per request."""

from __future__ import annotations

import asyncio

from llmbus.edge.usage import UsageBatcher
from llmbus.proto import AUTH_USAGE_EVENTS, Started, Usage, UsageRecord
from llmbus.testing import InMemoryBus

STARTED = Started(seq=0, provider="openai", model="gpt-4o-mini", credential="k")


async def _collect(bus: InMemoryBus) -> list[UsageRecord]:
    seen: list[UsageRecord] = []

    async def on_usage(record: UsageRecord, _: object) -> None:
        seen.append(record)

    await bus.peer().subscribe(AUTH_USAGE_EVENTS, on_usage)
    return seen


async def test_requests_of_one_group_are_summed_into_one_record() -> None:
    bus = InMemoryBus()
    seen = await _collect(bus)
    batcher = UsageBatcher(bus, interval=60)
    for _ in range(3):
        batcher.add("key_a", "mini", STARTED, Usage(seq=0, prompt_tokens=10, completion_tokens=4), ok=True)
    batcher.add("key_a", "mini", None, None, ok=False)
    batcher.add("key_b", "mini", STARTED, Usage(seq=0, prompt_tokens=1, completion_tokens=1), ok=True)
    await batcher.flush()
    await bus.settle()
    by_group = {(r.key_id, r.ok): r for r in seen}
    assert len(seen) == 3
    ok = by_group[("key_a", True)]
    assert (ok.requests, ok.input_tokens, ok.output_tokens, ok.provider) == (3, 30, 12, "openai")
    assert by_group[("key_a", False)].requests == 1
    assert by_group[("key_b", True)].input_tokens == 1


async def test_a_flush_sends_each_count_once() -> None:
    bus = InMemoryBus()
    seen = await _collect(bus)
    batcher = UsageBatcher(bus, interval=60)
    batcher.add("key_a", "mini", STARTED, None, ok=True)
    await batcher.flush()
    await batcher.flush()
    await bus.settle()
    assert [r.requests for r in seen] == [1]


async def test_stopping_the_reporter_sends_what_is_left() -> None:
    bus = InMemoryBus()
    seen = await _collect(bus)
    batcher = UsageBatcher(bus, interval=60)
    reporter = asyncio.create_task(batcher.run())
    await asyncio.sleep(0)
    batcher.add("key_a", "mini", STARTED, None, ok=True)
    reporter.cancel()
    await asyncio.gather(reporter, return_exceptions=True)
    await bus.settle()
    assert [r.requests for r in seen] == [1]
