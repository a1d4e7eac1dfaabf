"""Tokens for workers through the real pieces: NATS (`auth.v1.tokens.get`), Redis (the
sealed store) and the mock upstream's Copilot token service and Kiro refresh endpoints.
A worker's token source gets a minted token, keeps it, gets a new one once the old is
due, and a refused refresh turns the credential unhealthy, announced to the routers."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import msgspec
import pytest
from redis.asyncio import Redis

from llmbus.auth.credential_handlers import CredentialHandlers
from llmbus.auth.credentials import CredentialStore, StoredSecret
from llmbus.auth.exchange import UpstreamExchange
from llmbus.auth.vault import Vault
from llmbus.bus import Bus, Delivery, NatsBus, connect
from llmbus.config import Config, CredentialEntry, ProviderConfig
from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings
from llmbus.proto import AUTH_CREDENTIAL_EVENTS, CredentialEvent
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.errors import CredentialUnavailable
from llmbus.providers.http import HttpClient
from llmbus.testing import free_port, start_nats
from llmbus.worker.tokens import AuthTokens

MOCK = "http://mock.test"
GITHUB_TOKEN = "gho_integrationtoken01"


@dataclass
class Clock:
    """Real time, plus however far the test has moved it on."""

    ahead: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@dataclass
class Auth:
    providers: dict[str, ConfiguredProvider]
    store: CredentialStore
    worker: AuthTokens
    events: asyncio.Queue[CredentialEvent]
    clock: Clock
    buses: list[Bus]
    """Auth's bus connections, the current one last (a test may restart auth)."""


def _token_file(tmp_path: Path) -> Path:
    path = tmp_path / "kiro-auth-token.json"
    path.write_text(
        json.dumps(
            {
                "accessToken": "aoa-expired-file-token",
                "refreshToken": "aor-invalid-file-token",
                "expiresAt": "2020-01-01T00:00:00.000Z",
                "authMethod": "social",
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def own_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bus of its own: on the session's bus, the end-to-end stack's auth replicas would
    share the `auth` queue group and answer some token requests from another Redis."""
    port = free_port()
    process = start_nats(port, tmp_path_factory.mktemp("token-service-bus"))
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture
async def auth(own_nats_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Auth]:
    nats_url = own_nats_url
    redis = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/4")
    await redis.flushdb()
    http = HttpClient(
        transport=httpx2.ASGITransport(app=create_app(MockSettings(copilot_token_seconds=1800)))
    )
    providers = configured_providers(
        Config(
            providers={
                "copilot": msgspec.convert(
                    {"github_token": GITHUB_TOKEN, "auth_endpoint": MOCK}, ProviderConfig
                ),
                "kiro": msgspec.convert(
                    {"token_file": str(_token_file(tmp_path)), "auth_endpoint": MOCK}, ProviderConfig
                ),
            }
        )
    )
    auth_bus: Bus = await connect(nats_url, name="test-auth")
    buses = [auth_bus]
    worker_bus: Bus = await connect(nats_url, name="test-worker")
    events: asyncio.Queue[CredentialEvent] = asyncio.Queue()

    async def collect(event: CredentialEvent, _: Delivery) -> None:
        events.put_nowait(event)

    await worker_bus.subscribe(AUTH_CREDENTIAL_EVENTS, collect)
    await worker_bus.flush()
    clock = Clock()

    async def publish(event: CredentialEvent) -> None:
        await buses[-1].publish(AUTH_CREDENTIAL_EVENTS, event)

    store = CredentialStore(
        redis,
        Vault.from_keys([os.urandom(32)]),
        UpstreamExchange(http, lambda: providers, clock=clock),
        publish,
        clock=clock,
    )
    await store.sync_config(providers)
    await CredentialHandlers(auth_bus, store).subscribe()
    await auth_bus.flush()
    try:
        yield Auth(providers, store, AuthTokens(worker_bus, clock=clock, timeout=5), events, clock, buses)
    finally:
        await worker_bus.drain()
        await buses[-1].drain()
        await http.aclose()
        await redis.flushdb()
        await redis.aclose()


async def _event(auth: Auth, action: str, credential: str) -> CredentialEvent:
    async with asyncio.timeout(5):
        while True:
            event = await auth.events.get()
            if event.action == action and event.credential.id == credential:
                return event


async def test_a_copilot_token_is_minted_kept_and_minted_again_when_due(auth: Auth) -> None:
    provider = auth.providers["copilot"]
    entry = provider.credentials[0]

    first = await auth.worker.get(provider, entry)
    assert first.token.startswith("tid=")
    assert first.endpoint == f"{MOCK}/copilot"
    assert (await auth.worker.get(provider, entry)).token == first.token
    (info,) = await auth.store.list("copilot")
    assert info.account == "mock-user"
    assert info.quota["premium_interactions.remaining"] == 240.0
    assert info.quota["premium_interactions.entitlement"] == 300.0

    auth.clock.ahead = 1800 - 30  # past GitHub's refresh_in and the workers' margin
    second = await auth.worker.get(provider, entry)
    assert second.token.startswith("tid=")
    assert second.token != first.token


async def test_a_refused_token_is_replaced_on_the_workers_next_get(auth: Auth) -> None:
    provider = auth.providers["copilot"]
    entry = provider.credentials[0]
    first = await auth.worker.get(provider, entry)
    auth.worker.invalidate(provider, entry)
    assert (await auth.worker.get(provider, entry)).token != first.token


async def test_a_refused_kiro_refresh_makes_the_credential_unhealthy_and_tells_the_routers(
    auth: Auth,
) -> None:
    provider = auth.providers["kiro"]

    with pytest.raises(CredentialUnavailable) as raised:
        await auth.worker.get(provider, provider.credentials[0])

    assert raised.value.retryable
    assert "Invalid refresh token" in raised.value.message
    assert "aor-invalid-file-token" not in raised.value.message
    event = await _event(auth, "unhealthy", "key-1")
    assert not event.credential.healthy
    assert "Invalid refresh token" in event.credential.reason
    (info,) = await auth.store.list("kiro")
    assert not info.healthy


async def test_a_login_known_only_to_auth_is_served_by_name(auth: Auth) -> None:
    info = await auth.store.add("copilot", "github", "octo", StoredSecret(github_token="gho_loginonly0001"))
    await _event(auth, "added", info.id)
    credential = await auth.worker.get(auth.providers["copilot"], CredentialEntry(name=info.id))
    assert credential.token.startswith("tid=")


async def _stop_auth(auth: Auth) -> None:
    """Auth goes away: nobody answers `auth.v1.tokens.get` until it is back."""
    await auth.buses[-1].drain()


async def test_a_token_request_waits_for_an_auth_that_is_restarting(auth: Auth, own_nats_url: str) -> None:
    provider = auth.providers["copilot"]
    entry = provider.credentials[0]
    await _stop_auth(auth)

    asking = asyncio.create_task(auth.worker.get(provider, entry))
    await asyncio.sleep(0.5)
    assert not asking.done(), "no auth listening: asked again, not failed at once"
    restarted: NatsBus = await connect(own_nats_url, name="test-auth-restarted")
    auth.buses.append(restarted)
    await CredentialHandlers(restarted, auth.store).subscribe()

    credential = await asyncio.wait_for(asking, 5)
    assert credential.token.startswith("tid=")


async def test_a_token_request_to_an_auth_that_stays_away_fails_within_its_timeout(
    auth: Auth, own_nats_url: str
) -> None:
    provider = auth.providers["copilot"]
    await _stop_auth(auth)
    worker_bus = await connect(own_nats_url, name="test-worker-alone")
    tokens = AuthTokens(worker_bus, timeout=1.0)
    began = time.monotonic()
    try:
        with pytest.raises(CredentialUnavailable) as raised:
            await tokens.get(provider, provider.credentials[0])
    finally:
        await worker_bus.drain()
    elapsed = time.monotonic() - began
    assert "NoResponders" in raised.value.message
    assert raised.value.retryable, "the router may fail over to another credential or provider"
    assert 0.5 < elapsed < 3.0, f"retried, within the 1 s budget (and its last backoff): {elapsed:.2f} s"
