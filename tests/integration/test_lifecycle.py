"""The lifecycle every bus service runs (`llmbus.bus.Lifecycle`), over a real nats-server:
ready only once its subscriptions are live, and on stop, in order: no new work, the work
in flight finishes (or is cut after the drain time), background tasks stop, the metrics
port closes, the bus drains, what the service opened closes last."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from llmbus.bus import Delivery, Lifecycle, NatsBus, NoResponders, connect, retry_within
from llmbus.proto import CONTROL_REGISTRY, RegistryQuery, RegistryReply
from llmbus.testing import free_port, start_nats


@dataclass(frozen=True)
class Settings:
    nats_url: str
    nats_user: str = ""
    nats_password: str = ""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    drain_seconds: float = 5.0


@pytest.fixture(scope="module")
def own_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start_nats(port, tmp_path_factory.mktemp("lifecycle-bus"))
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.stop()


class Service:
    """A service whose one handler answers a registry query after `work` seconds."""

    def __init__(self, settings: Settings, work: float) -> None:
        self.settings = settings
        self.work = work
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.order: list[str] = []
        self.handled = 0
        self.working = asyncio.Event()
        """Set once `expected` handlers have begun."""
        self.expected = 1
        self.started = 0

    async def answer(self, query: RegistryQuery, delivery: Delivery) -> None:
        self.started += 1
        if self.started >= self.expected:
            self.working.set()
        try:
            await asyncio.sleep(self.work)
        except asyncio.CancelledError:
            self.order.append(f"cut {query.name}")
            raise
        self.handled += 1
        await self.bus.respond(delivery, CONTROL_REGISTRY, RegistryReply(body=query.name.encode()))

    async def run(self) -> None:
        async with Lifecycle("test", self.settings, self.stop) as life:

            async def closed() -> None:
                self.order.append(f"closed, bus connected: {life.bus.connected}")

            life.on_close(closed)
            self.bus = await life.connect("test-service")
            sub = await self.bus.subscribe(CONTROL_REGISTRY, self.answer, queue="router")

            async def stop_taking_work() -> None:
                self.order.append("no new work")
                await sub.unsubscribe()

            life.on_stop(stop_taking_work)

            async def background() -> None:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    self.order.append(f"background cancelled, handled {self.handled}")
                    raise

            life.spawn(background())
            self.ready.set()
            await life.serve("test ready")


def _health(port: int) -> int:
    """The metrics port's `/healthz` status (blocking: run it in a thread while the
    service's loop runs)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        return int(response.status)


async def _ask(bus: NatsBus, name: str) -> bytes:
    # A loaded server may see the service's flushed queue subscription a moment late
    # (nats-server#2876): asked again, as the services themselves do.
    reply = await retry_within(
        10,
        lambda _: bus.request(CONTROL_REGISTRY, RegistryQuery(kind="model", name=name), timeout=10),
        on=NoResponders,
    )
    return reply.body


async def test_on_stop_no_new_work_is_taken_and_work_in_flight_finishes(own_nats_url: str) -> None:
    metrics_port = free_port()
    service = Service(Settings(own_nats_url, metrics_port=metrics_port), work=0.5)
    running = asyncio.create_task(service.run())
    client = await connect(own_nats_url, name="test-client")
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        await asyncio.sleep(0.2)  # the metrics port and the flush
        assert await asyncio.to_thread(_health, metrics_port) == 200
        service.expected = 3
        in_flight = [asyncio.create_task(_ask(client, f"m{i}")) for i in range(3)]
        await asyncio.wait_for(service.working.wait(), 10)
        service.stop.set()
        await asyncio.sleep(0.1)
        with pytest.raises(NoResponders):
            await client.request(CONTROL_REGISTRY, RegistryQuery(kind="model", name="late"), timeout=10)
        assert sorted(await asyncio.gather(*in_flight)) == [b"m0", b"m1", b"m2"]
        await asyncio.wait_for(running, 10)
    finally:
        await client.drain()
    assert service.order == [
        "no new work",
        "background cancelled, handled 3",
        "closed, bus connected: False",
    ]
    with pytest.raises(urllib.error.URLError, match="refused"):
        _health(metrics_port)


async def test_work_longer_than_the_drain_time_is_cut(own_nats_url: str) -> None:
    service = Service(Settings(own_nats_url, drain_seconds=0.3), work=3600)
    running = asyncio.create_task(service.run())
    client = await connect(own_nats_url, name="test-client")
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        asking = asyncio.create_task(_ask(client, "forever"))
        await asyncio.wait_for(service.working.wait(), 10)
        service.stop.set()
        await asyncio.wait_for(running, 10)
        asking.cancel()
    finally:
        await client.drain()
    assert service.order == [
        "no new work",
        "cut forever",
        "background cancelled, handled 0",
        "closed, bus connected: False",
    ]
