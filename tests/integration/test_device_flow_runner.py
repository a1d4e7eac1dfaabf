"""The device-flow runner with real Redis and the mock upstream in-process: flows any
replica can read, polled in the background, taken over when their replica stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx2
import pytest
from redis.asyncio import Redis

from llmbus.auth.flows import FlowRunner, FlowStore, LoginTarget, UnknownFlow, dialect_for
from llmbus.auth.flows.types import DeviceDialect
from llmbus.auth.stored_secret import StoredSecret
from llmbus.auth.vault import Vault
from llmbus.config import Config, ProviderConfig
from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings
from llmbus.proto import CredentialInfo, DeviceFlowStart, DeviceFlowStatus
from llmbus.providers import configured_providers
from llmbus.providers.http import HttpClient

MOCK = "http://mock.test"
CONFIG = Config(
    providers={
        "copilot": ProviderConfig(auth_endpoint=MOCK),
        "kiro": ProviderConfig(endpoint=MOCK, auth_endpoint=MOCK),
    }
)


@dataclass
class Sink:
    added: list[tuple[str, str, str, StoredSecret]] = field(default_factory=list)

    async def add(self, provider: str, kind: str, account: str, secret: StoredSecret) -> CredentialInfo:
        self.added.append((provider, kind, account, secret))
        return CredentialInfo(provider=provider, id=f"cred-{len(self.added)}", kind="github", account=account)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/2")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    settings = MockSettings(device_interval=0, device_approve_after=3)
    client = HttpClient(transport=httpx2.ASGITransport(app=create_app(settings)))
    yield client
    await client.aclose()


class Gate:
    """A sleep that waits until the test opens it, one poll at a time."""

    def __init__(self) -> None:
        self.turns: asyncio.Queue[None] = asyncio.Queue()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await self.turns.get()

    def open(self, polls: int) -> None:
        for _ in range(polls):
            self.turns.put_nowait(None)


def runner(redis: Redis, http: HttpClient, sink: Sink, gate: Gate, owner: str) -> FlowRunner:
    providers = configured_providers(CONFIG)

    def dialects(target: LoginTarget) -> DeviceDialect:
        return dialect_for(target, providers, http)

    store = FlowStore(redis, Vault.development(), owner, lease_seconds=0.2)
    return FlowRunner(store, dialects, sink, sleep=gate.sleep)


async def finished(run: FlowRunner, flow_id: str) -> DeviceFlowStatus:
    await asyncio.gather(*run.tasks.values())
    return await run.status(flow_id)


async def test_a_copilot_login_is_pending_then_stores_the_github_token(
    redis: Redis, http: HttpClient
) -> None:
    sink, gate = Sink(), Gate()
    first = runner(redis, http, sink, gate, "a")
    flow = await first.start(DeviceFlowStart(provider="copilot"))
    other = runner(redis, http, Sink(), Gate(), "b")
    assert (await other.status(flow.flow_id)).status == "pending"  # any replica answers
    gate.open(3)
    state = await finished(first, flow.flow_id)
    assert (state.status, state.credential, state.provider) == ("success", "cred-1", "copilot")
    assert (await other.status(flow.flow_id)).credential == "cred-1"
    provider, kind, account, secret = sink.added[0]
    assert (provider, kind) == ("copilot", "github")
    assert account.startswith("mock-user-")
    assert secret.github_token.startswith("gho_")
    for key in await redis.keys("llmbus:flow:*"):
        assert secret.github_token not in str(await redis.get(key))


async def test_the_grant_is_sealed_at_rest(redis: Redis, http: HttpClient) -> None:
    run = runner(redis, http, Sink(), Gate(), "a")
    flow = await run.start(DeviceFlowStart(provider="kiro", method="builder-id"))
    raw = await redis.get(f"llmbus:flow:{flow.flow_id}")
    assert isinstance(raw, bytes)
    grant = run.store.grant(await run.store.get(flow.flow_id))
    assert grant.client_secret.encode() not in raw
    assert grant.device_code.encode() not in raw
    assert 0 < await redis.ttl(f"llmbus:flow:{flow.flow_id}") <= flow.expires_in
    await run.aclose()


async def test_a_denied_kiro_login_ends_denied(redis: Redis, http: HttpClient) -> None:
    sink, gate = Sink(), Gate()
    run = runner(redis, http, sink, gate, "a")
    request = DeviceFlowStart(
        provider="kiro",
        method="identity-center",
        start_url="https://denied.awsapps.com/start",
        region="eu-west-1",
    )
    flow = await run.start(request)
    gate.open(3)
    assert (await finished(run, flow.flow_id)).status == "denied"
    assert sink.added == []


async def test_a_flow_whose_replica_stopped_polling_is_taken_over(redis: Redis, http: HttpClient) -> None:
    sink, stuck = Sink(), Gate()
    first = runner(redis, http, sink, stuck, "a")
    flow = await first.start(DeviceFlowStart(provider="kiro", method="builder-id"))
    second_gate = Gate()
    second = runner(redis, http, sink, second_gate, "b")
    assert await second.resume() == 0  # the first replica's lease still holds
    await asyncio.sleep(0.3)  # the lease (0.2 s) lapses: the first replica stopped polling
    assert await second.resume() == 1
    second_gate.open(3)
    state = await finished(second, flow.flow_id)
    assert state.status == "success"
    assert sink.added[0][1] == "kiro-builder-id"
    stuck.open(1)  # the first replica wakes up, finds the lease taken, and stops
    await asyncio.gather(*first.tasks.values())
    assert len(sink.added) == 1
    assert (await first.status(flow.flow_id)).status == "success"


async def test_unknown_flows_are_reported_as_such(redis: Redis, http: HttpClient) -> None:
    with pytest.raises(UnknownFlow):
        await runner(redis, http, Sink(), Gate(), "a").status("flow_nope")
