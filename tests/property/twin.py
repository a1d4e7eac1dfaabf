"""The edge in process over the in-memory bus twin, for the limit and property tests:
the real app (`create_app`, its hot routes and FastAPI routes), with auth, router and
worker as fakes on the bus. Model `ok` answers at once; `hold` starts and then waits
until the test releases it; any other model is unknown (404)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx2

from llmbus.api import NotFound, openai_error_body
from llmbus.bus import Delivery, Inbox
from llmbus.edge.app import create_app
from llmbus.edge.context import EdgeContext
from llmbus.edge.hot import EdgeApp
from llmbus.edge.keys import KeyCache
from llmbus.edge.management import ManagementKey
from llmbus.edge.registry import RegistryClient
from llmbus.edge.settings import EdgeSettings
from llmbus.edge.usage import UsageReporter
from llmbus.proto import (
    AUTH_KEY_VERIFY,
    CONTROL_REGISTRY,
    EVENTS,
    ROUTE,
    Client,
    Delta,
    Done,
    Error,
    KeyVerifyReply,
    KeyVerifyRequest,
    RegistryQuery,
    RegistryReply,
    RouteRequest,
    Started,
    Usage,
    chat_codec,
)
from llmbus.testing import InMemoryBus

__all__ = ["KEY", "OTHER_KEY", "Twin", "edge_twin"]

KEY = "sk-twin-a"
OTHER_KEY = "sk-twin-b"
_CLIENTS = {hashlib.sha256(k.encode()).hexdigest(): Client(id=k[-1], name=k) for k in (KEY, OTHER_KEY)}


@dataclass
class Twin:
    """The app, an HTTP client on it, and the fake upstream's controls."""

    app: EdgeApp
    http: httpx2.AsyncClient
    bus: InMemoryBus
    release: asyncio.Event = field(default_factory=asyncio.Event)
    routed: int = 0


@asynccontextmanager
async def edge_twin(**settings: object) -> AsyncIterator[Twin]:
    bus = InMemoryBus()
    upstream = bus.peer()
    edge_settings = EdgeSettings(
        **{"accept_timeout": 2, "idle_timeout": 10, "request_timeout": 20, **settings}  # type: ignore[arg-type]
    )
    inbox = Inbox(bus)
    await inbox.start()

    async def make_context(settings: EdgeSettings, _: AsyncExitStack) -> EdgeContext:
        return EdgeContext(
            settings=settings,
            bus=bus,
            inbox=inbox,
            keys=KeyCache(bus, ttl=30),
            registry=RegistryClient(bus),
            management=ManagementKey(),
            usage=UsageReporter(bus),
        )

    app = create_app(edge_settings, make_context)
    assert isinstance(app, EdgeApp)
    # ASGITransport runs no lifespan: the context is set as the lifespan would set it.
    app.state.context = await make_context(edge_settings, AsyncExitStack())
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://edge", timeout=30) as http:
        twin = Twin(app, http, bus)

        async def on_verify(request: KeyVerifyRequest, delivery: Delivery) -> None:
            client = _CLIENTS.get(request.key_hash)
            reply = KeyVerifyReply(valid=client is not None, client=client)
            await upstream.respond(delivery, AUTH_KEY_VERIFY, reply)

        async def on_route(request: RouteRequest, _: Delivery) -> None:
            chat = chat_codec.decode(request.body)
            twin.routed += 1

            async def send(*events: Started | Delta | Usage | Done | Error) -> None:
                for event in events:
                    await upstream.publish_raw(request.reply, EVENTS.encode(event))

            if chat.model not in ("ok", "hold"):
                message = f"The model `{chat.model}` does not exist."
                await send(Error(seq=0, status=404, code="model_not_found", message=message))
                return
            await send(Started(seq=0, provider="mock", model=chat.model, credential="c1"))
            if chat.model == "hold":
                await twin.release.wait()
            await send(
                Delta(seq=1, text="hi"), Usage(seq=2, prompt_tokens=1, completion_tokens=1), Done(seq=3)
            )

        async def on_query(query: RegistryQuery, delivery: Delivery) -> None:
            if query.name in ("ok", "hold"):
                reply = RegistryReply(body=json.dumps({"id": query.name}).encode())
            else:
                reply = RegistryReply(status=404, body=openai_error_body(NotFound("no such model")))
            await upstream.respond(delivery, CONTROL_REGISTRY, reply)

        await upstream.subscribe(AUTH_KEY_VERIFY, on_verify)
        await upstream.subscribe(ROUTE, on_route)
        await upstream.subscribe(CONTROL_REGISTRY, on_query)
        try:
            yield twin
        finally:
            twin.release.set()
    await bus.drain()
