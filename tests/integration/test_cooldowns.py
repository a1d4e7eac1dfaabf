"""Credential rests at auth, in a real Redis over the in-memory bus: refusals in a row
double the rest up to the policy's maximum, Retry-After is honoured as it is, recovery
and clears forget the streak, and a clear reaches every router."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from llmbus.auth.cooldowns import CooldownHandlers
from llmbus.auth.runtime import RuntimeStore
from llmbus.bus import Delivery, RemoteError
from llmbus.config import CooldownConfig
from llmbus.proto import (
    AUTH_COOLDOWN_CLEAR,
    AUTH_COOLDOWN_EVENTS,
    CONTROL_COOLDOWNS,
    CONTROL_COOLDOWNS_CLEARED,
    Cooldown,
    CooldownClear,
    CooldownCleared,
)
from llmbus.testing import InMemoryBus


class Rig:
    def __init__(self, bus: InMemoryBus, store: RuntimeStore) -> None:
        self.bus = bus
        self.store = store
        self.longer: list[Cooldown] = []
        self.cleared: list[CooldownCleared] = []

    async def refuse(self, seconds: float = 10, model: str = "m1", retry_after: float = 0.0) -> None:
        cooldown = Cooldown(
            provider="alpha",
            credential="key-1",
            until=time.time() + seconds,
            reason="429",
            status=429,
            model=model,
            retry_after=retry_after,
        )
        await self.bus.publish(AUTH_COOLDOWN_EVENTS, cooldown)
        await self.bus.settle()

    def last_rest(self) -> float:
        return self.longer[-1].until - time.time()


@pytest.fixture
async def rig(redis_url: str) -> AsyncIterator[Rig]:
    # Database 4: the end-to-end stack uses database 0 of the same server.
    redis = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/4")
    await redis.flushdb()
    bus = InMemoryBus()
    store = RuntimeStore(redis)
    handlers = CooldownHandlers(bus, store, {"alpha": CooldownConfig(max_seconds=50)})
    await bus.subscribe(AUTH_COOLDOWN_EVENTS, handlers.record, queue="auth")
    await bus.subscribe(AUTH_COOLDOWN_CLEAR, handlers.clear, queue="auth")
    made = Rig(bus, store)

    async def longer(event: Cooldown, _: Delivery) -> None:
        made.longer.append(event)

    async def cleared(event: CooldownCleared, _: Delivery) -> None:
        made.cleared.append(event)

    await bus.subscribe(CONTROL_COOLDOWNS, longer)
    await bus.subscribe(CONTROL_COOLDOWNS_CLEARED, cleared)
    yield made
    await bus.drain()
    await redis.aclose()


async def test_refusals_in_a_row_double_the_rest_up_to_the_maximum(rig: Rig) -> None:
    await rig.refuse()
    assert rig.longer == [], "the first rest is the worker's own"
    await rig.refuse()
    assert rig.last_rest() == pytest.approx(20, abs=1)
    await rig.refuse()
    assert rig.last_rest() == pytest.approx(40, abs=1)
    await rig.refuse()
    assert rig.last_rest() == pytest.approx(50, abs=1), "capped by cooldown.max_seconds"
    [kept] = (await rig.store.state()).cooldowns
    assert kept.model == "m1"
    assert kept.until == pytest.approx(rig.longer[-1].until)


async def test_retry_after_is_honoured_without_doubling(rig: Rig) -> None:
    await rig.refuse(seconds=7, retry_after=7)
    await rig.refuse(seconds=7, retry_after=7)
    assert rig.longer == []


async def test_each_model_has_its_own_streak(rig: Rig) -> None:
    await rig.refuse(model="m1")
    await rig.refuse(model="m2")
    assert rig.longer == []
    assert {c.model for c in (await rig.store.state()).cooldowns} == {"m1", "m2"}


async def test_a_recovery_forgets_the_streak_and_the_rest(rig: Rig) -> None:
    await rig.refuse()
    await rig.refuse()
    recovered = Cooldown(provider="alpha", credential="key-1", until=0, model="m1")
    await rig.bus.publish(AUTH_COOLDOWN_EVENTS, recovered)
    await rig.bus.settle()
    assert (await rig.store.state()).cooldowns == []
    count = len(rig.longer)
    await rig.refuse()
    assert len(rig.longer) == count, "the next refusal starts a new streak"


async def test_a_clear_ends_matching_rests_and_tells_every_router(rig: Rig) -> None:
    await rig.refuse(model="m1")
    await rig.refuse(model="m2")
    reply = await rig.bus.request(
        AUTH_COOLDOWN_CLEAR, CooldownClear(provider="alpha", credential="key-1", model="m1"), timeout=2
    )
    assert reply.cleared == 1
    assert rig.cleared == [CooldownCleared(provider="alpha", credential="key-1", model="m1", cleared=1)]
    assert [c.model for c in (await rig.store.state()).cooldowns] == ["m2"]
    await rig.refuse(model="m1")
    assert rig.longer == [], "the clear forgot the streak too"


async def test_clearing_an_unknown_provider_is_a_404(rig: Rig) -> None:
    with pytest.raises(RemoteError) as caught:
        await rig.bus.request(AUTH_COOLDOWN_CLEAR, CooldownClear(provider="nobody"), timeout=2)
    assert caught.value.status == 404
