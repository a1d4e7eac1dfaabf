"""The worker's side of limits and cooldowns, over the in-memory bus twin with a fake
auth: provider and credential limits reserved before the upstream call (failover when
refused, fail-open when auth is silent, settled with the real usage), the per-request
token ceiling, per-model rests after a 429, and the recovery report after a rest."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx2
import msgspec
import pytest

from llmbus.bus import Delivery
from llmbus.config import LimitsConfig
from llmbus.proto import (
    AUTH_QUOTA_RESERVE,
    AUTH_QUOTA_SETTLE,
    EXEC,
    ChatRequest,
    Client,
    Cooldown,
    Done,
    Error,
    ExecRequest,
    Message,
    QuotaGrant,
    QuotaReserve,
    QuotaSettle,
    Started,
    Target,
    chat_codec,
)
from tests.unit.test_worker_handlers import ALPHA, BETA, HELLO, PROVIDERS, Rig, _error, _rig

CHAT = ChatRequest(model="shared", messages=[Message(role="user", content="hi")], stream=True, max_tokens=100)


class FakeAuth:
    """Answers reservations with the grants it is given, and keeps what it was sent."""

    def __init__(self, *grants: QuotaGrant) -> None:
        self.grants = list(grants)
        self.reserved: list[QuotaReserve] = []
        self.settled: list[QuotaSettle] = []

    async def attach(self, rig: Rig) -> None:
        self.bus = rig.bus
        await rig.bus.subscribe(AUTH_QUOTA_RESERVE, self._reserve, queue="auth")
        await rig.bus.subscribe(AUTH_QUOTA_SETTLE, self._settle, queue="auth")

    async def _reserve(self, request: QuotaReserve, delivery: Delivery) -> None:
        self.reserved.append(request)
        grant = self.grants.pop(0) if self.grants else QuotaGrant(admitted=True)
        await self.bus.respond(delivery, AUTH_QUOTA_RESERVE, grant)

    async def _settle(self, settle: QuotaSettle, _: Delivery) -> None:
        self.settled.append(settle)


def _limited(rig: Rig, provider: str = "alpha", **limits: int) -> None:
    rig.worker.providers[provider] = msgspec.structs.replace(
        PROVIDERS[provider], limits=LimitsConfig(**limits)
    )


async def _send(rig: Rig, chat: ChatRequest = CHAT, plan: tuple[Target, ...] = (), tokens: int = 120) -> None:
    request = ExecRequest(
        request_id="req-1",
        model="shared",
        reply=rig.inbox,
        deadline=int(time.time() * 1000) + 30_000,
        client=Client(id="client-1"),
        body=msgspec.Raw(chat_codec.encode(chat)),
        tokens=tokens,
        target=ALPHA,
        plan=list(plan),
    )
    await rig.bus.publish(EXEC, request, reply=rig.inbox, provider="alpha")
    await rig.bus.settle()


@pytest.fixture
async def rigs() -> AsyncIterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        await rig.worker.bus.drain()
        await rig.worker.http.aclose()
        await rig.bus.drain()


async def _with_auth(rigs: list[Rig], auth: FakeAuth, **answers: httpx2.Response) -> Rig:
    def replay(response: httpx2.Response) -> Callable[[httpx2.Request], httpx2.Response]:
        return lambda _: response

    rig = await _rig({host: replay(response) for host, response in answers.items()})
    rigs.append(rig)
    await auth.attach(rig)
    return rig


async def test_a_provider_over_its_own_limit_hands_the_request_to_the_next_target(
    rigs: list[Rig],
) -> None:
    auth = FakeAuth(QuotaGrant(admitted=False, retry_after=4, limited_by="provider:alpha", reason="rpm"))
    rig = await _with_auth(
        rigs, auth, alpha=httpx2.Response(200, content=HELLO), beta=httpx2.Response(200, content=HELLO)
    )
    _limited(rig, requests_per_minute=1)

    await _send(rig, plan=(BETA,))

    assert rig.upstream.hosts() == ["beta"], "the refused target is never called"
    [reserve] = auth.reserved
    assert [(s.kind, s.id, s.rpm) for s in reserve.scopes] == [("provider", "alpha", 1)]
    assert reserve.tokens == 120
    assert rig.execs[-1].target == BETA
    assert rig.cooldowns == [], "our own limit rests no credential"
    assert isinstance(rig.answer()[-1], Done)


async def test_a_refusal_with_nothing_left_is_a_429_with_retry_after(rigs: list[Rig]) -> None:
    auth = FakeAuth(QuotaGrant(admitted=False, retry_after=4.2, limited_by="provider:alpha", reason="tpm"))
    rig = await _with_auth(rigs, auth, alpha=httpx2.Response(200, content=HELLO))
    _limited(rig, tokens_per_minute=50)

    await _send(rig)

    [error] = rig.answer()
    assert isinstance(error, Error)
    assert (error.status, error.code, error.retry_after) == (429, "rate_limit_exceeded", 4.2)
    assert "TPM" in error.message
    assert rig.upstream.calls == []


async def test_an_admitted_request_settles_its_reservation_with_the_real_usage(rigs: list[Rig]) -> None:
    auth = FakeAuth()
    rig = await _with_auth(rigs, auth, alpha=httpx2.Response(200, content=HELLO))
    _limited(rig, tokens_per_minute=10_000)

    await _send(rig, tokens=300)

    [settle] = auth.settled
    assert (settle.reserved, settle.tokens) == (300, 7)
    assert settle.request_id == auth.reserved[0].request_id


async def test_an_upstream_refusal_refunds_the_whole_reservation(rigs: list[Rig]) -> None:
    auth = FakeAuth()
    rig = await _with_auth(rigs, auth, alpha=_error(500, "boom"))
    _limited(rig, tokens_per_minute=10_000)

    await _send(rig, tokens=300)

    [settle] = auth.settled
    assert (settle.reserved, settle.tokens) == (300, 0)


async def test_credential_limits_are_their_own_scope(rigs: list[Rig]) -> None:
    auth = FakeAuth()
    rig = await _with_auth(rigs, auth, alpha=httpx2.Response(200, content=HELLO))
    provider = rig.worker.providers["alpha"]
    entry = msgspec.structs.replace(provider.credentials[0], limits=LimitsConfig(requests_per_minute=5))
    rig.worker.providers["alpha"] = msgspec.structs.replace(provider, credentials=(entry,))

    await _send(rig)

    [reserve] = auth.reserved
    assert [(s.kind, s.id, s.rpm) for s in reserve.scopes] == [("credential", "alpha/key-1", 5)]


async def test_more_max_tokens_than_the_provider_allows_is_a_400(rigs: list[Rig]) -> None:
    auth = FakeAuth()
    rig = await _with_auth(rigs, auth, alpha=httpx2.Response(200, content=HELLO))
    _limited(rig, max_tokens_per_request=50)

    await _send(rig, plan=(BETA,))

    [error] = rig.answer()
    assert isinstance(error, Error)
    assert (error.status, error.code) == (400, "max_tokens_exceeded")
    assert rig.upstream.calls == []
    assert auth.reserved == []


async def test_limits_are_not_checked_when_auth_does_not_answer(rigs: list[Rig]) -> None:
    rig = await _rig({"alpha": lambda _: httpx2.Response(200, content=HELLO)})
    rigs.append(rig)
    _limited(rig, requests_per_minute=1)

    await _send(rig)

    assert rig.upstream.hosts() == ["alpha"], "fail-open: an auth outage is not a gateway outage"
    assert isinstance(rig.answer()[-1], Done)


async def test_providers_without_limits_never_ask_auth(rigs: list[Rig]) -> None:
    auth = FakeAuth()
    rig = await _with_auth(rigs, auth, alpha=httpx2.Response(200, content=HELLO))

    await _send(rig)

    assert auth.reserved == []
    assert auth.settled == []


async def test_a_429_rests_the_credential_for_that_model_and_passes_retry_after_on(
    rigs: list[Rig],
) -> None:
    rig = await _with_auth(rigs, FakeAuth(), alpha=_error(429, "slow", {"retry-after": "7"}))

    await _send(rig)

    [cooldown] = rig.cooldowns
    assert (cooldown.model, cooldown.retry_after, cooldown.status) == ("up-alpha", 7.0, 429)


async def test_a_429_without_retry_after_leaves_the_backoff_to_auth(rigs: list[Rig]) -> None:
    rig = await _with_auth(rigs, FakeAuth(), alpha=_error(429, "slow"))

    await _send(rig)

    [cooldown] = rig.cooldowns
    assert (cooldown.model, cooldown.retry_after) == ("up-alpha", 0.0)
    assert cooldown.until == pytest.approx(time.time() + 60, abs=5)


async def test_a_401_rests_the_credential_for_every_model(rigs: list[Rig]) -> None:
    rig = await _with_auth(rigs, FakeAuth(), alpha=_error(401, "bad key"))

    await _send(rig)

    [cooldown] = rig.cooldowns
    assert (cooldown.status, cooldown.model) == (401, "")


async def test_the_first_answer_after_a_rest_announces_the_recovery_once(rigs: list[Rig]) -> None:
    rig = await _with_auth(rigs, FakeAuth(), alpha=httpx2.Response(200, content=HELLO))
    ended = time.time() - 1
    rig.worker.rests.note(Cooldown(provider="alpha", credential="key-1", model="up-alpha", until=ended))
    rig.worker.rests.note(Cooldown(provider="alpha", credential="key-1", model="other", until=ended))

    await _send(rig)
    await _send(rig)

    assert [(c.model, c.until) for c in rig.cooldowns] == [("up-alpha", 0.0)]
    assert isinstance(rig.answer()[0], Started)


async def test_an_answer_while_the_rest_lasts_announces_nothing(rigs: list[Rig]) -> None:
    rig = await _with_auth(rigs, FakeAuth(), alpha=httpx2.Response(200, content=HELLO))
    rig.worker.rests.note(Cooldown(provider="alpha", credential="key-1", until=time.time() + 60))

    await _send(rig)

    assert rig.cooldowns == []
