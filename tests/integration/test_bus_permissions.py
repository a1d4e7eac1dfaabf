"""The closed bus on a real nats-server: each service's NATS user may use its own subjects
only. The server carries the rendered `authorization` block (`llmbus.bus.access`); these
tests connect as the services' users. A server of their own: the session's one carries
the end-to-end stack, which must not see these tests' messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from llmbus.bus import Bus, BusUnavailable, Delivery, NatsBus, NoResponders, connect, retry_within
from llmbus.proto import (
    AUTH_COOLDOWN_EVENTS,
    AUTH_KEY_VERIFY,
    AUTH_PROVIDER_TOGGLE,
    Cooldown,
    KeyVerifyReply,
    KeyVerifyRequest,
    ProviderToggle,
)
from llmbus.testing.bususers import HARNESS, BusUsers


async def _as(server: str, users: BusUsers, user: str) -> NatsBus:
    return await connect(server, name=f"test-{user}", user=user, password=users.password(user))


@pytest.fixture
async def harness(server: str, users: BusUsers) -> AsyncIterator[Bus]:
    bus = await connect(users.url(server, HARNESS), name="permissions-harness")
    yield bus
    await bus.drain()


async def _eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {within}s")


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("bus refused:")]


async def test_a_worker_cannot_switch_a_provider_off(
    server: str, users: BusUsers, harness: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def toggled(message: ProviderToggle, delivery: Delivery) -> None:
        seen.append(f"toggle {message.provider}")

    async def cooled(message: Cooldown, delivery: Delivery) -> None:
        seen.append(f"cooldown {message.provider}")

    await harness.subscribe(AUTH_PROVIDER_TOGGLE, toggled)
    await harness.subscribe(AUTH_COOLDOWN_EVENTS, cooled)
    await harness.flush()
    worker = await _as(server, users, "worker")
    caplog.set_level(logging.ERROR, logger="llmbus.bus.client")
    try:
        await worker.publish(AUTH_PROVIDER_TOGGLE, ProviderToggle(provider="openai", enabled=False))
        # A subject the worker may use, after the refused one on the same connection:
        # NATS keeps one publisher's order, so once it arrives the other would have too.
        await worker.publish(AUTH_COOLDOWN_EVENTS, Cooldown(provider="openai", credential="c1", until=1.0))
        await _eventually(lambda: "cooldown openai" in seen and bool(_refusals(caplog)))
    finally:
        await worker.drain()
    assert seen == ["cooldown openai"], "the refused publish reached a subscriber"
    assert _refusals(caplog) == [
        'bus refused: nats: permissions violation for publish to "auth.v1.providers.toggle"'
    ]


async def test_an_edge_cannot_read_another_edges_inbox(
    server: str, users: BusUsers, harness: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    edge = await _as(server, users, "edge")
    caplog.set_level(logging.ERROR, logger="llmbus.bus.client")
    got: list[str] = []

    async def on(msg: Delivery) -> None:
        got.append(msg.subject)

    try:
        await edge.subscribe_raw("_INBOX.edge-2.>", on)
        await edge.subscribe_raw("_INBOX.edge.mine", on)
        await edge.flush()
        await _eventually(lambda: bool(_refusals(caplog)))
        await harness.publish_raw("_INBOX.edge-2.theirs", b"frame")
        await harness.publish_raw("_INBOX.edge.mine", b"frame")
        await _eventually(lambda: bool(got))
    finally:
        await edge.drain()
    assert got == ["_INBOX.edge.mine"]
    assert _refusals(caplog) == [
        'bus refused: nats: permissions violation for subscription to "_inbox.edge-2.>"'
    ]


async def test_services_answer_each_other_through_their_own_inboxes(server: str, users: BusUsers) -> None:
    auth = await _as(server, users, "auth")
    edge = await _as(server, users, "edge-2")

    async def verify(message: KeyVerifyRequest, delivery: Delivery) -> None:
        assert delivery.reply.startswith("_INBOX.edge-2."), delivery.reply
        await auth.respond(delivery, AUTH_KEY_VERIFY, KeyVerifyReply(valid=True))

    try:
        await auth.subscribe(AUTH_KEY_VERIFY, verify, queue="permissions-test")
        await auth.flush()
        # A server under load may take a moment to see a queue subscription its client
        # has flushed (nats-server#2876): the services ride that out with the one retry
        # policy, and so does this test.
        reply = await retry_within(
            5,
            lambda _: edge.request(AUTH_KEY_VERIFY, KeyVerifyRequest(key_hash="h"), timeout=2),
            on=NoResponders,
        )
    finally:
        await edge.drain()
        await auth.drain()
    assert reply.valid


async def test_a_wrong_password_is_refused_at_once_without_echoing_it(server: str) -> None:
    with pytest.raises(BusUnavailable) as refused:
        await connect(server, name="intruder", user="worker", password="not-the-password", timeout=5)
    message = str(refused.value)
    assert "refused user 'worker'" in message
    assert "LLMBUS_NATS_PASSWORD" in message
    assert "not-the-password" not in message
