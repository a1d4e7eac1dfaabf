"""The router's handlers over the in-memory bus twin: what a request on `llm.v1.route`
turns into (an exec request for a worker, or an error event for the edge), how cooldown
events change that, and the answers to registry queries. No sockets: the router, a fake
edge and a fake worker are three connections to one in-memory server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
import pytest

from llmbus.bus import Delivery, NoResponders
from llmbus.config import parse_config
from llmbus.proto import (
    AUTH_COOLDOWN_EVENTS,
    CONTROL_PROVIDER_ENABLED,
    CONTROL_REGISTRY,
    EVENTS,
    EXEC,
    ROUTE,
    AnyEvent,
    ChatRequest,
    Client,
    Cooldown,
    Error,
    ExecRequest,
    Message,
    Needs,
    ProviderEnabled,
    RegistryQuery,
    RouteRequest,
    Target,
    chat_codec,
)
from llmbus.router.handlers import Router
from llmbus.testing import InMemoryBus

# alpha (priority 10) and beta (priority 1) serve `shared`; beta has no vision.
CONFIG = """
providers:
  alpha:
    endpoint: http://alpha/v1
    api_key: ka
    priority: 10
    models: [shared]
  beta:
    endpoint: http://beta/v1
    api_key: kb
    priority: 1
    models: [shared]
    features: {vision: false}
"""
CHAT = ChatRequest(model="shared", messages=[Message(role="user", content="hi")], stream=True)


@dataclass
class Edge:
    """The edge's side of the bus: sends route requests, collects what comes back."""

    bus: InMemoryBus
    frames: dict[str, list[Delivery]] = field(default_factory=dict)

    async def route(self, model: str = "shared", needs: Needs | None = None, deadline: int = 0) -> str:
        inbox = self.bus.new_inbox()
        frames = self.frames.setdefault(inbox, [])

        async def collect(delivery: Delivery) -> None:
            frames.append(delivery)

        await self.bus.subscribe_raw(inbox, collect)
        request = RouteRequest(
            request_id=f"req-{len(self.frames)}",
            model=model,
            reply=inbox,
            deadline=deadline or int(time.time() * 1000) + 30_000,
            client=Client(id="client-1"),
            needs=needs or Needs(streaming=True),
            body=msgspec.Raw(chat_codec.encode(CHAT)),
        )
        await self.bus.publish(ROUTE, request)
        await self.bus.settle()
        return inbox

    def events(self, inbox: str) -> list[AnyEvent]:
        return [EVENTS.decode(frame.data) for frame in self.frames[inbox]]


@dataclass
class Workers:
    """Fake workers: every exec request, by provider."""

    received: list[tuple[str, ExecRequest, Delivery]] = field(default_factory=list)

    async def on_exec(self, request: ExecRequest, delivery: Delivery) -> None:
        self.received.append((delivery.subject, request, delivery))


@dataclass
class Setup:
    bus: InMemoryBus
    router: Router
    edge: Edge
    workers: Workers


async def _router(bus: InMemoryBus, config: str = CONFIG) -> Router:
    """The router wired to the bus as `llmbus.router.main.serve` wires it."""
    router = Router(bus, parse_config(config, "cfg.yaml", environ={}))
    await bus.subscribe(CONTROL_PROVIDER_ENABLED, router.on_enabled)
    await bus.subscribe(AUTH_COOLDOWN_EVENTS, router.on_cooldown)
    await bus.subscribe(ROUTE, router.on_route, queue=ROUTE.queue)
    await bus.subscribe(CONTROL_REGISTRY, router.on_query, queue=CONTROL_REGISTRY.queue)
    return router


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    bus = InMemoryBus()
    router = await _router(bus.peer())
    workers = Workers()
    worker_bus = bus.peer()
    for provider in ("alpha", "beta"):
        await worker_bus.subscribe(
            EXEC,
            workers.on_exec,
            queue=EXEC.queue_for(provider=provider),
            subject=EXEC.subject(provider=provider),
        )
    edge = Edge(bus.peer())
    try:
        yield Setup(bus, router, edge, workers)
    finally:
        await router.bus.drain()
        await worker_bus.drain()
        await edge.bus.drain()


async def test_a_request_goes_to_the_exec_subject_of_the_first_target_with_the_rest_as_plan(
    setup: Setup,
) -> None:
    inbox = await setup.edge.route()

    [(subject, request, delivery)] = setup.workers.received
    assert subject == "llm.v1.exec.alpha"
    assert request.target == Target(provider="alpha", credential="key-1", upstream_model="shared")
    assert request.plan == [Target(provider="beta", credential="key-1", upstream_model="shared")]
    assert request.reply == inbox
    assert delivery.reply == inbox, "a missing worker must answer the edge's inbox with a 503"
    assert chat_codec.decode(request.body) == CHAT, "the body travels as it came"
    assert setup.edge.frames[inbox] == []


async def test_an_unknown_model_is_a_404_error_event_to_the_reply_inbox(setup: Setup) -> None:
    inbox = await setup.edge.route(model="no-such-model")

    [event] = setup.edge.events(inbox)
    assert isinstance(event, Error)
    assert (event.status, event.code) == (404, "model_not_found")
    assert "no-such-model" in event.message
    assert setup.workers.received == []


async def test_a_capability_no_enabled_provider_has_is_a_400_naming_what_is_missing(setup: Setup) -> None:
    await setup.bus.peer().publish(CONTROL_PROVIDER_ENABLED, ProviderEnabled(provider="alpha", enabled=False))
    await setup.bus.settle()

    inbox = await setup.edge.route(needs=Needs(streaming=True, vision=True))

    [event] = setup.edge.events(inbox)
    assert isinstance(event, Error)
    assert (event.status, event.code) == (400, "unsupported_capability")
    assert "beta does not support images (vision)" in event.message


async def test_vision_requests_skip_the_provider_without_vision(setup: Setup) -> None:
    await setup.edge.route(needs=Needs(vision=True))

    [(_, request, _)] = setup.workers.received
    assert request.target.provider == "alpha"
    assert request.plan == []


async def test_every_credential_cooling_down_is_a_429_with_retry_after(setup: Setup) -> None:
    auth = setup.bus.peer()
    until = time.time() + 30
    for provider in ("alpha", "beta"):
        cooldown = Cooldown(
            provider=provider, credential="key-1", until=until, reason="rate limited upstream", status=429
        )
        await auth.publish(AUTH_COOLDOWN_EVENTS, cooldown)
    await setup.bus.settle()

    inbox = await setup.edge.route()

    [event] = setup.edge.events(inbox)
    assert isinstance(event, Error)
    assert (event.status, event.code) == (429, "rate_limited")
    assert 28 < event.retry_after <= 30
    assert "rate limited upstream" in event.message
    assert setup.workers.received == []


async def test_a_cooling_credential_is_left_out_of_the_plan(setup: Setup) -> None:
    cooldown = Cooldown(provider="alpha", credential="key-1", until=time.time() + 30, reason="r", status=429)
    await setup.bus.peer().publish(AUTH_COOLDOWN_EVENTS, cooldown)
    await setup.bus.settle()

    await setup.edge.route()

    [(subject, request, _)] = setup.workers.received
    assert subject == "llm.v1.exec.beta"
    assert request.plan == []


async def test_a_request_past_its_deadline_is_dropped_without_an_answer(setup: Setup) -> None:
    inbox = await setup.edge.route(deadline=int(time.time() * 1000) - 1)

    assert setup.workers.received == []
    assert setup.edge.frames[inbox] == []


async def test_with_no_worker_listening_the_edge_inbox_gets_a_no_responders_status() -> None:
    bus = InMemoryBus()
    router = await _router(bus.peer())
    edge = Edge(bus.peer())

    inbox = await edge.route()

    [frame] = edge.frames[inbox]
    assert frame.data == b""
    assert frame.headers == {"Status": "503"}
    await router.bus.drain()


async def test_a_model_whose_providers_have_no_live_worker_is_a_503_at_once(setup: Setup) -> None:
    """Once workers have reported and none serves the model's providers, the router says
    so itself (the edge hears no responders only on its own publishes)."""
    setup.router.state.workers_seen["gamma"] = time.monotonic()  # a worker, of another provider

    inbox = await setup.edge.route()

    [event] = setup.edge.events(inbox)
    assert isinstance(event, Error)
    assert (event.status, event.code) == (503, "no_worker_available")
    assert "alpha" in event.message
    assert "beta" in event.message
    assert setup.workers.received == []


async def test_a_model_with_one_live_provider_is_sent_on(setup: Setup) -> None:
    setup.router.state.workers_seen["beta"] = time.monotonic()

    await setup.edge.route()

    assert len(setup.workers.received) == 1


async def test_registry_query_for_a_model_lists_its_offers(setup: Setup) -> None:
    reply = await setup.edge.bus.request(
        CONTROL_REGISTRY, RegistryQuery(kind="model", name="shared"), timeout=1
    )

    assert reply.status == 200
    document = json.loads(reply.body)
    assert document["id"] == "shared"
    assert [offer["provider"] for offer in document["offers"]] == ["alpha", "beta"]


async def test_registry_query_for_an_unknown_provider_is_a_404_in_openai_error_shape(setup: Setup) -> None:
    reply = await setup.edge.bus.request(
        CONTROL_REGISTRY, RegistryQuery(kind="provider", name="nobody"), timeout=1
    )

    assert reply.status == 404
    assert "nobody" in json.loads(reply.body)["error"]["message"]


async def test_registry_query_with_no_router_is_no_responders() -> None:
    bus = InMemoryBus()
    with pytest.raises(NoResponders):
        await bus.request(CONTROL_REGISTRY, RegistryQuery(kind="providers"), timeout=1)
