"""The workers' token source backed by auth, over the in-memory bus twin."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from llmbus.bus import Delivery
from llmbus.config import Config, CredentialEntry, ProviderConfig
from llmbus.proto import AUTH_TOKENS_GET, BusError, TokenReply, TokenRequest
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.errors import CredentialUnavailable
from llmbus.testing import InMemoryBus
from llmbus.worker.tokens import AuthTokens

NOW = 1_800_000_000.0
PROVIDER: ConfiguredProvider = configured_providers(Config(providers={"copilot": ProviderConfig()}))[
    "copilot"
]
ENTRY = CredentialEntry(name="octo-1a2b3c")


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Auth:
    """Answers `auth.v1.tokens.get` with `tok-<n>`, living `life` seconds."""

    clock: Clock
    life: float = 1800.0
    refuse: BusError | None = None
    gate: asyncio.Event | None = None
    requests: list[TokenRequest] = field(default_factory=list)
    bus: InMemoryBus = field(default_factory=InMemoryBus)

    async def handle(self, request: TokenRequest, delivery: Delivery) -> None:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.refuse is not None:
            await self.bus.respond_error(delivery, self.refuse)
            return
        reply = TokenReply(
            token=f"tok-{len(self.requests)}",
            expires_at=self.clock.now + self.life,
            endpoint="https://api.example",
        )
        await self.bus.respond(delivery, AUTH_TOKENS_GET, reply)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def auth(clock: Clock) -> Auth:
    auth = Auth(clock)
    await auth.bus.subscribe(AUTH_TOKENS_GET, auth.handle, queue="auth")
    return auth


def _source(auth: Auth, clock: Clock) -> AuthTokens:
    return AuthTokens(auth.bus.peer(), clock=clock, timeout=1.0)


async def test_a_token_from_auth_is_cached_until_shortly_before_it_expires(auth: Auth, clock: Clock) -> None:
    source = _source(auth, clock)
    first = await source.get(PROVIDER, ENTRY)
    assert (first.name, first.token, first.endpoint) == (ENTRY.name, "tok-1", "https://api.example")
    clock.now += 1800 - 31
    assert (await source.get(PROVIDER, ENTRY)).token == "tok-1"
    clock.now += 2
    assert (await source.get(PROVIDER, ENTRY)).token == "tok-2"
    assert [r.refresh for r in auth.requests] == [False, False]


async def test_invalidate_makes_the_next_get_ask_auth_to_refresh(auth: Auth, clock: Clock) -> None:
    source = _source(auth, clock)
    await source.get(PROVIDER, ENTRY)
    source.invalidate(PROVIDER, ENTRY)
    assert (await source.get(PROVIDER, ENTRY)).token == "tok-2"
    await source.get(PROVIDER, ENTRY)
    assert [(r.provider, r.credential, r.refresh) for r in auth.requests] == [
        ("copilot", ENTRY.name, False),
        ("copilot", ENTRY.name, True),
    ]


async def test_concurrent_gets_share_one_request_to_auth(auth: Auth, clock: Clock) -> None:
    auth.gate = asyncio.Event()
    source = _source(auth, clock)
    waiting = [asyncio.create_task(source.get(PROVIDER, ENTRY)) for _ in range(5)]
    await asyncio.sleep(0)
    auth.gate.set()
    tokens = {c.token for c in await asyncio.gather(*waiting)}
    assert tokens == {"tok-1"}
    assert len(auth.requests) == 1


async def test_auth_refusing_is_a_retryable_credential_failure_with_its_reason(
    auth: Auth, clock: Clock
) -> None:
    auth.refuse = BusError(status=503, code="credential_unavailable", message="refresh failed: invalid_grant")
    with pytest.raises(CredentialUnavailable) as raised:
        await _source(auth, clock).get(PROVIDER, ENTRY)
    assert raised.value.retryable
    assert "invalid_grant" in raised.value.message


async def test_no_auth_on_the_bus_is_a_retryable_credential_failure(clock: Clock) -> None:
    source = AuthTokens(InMemoryBus(), clock=clock, timeout=0.5)
    with pytest.raises(CredentialUnavailable) as raised:
        await source.get(PROVIDER, ENTRY)
    assert raised.value.retryable
    assert raised.value.status == 503


async def test_a_failed_request_is_not_cached(auth: Auth, clock: Clock) -> None:
    auth.refuse = BusError(status=503, code="credential_unavailable", message="down")
    source = _source(auth, clock)
    with pytest.raises(CredentialUnavailable):
        await source.get(PROVIDER, ENTRY)
    auth.refuse = None
    assert (await source.get(PROVIDER, ENTRY)).token == "tok-2"
