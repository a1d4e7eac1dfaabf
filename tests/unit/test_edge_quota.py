"""The edge's side of a client key's RPM and TPM, over the in-memory bus with a fake
auth: what it reserves, the 429 it raises, settlement, and fail-open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmbus.api import RateLimited, estimate_tokens
from llmbus.bus import Delivery
from llmbus.edge.keys import Caller
from llmbus.edge.quota import DEFAULT_COMPLETION, estimate, reserve, settle
from llmbus.proto import (
    AUTH_QUOTA_RESERVE,
    AUTH_QUOTA_SETTLE,
    ChatRequest,
    Client,
    ClientLimits,
    Message,
    QuotaGrant,
    QuotaReserve,
    QuotaSettle,
    Usage,
)
from llmbus.testing import InMemoryBus

CHAT = ChatRequest(model="m", messages=[Message(role="user", content="hello there, gateway")])
LIMITED = Caller(client=Client(id="key_1"), limits=ClientLimits(rpm=3, tpm=5000))


class FakeAuth:
    def __init__(self, bus: InMemoryBus, grant: QuotaGrant) -> None:
        self.bus = bus
        self.grant = grant
        self.reserved: list[QuotaReserve] = []
        self.settled: list[QuotaSettle] = []

    async def on_reserve(self, request: QuotaReserve, delivery: Delivery) -> None:
        self.reserved.append(request)
        await self.bus.respond(delivery, AUTH_QUOTA_RESERVE, self.grant)

    async def on_settle(self, settle: QuotaSettle, _: Delivery) -> None:
        self.settled.append(settle)


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus()
    yield bus
    await bus.drain()


async def _auth(bus: InMemoryBus, grant: QuotaGrant) -> FakeAuth:
    peer = bus.peer()
    auth = FakeAuth(peer, grant)
    await peer.subscribe(AUTH_QUOTA_RESERVE, auth.on_reserve, queue="auth")
    await peer.subscribe(AUTH_QUOTA_SETTLE, auth.on_settle, queue="auth")
    return auth


def test_the_estimate_is_the_prompt_plus_the_completion_ceiling() -> None:
    assert estimate(CHAT) == estimate_tokens(CHAT) + DEFAULT_COMPLETION
    with_ceiling = ChatRequest(model="m", messages=CHAT.messages, max_tokens=50)
    assert estimate(with_ceiling) == estimate_tokens(CHAT) + 50


async def test_a_key_without_rpm_or_tpm_never_asks_auth(bus: InMemoryBus) -> None:
    auth = await _auth(bus, QuotaGrant(admitted=False))
    assert await reserve(bus, Caller(client=Client(id="k")), 100) is None
    assert auth.reserved == []


async def test_a_limited_key_reserves_its_estimate_against_its_own_scope(bus: InMemoryBus) -> None:
    auth = await _auth(bus, QuotaGrant(admitted=True))
    reservation = await reserve(bus, LIMITED, 321)
    assert reservation is not None
    [request] = auth.reserved
    assert request.tokens == 321
    assert [(s.kind, s.id, s.rpm, s.tpm) for s in request.scopes] == [("key", "key_1", 3, 5000)]


async def test_a_refusal_is_a_429_with_the_wait(bus: InMemoryBus) -> None:
    await _auth(bus, QuotaGrant(admitted=False, retry_after=19.6, limited_by="key:key_1", reason="rpm"))
    with pytest.raises(RateLimited) as caught:
        await reserve(bus, LIMITED, 10)
    assert caught.value.status == 429
    assert caught.value.retry_after == 19.6
    assert "requests per minute" in caught.value.message
    assert "20s" in caught.value.message


async def test_limits_are_not_checked_when_auth_does_not_answer(bus: InMemoryBus) -> None:
    assert await reserve(bus, LIMITED, 10) is None


async def test_settling_sends_the_real_usage_or_refunds_a_request_never_answered(bus: InMemoryBus) -> None:
    auth = await _auth(bus, QuotaGrant(admitted=True))
    first = await reserve(bus, LIMITED, 500)
    await settle(bus, first, Usage(seq=0, prompt_tokens=30, completion_tokens=12), answered=True)
    second = await reserve(bus, LIMITED, 500)
    await settle(bus, second, None, answered=False)
    third = await reserve(bus, LIMITED, 500)
    await settle(bus, third, None, answered=True)
    await bus.settle()
    assert [(s.reserved, s.tokens) for s in auth.settled] == [(500, 42), (500, 0)]
