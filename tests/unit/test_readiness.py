"""The edge's `/readyz` answer (`llmbus.edge.routes.health.Readiness`) over the bus twin:
what it says for each thing missing, and that it asks a router at most once per second
however many probes arrive."""

from __future__ import annotations

import asyncio
import json

from llmbus.bus import Delivery
from llmbus.edge.routes.health import Readiness
from llmbus.proto import CONTROL_REGISTRY, RegistryQuery, RegistryReply
from llmbus.testing import InMemoryBus


class Router:
    """A router's registry answer: providers and their reasons (None: routable)."""

    def __init__(self, bus: InMemoryBus, providers: dict[str, str | None]) -> None:
        self.bus = bus
        self.providers = providers
        self.asked = 0

    async def on_query(self, query: RegistryQuery, delivery: Delivery) -> None:
        self.asked += 1
        assert query.kind == "providers"
        data = [
            {"id": name, "routable": reason is None, "reason": reason}
            for name, reason in self.providers.items()
        ]
        body = json.dumps({"object": "list", "data": data}).encode()
        await self.bus.respond(delivery, CONTROL_REGISTRY, RegistryReply(body=body))


async def _router(edge: InMemoryBus, providers: dict[str, str | None]) -> Router:
    peer = edge.peer()
    router = Router(peer, providers)
    await peer.subscribe(CONTROL_REGISTRY, router.on_query, queue="router")
    return router


async def test_ready_when_a_router_knows_a_provider_with_a_live_worker() -> None:
    edge = InMemoryBus()
    await _router(edge, {"openai": None, "claude": "no live worker for family anthropic"})
    assert await Readiness(edge).check() == (200, {"status": "ready"})


async def test_no_router_is_a_503_naming_the_router() -> None:
    status, body = await Readiness(InMemoryBus(), timeout=0.2).check()
    assert status == 503
    assert body["missing"] == "router"
    assert body["status"] == "unavailable"


async def test_no_live_worker_is_a_503_naming_the_workers_and_each_providers_reason() -> None:
    edge = InMemoryBus()
    reasons: dict[str, str | None] = {
        "openai": "no live worker for family openai",
        "claude": "no live worker for family anthropic",
    }
    await _router(edge, reasons)
    status, body = await Readiness(edge).check()
    assert status == 503
    assert body["missing"] == "worker"
    assert body["providers"] == reasons


async def test_providers_all_switched_off_is_a_503_naming_the_providers() -> None:
    edge = InMemoryBus()
    await _router(edge, {"openai": "disabled"})
    status, body = await Readiness(edge).check()
    assert status == 503
    assert body["missing"] == "provider"


async def test_no_bus_is_a_503_without_asking() -> None:
    edge = InMemoryBus()
    router = await _router(edge, {"openai": None})
    edge.disconnect()
    status, body = await Readiness(edge).check()
    assert status == 503
    assert body["missing"] == "bus"
    assert router.asked == 0


async def test_many_probes_ask_a_router_once_per_second_and_see_a_change_after_it() -> None:
    edge = InMemoryBus()
    router = await _router(edge, {"openai": None})
    readiness = Readiness(edge, ttl=0.3)
    answers = await asyncio.gather(*(readiness.check() for _ in range(50)))
    assert {status for status, _ in answers} == {200}
    assert router.asked == 1
    router.providers = {"openai": "no live worker for family openai"}
    assert (await readiness.check())[0] == 200, "the answer is kept for its ttl"
    await asyncio.sleep(0.35)
    assert (await readiness.check())[0] == 503
    assert router.asked == 2
