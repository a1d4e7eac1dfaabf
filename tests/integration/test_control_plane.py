"""The control plane on a real nats-server and Redis: a provider switch goes through auth
into Redis and out to every router; a router started later catches up on switches and
cooldowns. Its own nats-server: the session's one also carries the end-to-end stack,
whose auth service answers on the same subjects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from llmbus.auth.cooldowns import CooldownHandlers
from llmbus.auth.handlers import AuthHandlers
from llmbus.auth.keys import KeyStore
from llmbus.auth.runtime import RuntimeStore
from llmbus.bus import Bus, RemoteError, connect
from llmbus.config import CooldownConfig, parse_config
from llmbus.proto import (
    AUTH_COOLDOWN_EVENTS,
    AUTH_PROVIDER_TOGGLE,
    AUTH_STATE,
    CONTROL_PROVIDER_ENABLED,
    Cooldown,
    Needs,
    ProviderToggle,
)
from llmbus.router.handlers import Router
from llmbus.routing import NoRoute
from llmbus.testing import free_port, start_nats

CONFIG = parse_config(
    "providers:\n  spare:\n    type: openai\n    endpoint: http://up\n"
    "    api_keys: [k1, k2]\n    models: [m]\n",
    environ={},
)


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    port = free_port()
    process = start_nats(port, tmp_path)
    try:
        bus = await connect(f"nats://127.0.0.1:{port}", name="control-plane-test")
        yield bus
        await bus.drain()
    finally:
        process.stop()


@pytest.fixture
async def auth(bus: Bus, redis_url: str) -> AsyncIterator[AuthHandlers]:
    # Database 3: the end-to-end stack uses database 0 of the same server.
    redis = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    await redis.flushdb()
    handlers = AuthHandlers(bus, KeyStore(redis), RuntimeStore(redis), {"spare"})
    await bus.subscribe(AUTH_PROVIDER_TOGGLE, handlers.toggle_provider, queue="auth")
    await bus.subscribe(AUTH_STATE, handlers.runtime_state, queue="auth")
    cooldowns = CooldownHandlers(bus, RuntimeStore(redis), {"spare": CooldownConfig()})
    await bus.subscribe(AUTH_COOLDOWN_EVENTS, cooldowns.record, queue="auth")
    yield handlers
    await redis.aclose()


async def _eventually(check: Callable[[], bool], within: float) -> None:
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {within}s")


async def _router(bus: Bus) -> Router:
    router = Router(bus, CONFIG)
    await bus.subscribe(CONTROL_PROVIDER_ENABLED, router.on_enabled)
    await bus.subscribe(AUTH_COOLDOWN_EVENTS, router.on_cooldown)
    await bus.flush()
    return router


async def test_a_switch_reaches_running_routers_and_routers_started_later(
    bus: Bus, auth: AuthHandlers
) -> None:
    first, second = await _router(bus), await _router(bus)
    reply = await bus.request(
        AUTH_PROVIDER_TOGGLE, ProviderToggle(provider="spare", enabled=False), timeout=2
    )
    assert reply.enabled is False
    await _eventually(lambda: first.state.enabled.get("spare") is False, within=1)
    await _eventually(lambda: second.state.enabled.get("spare") is False, within=1)
    with pytest.raises(NoRoute):
        first.catalog.resolve("m", Needs(), first.state)

    late = Router(bus, CONFIG)
    await asyncio.wait_for(late.catch_up(), 3)
    assert late.state.enabled == {"spare": False}


async def test_a_cooldown_is_kept_for_routers_started_later(bus: Bus, auth: AuthHandlers) -> None:
    until = time.time() + 60
    await bus.publish(
        AUTH_COOLDOWN_EVENTS, Cooldown(provider="spare", credential="key-1", until=until, reason="429")
    )
    await bus.flush()
    late = Router(bus, CONFIG)
    for _ in range(60):
        await late.catch_up()
        if late.state.cooldowns:
            break
        await asyncio.sleep(0.05)
    candidates = late.catalog.resolve("m", Needs(), late.state)
    assert [t.credential for tier in candidates.tiers for t in tier] == ["key-2"]


async def test_switching_an_unknown_provider_is_refused(bus: Bus, auth: AuthHandlers) -> None:
    with pytest.raises(RemoteError) as caught:
        await bus.request(AUTH_PROVIDER_TOGGLE, ProviderToggle(provider="nobody", enabled=False), timeout=2)
    assert caught.value.status == 404


async def test_a_router_catches_up_once_auth_starts(bus: Bus, redis_url: str) -> None:
    late = Router(bus, CONFIG)
    task = asyncio.create_task(late.catch_up(max_delay=0.2))
    await asyncio.sleep(0.3)
    assert not task.done(), "no auth yet: the router keeps asking"
    redis = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    try:
        await redis.flushdb()
        await RuntimeStore(redis).set_enabled("spare", False)
        handlers = AuthHandlers(bus, KeyStore(redis), RuntimeStore(redis), {"spare"})
        await bus.subscribe(AUTH_STATE, handlers.runtime_state, queue="auth")
        await asyncio.wait_for(task, 3)
    finally:
        await redis.aclose()
    assert late.state.enabled == {"spare": False}
