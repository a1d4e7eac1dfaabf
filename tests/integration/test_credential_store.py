"""Stored credentials in a real Redis: sealed at rest, single-flight refresh across
replicas, unhealthy after a failed refresh and healthy again after a success, config
imports (GitHub tokens, Kiro token files written back), and no token in any error."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis

from llmbus.auth.credentials import (
    CredentialFromConfig,
    CredentialNotFound,
    CredentialRefreshFailed,
    CredentialStore,
    StoredSecret,
)
from llmbus.auth.exchange import Renewal
from llmbus.auth.vault import Vault
from llmbus.config import Config, ProviderConfig
from llmbus.proto import CredentialEvent
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.errors import CredentialUnavailable

NOW = 1_800_000_000.0
GITHUB_TOKEN = "gho_storedsecret0001"
VAULT = Vault.from_keys([os.urandom(32)])


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeExchange:
    """Counts exchanges; each mints `tok-<n>` valid for `life` seconds, after `delay`."""

    clock: Clock
    providers: dict[str, ConfiguredProvider]
    life: float = 1800.0
    delay: float = 0.0
    failure: CredentialUnavailable | None = None
    calls: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def provider(self, name: str) -> ConfiguredProvider | None:
        return self.providers.get(name)

    async def renew(self, provider: str, credential: str, kind: str, secret: StoredSecret) -> Renewal:
        self.calls += 1
        self.started.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        expires = self.clock.now + self.life
        if kind == "github":
            renewed = msgspec.structs.replace(
                secret,
                copilot_token=f"tok-{self.calls}",
                copilot_endpoint="https://api.example",
                copilot_expires_at=expires,
                renew_at=expires - 60,
            )
            return Renewal(secret=renewed, quota={"premium_interactions.remaining": 240.0}, account="octo")
        renewed = msgspec.structs.replace(
            secret,
            access_token=f"tok-{self.calls}",
            refresh_token=f"ref-{self.calls}",
            expires_at=expires,
            renew_at=expires - 300,
        )
        return Renewal(secret=renewed)


@dataclass
class Events:
    seen: list[CredentialEvent] = field(default_factory=list)

    async def __call__(self, event: CredentialEvent) -> None:
        self.seen.append(event)

    def actions(self) -> list[tuple[str, str]]:
        return [(e.action, e.credential.id) for e in self.seen]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    await client.flushdb()
    yield client
    await client.aclose()


def _providers(**entries: dict[str, object]) -> dict[str, ConfiguredProvider]:
    config = Config(providers={name: msgspec.convert(e, ProviderConfig) for name, e in entries.items()})
    return configured_providers(config)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def exchange(clock: Clock) -> FakeExchange:
    return FakeExchange(clock, _providers(copilot={}, kiro={}))


def _store(redis: Redis, exchange: FakeExchange, events: Events, clock: Clock) -> CredentialStore:
    return CredentialStore(redis, VAULT, exchange, events, clock=clock, lock_ttl=5, poll_interval=0.01)


def _raw(value: bytes | str) -> bytes:
    """The client is opened without decode_responses, so Redis hands back bytes."""
    assert isinstance(value, bytes)
    return value


async def _dump(redis: Redis) -> bytes:
    """Every hash in Redis, fields and values, as one blob to search for secrets."""
    out = b""
    for key in await redis.keys("*"):
        if await redis.type(key) == b"hash":
            out += b"".join(_raw(k) + _raw(v) for k, v in (await redis.hgetall(key)).items())
    return out


async def test_a_login_is_stored_sealed_and_its_first_token_minted_on_use(
    redis: Redis, exchange: FakeExchange, clock: Clock
) -> None:
    events = Events()
    store = _store(redis, exchange, events, clock)
    info = await store.add("copilot", "github", "octo", StoredSecret(github_token=GITHUB_TOKEN))

    assert info.id.startswith("octo-")
    assert events.actions() == [("added", info.id)]
    assert GITHUB_TOKEN.encode() not in await _dump(redis)

    reply = await store.get_token("copilot", info.id)
    assert (reply.token, reply.endpoint) == ("tok-1", "https://api.example")
    assert b"tok-1" not in await _dump(redis)
    (listed,) = await store.list("copilot")
    assert listed.quota == {"premium_interactions.remaining": 240.0}
    assert listed.expires_at == NOW + 1800


async def test_a_token_is_reused_until_it_is_due_then_renewed(
    redis: Redis, exchange: FakeExchange, clock: Clock
) -> None:
    store = _store(redis, exchange, Events(), clock)
    info = await store.add("copilot", "github", "octo", StoredSecret(github_token=GITHUB_TOKEN))
    assert (await store.get_token("copilot", info.id)).token == "tok-1"
    assert (await store.get_token("copilot", info.id)).token == "tok-1"
    clock.now += 1800 - 59
    assert (await store.get_token("copilot", info.id)).token == "tok-2"
    assert exchange.calls == 2


async def test_refresh_true_renews_a_token_that_still_looked_fresh(
    redis: Redis, exchange: FakeExchange, clock: Clock
) -> None:
    store = _store(redis, exchange, Events(), clock)
    info = await store.add("copilot", "github", "octo", StoredSecret(github_token=GITHUB_TOKEN))
    await store.get_token("copilot", info.id)
    assert (await store.get_token("copilot", info.id, refresh=True)).token == "tok-2"


async def test_two_replicas_refreshing_at_once_make_one_exchange(
    redis: Redis, exchange: FakeExchange, clock: Clock
) -> None:
    exchange.delay = 0.2
    first = _store(redis, exchange, Events(), clock)
    second = _store(redis, exchange, Events(), clock)
    info = await first.add("kiro", "kiro-social", "", StoredSecret(access_token="old", refresh_token="r"))

    replies = await asyncio.gather(
        first.get_token("kiro", info.id, refresh=True), second.get_token("kiro", info.id, refresh=True)
    )

    assert exchange.calls == 1
    assert [r.token for r in replies] == ["tok-1", "tok-1"]


async def test_a_failed_refresh_marks_the_credential_unhealthy_once_and_a_success_heals_it(
    redis: Redis, exchange: FakeExchange, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llmbus.auth")
    events = Events()
    store = _store(redis, exchange, events, clock)
    info = await store.add(
        "kiro", "kiro-social", "", StoredSecret(access_token="aoa-old", refresh_token="aor-x")
    )
    exchange.failure = CredentialUnavailable(
        "kiro token refresh refused (400): invalid_grant", upstream_status=400
    )

    for _ in range(2):
        with pytest.raises(CredentialRefreshFailed) as raised:
            await store.get_token("kiro", info.id, refresh=True)
    assert raised.value.status == 503
    assert "invalid_grant" in raised.value.message
    assert "aoa-old" not in raised.value.message
    assert "aor-x" not in raised.value.message
    (listed,) = await store.list("kiro")
    assert not listed.healthy
    assert "invalid_grant" in listed.reason
    assert events.actions() == [("added", info.id), ("unhealthy", info.id)]

    exchange.failure = None
    await store.revive()
    (listed,) = await store.list("kiro")
    assert listed.healthy
    assert listed.reason == ""
    assert events.actions()[-1] == ("healthy", info.id)
    assert "unhealthy" in caplog.text
    assert "aoa-old" not in caplog.text
    assert "aor-x" not in caplog.text


async def test_a_passing_failure_hands_out_the_token_that_still_has_life(
    redis: Redis, exchange: FakeExchange, clock: Clock
) -> None:
    store = _store(redis, exchange, Events(), clock)
    secret = StoredSecret(access_token="aoa-live", refresh_token="r", expires_at=NOW + 200)
    info = await store.add("kiro", "kiro-social", "", secret)
    exchange.failure = CredentialUnavailable("kiro token refresh failed: cannot reach it")
    assert (await store.get_token("kiro", info.id)).token == "aoa-live"
    assert (await store.list("kiro"))[0].healthy


async def test_a_second_login_of_the_same_account_replaces_the_first(
    redis: Redis, exchange: FakeExchange, clock: Clock
) -> None:
    store = _store(redis, exchange, Events(), clock)
    first = await store.add("copilot", "github", "octo", StoredSecret(github_token="gho_one"))
    second = await store.add("copilot", "github", "octo", StoredSecret(github_token="gho_two"))
    other = await store.add("copilot", "github", "hubot", StoredSecret(github_token="gho_three"))
    assert second.id == first.id
    assert sorted(i.id for i in await store.list("copilot")) == sorted([first.id, other.id])


async def test_remove_forgets_a_login_but_refuses_a_config_credential(
    redis: Redis, exchange: FakeExchange, clock: Clock
) -> None:
    events = Events()
    store = _store(redis, exchange, events, clock)
    info = await store.add("copilot", "github", "octo", StoredSecret(github_token=GITHUB_TOKEN))
    await store.remove("copilot", info.id)
    assert events.actions()[-1] == ("removed", info.id)
    with pytest.raises(CredentialNotFound):
        await store.get_token("copilot", info.id)

    await store.sync_config(_providers(copilot={"github_token": GITHUB_TOKEN}))
    with pytest.raises(CredentialFromConfig):
        await store.remove("copilot", "key-1")


async def test_config_github_tokens_are_imported_under_their_names_and_forgotten_when_dropped(
    redis: Redis, exchange: FakeExchange, clock: Clock
) -> None:
    events = Events()
    store = _store(redis, exchange, events, clock)
    providers = _providers(copilot={"api_keys": [{"name": "work", "github-token": GITHUB_TOKEN}]})
    await store.sync_config(providers)
    await store.sync_config(providers)  # unchanged: nothing new
    assert events.actions() == [("added", "work")]
    assert (await store.get_token("copilot", "work")).token == "tok-1"

    await store.sync_config(_providers(copilot={}))
    assert events.actions()[-1] == ("removed", "work")
    assert await store.list() == []


def _token_file(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "kiro-auth-token.json"
    path.write_text(
        json.dumps(
            {
                "accessToken": "aoa-file",
                "refreshToken": "aor-file",
                "expiresAt": "2020-01-01T00:00:00.000Z",
                "authMethod": "social",
                "provider": "Google",
                "ideExtra": {"kept": True},
                **fields,
            }
        )
    )
    return path


async def test_a_config_token_file_is_imported_refreshed_and_written_back(
    redis: Redis, exchange: FakeExchange, clock: Clock, tmp_path: Path
) -> None:
    path = _token_file(tmp_path)
    store = _store(redis, exchange, Events(), clock)
    await store.sync_config(_providers(kiro={"token_file": str(path)}))

    (info,) = await store.list("kiro")
    assert (info.id, info.kind) == ("key-1", "kiro-social")
    reply = await store.get_token("kiro", "key-1")

    assert reply.token == "tok-1"
    written = json.loads(path.read_text())
    assert written["accessToken"] == "tok-1"
    assert written["refreshToken"] == "ref-1"
    assert written["ideExtra"] == {"kept": True}


async def test_a_token_file_the_ide_refreshed_is_taken_instead_of_refreshing(
    redis: Redis, exchange: FakeExchange, clock: Clock, tmp_path: Path
) -> None:
    path = _token_file(tmp_path)
    store = _store(redis, exchange, Events(), clock)
    await store.sync_config(_providers(kiro={"token_file": str(path)}))
    _token_file(tmp_path, accessToken="aoa-ide", expiresAt="2030-01-01T00:00:00.000Z")

    assert (await store.get_token("kiro", "key-1")).token == "aoa-ide"
    assert exchange.calls == 0


async def test_a_missing_token_file_is_stored_unhealthy_with_its_reason(
    redis: Redis, exchange: FakeExchange, clock: Clock, tmp_path: Path
) -> None:
    events = Events()
    store = _store(redis, exchange, events, clock)
    await store.sync_config(_providers(kiro={"token_file": str(tmp_path / "absent.json")}))
    (info,) = await store.list("kiro")
    assert not info.healthy
    assert "does not exist" in info.reason
    assert events.actions() == [("unhealthy", "key-1")]


async def test_a_secret_sealed_under_another_key_is_unhealthy_not_an_error(
    redis: Redis, exchange: FakeExchange, clock: Clock
) -> None:
    await _store(redis, exchange, Events(), clock).add(
        "copilot", "github", "octo", StoredSecret(github_token="g")
    )
    other = CredentialStore(redis, Vault.from_keys([os.urandom(32)]), exchange, Events(), clock=clock)
    (info,) = await other.list()
    assert not info.healthy
    assert "not loaded" in info.reason
