"""A request nobody takes within the accept timeout (its router or worker died holding it)
is routed once more, under a new request id and reply subject; a late answer to the first
routing lands nowhere. Twice untaken is a clean 503."""

from __future__ import annotations

import asyncio

import pytest

from llmbus.api import Unavailable
from llmbus.bus import Delivery, Inbox
from llmbus.edge.calls import LIVE, Call
from llmbus.proto import CANCEL, EVENTS, ROUTE, CancelRequest, Client, Done, Started
from llmbus.proto import RouteRequest as Route
from llmbus.testing import InMemoryBus
from tests.unit.test_worker_handlers import CHAT


def _call(bus: InMemoryBus, inbox: Inbox) -> Call:
    return Call(
        bus,
        inbox,
        CHAT,
        Client(id="c"),
        accept_timeout=0.2,
        idle_timeout=1,
        request_timeout=30,
    )


async def test_a_request_nobody_took_is_routed_again_and_answered() -> None:
    bus = InMemoryBus()
    edge_bus, router_bus = bus.peer(), bus.peer()
    routed: list[Route] = []
    cancelled: list[str] = []

    async def on_route(request: Route, _: Delivery) -> None:
        routed.append(request)
        if len(routed) == 1:
            return  # held by a router that dies with it
        await router_bus.publish_raw(
            request.reply,
            EVENTS.encode(Started(seq=0, provider="p", model="m", credential="k")),
        )
        await router_bus.publish_raw(request.reply, EVENTS.encode(Done(seq=1, finish_reason="stop")))

    async def on_cancel(request: CancelRequest, _: Delivery) -> None:
        cancelled.append(request.request_id)

    await router_bus.subscribe(ROUTE, on_route)
    await router_bus.subscribe(CANCEL, on_cancel)
    inbox = Inbox(edge_bus)
    await inbox.start()
    call = _call(edge_bus, inbox)
    try:
        await call.start()
        assert isinstance(await call.next(), Started)
        # The live view lists the call once, under the id it has now.
        assert [rid for rid, live in LIVE.items() if live is call] == [call.request_id]
        assert isinstance(await call.next(), Done)
    finally:
        await call.close()
    assert call not in LIVE.values()
    first, second = routed
    assert call.rerouted
    assert first.request_id != second.request_id
    assert first.reply != second.reply
    assert second.request_id == call.request_id
    await asyncio.sleep(0.05)
    assert first.request_id in cancelled, "whoever holds the first may drop it"
    # A late answer to the first routing reaches no stream (its sender hears no responders).
    assert len(inbox) == 0


async def test_a_request_nobody_takes_twice_is_a_503() -> None:
    bus = InMemoryBus()
    edge_bus, router_bus = bus.peer(), bus.peer()
    routed: list[Route] = []

    async def on_route(request: Route, _: Delivery) -> None:
        routed.append(request)

    await router_bus.subscribe(ROUTE, on_route)
    inbox = Inbox(edge_bus)
    await inbox.start()
    call = _call(edge_bus, inbox)
    try:
        await call.start()
        with pytest.raises(Unavailable) as caught:
            await call.next()
    finally:
        await call.close()
    assert caught.value.code == "no_worker_available"
    assert len(routed) == 2
