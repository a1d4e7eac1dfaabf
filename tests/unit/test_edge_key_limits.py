"""What the edge enforces itself for a client key: the models it may use, the largest
`max_tokens`, its expiry even while cached; who may reach the management API at all."""

from __future__ import annotations

import argparse
import hashlib
import time

import pytest

from llmbus.api import AuthenticationFailed, InvalidRequest, PermissionDenied
from llmbus.bus import Delivery
from llmbus.cli.keys import parse_duration
from llmbus.config import RemoteManagementConfig
from llmbus.edge.keys import KeyCache
from llmbus.edge.limits import apply_key_limits
from llmbus.edge.management import ManagementKey
from llmbus.proto import (
    AUTH_KEY_VERIFY,
    ChatRequest,
    Client,
    ClientLimits,
    KeyVerifyReply,
    KeyVerifyRequest,
    Message,
)
from llmbus.testing import InMemoryBus


def _chat(model: str = "gpt-4o-mini", max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="hi")], max_tokens=max_tokens)


def test_a_key_without_limits_changes_nothing() -> None:
    chat = _chat(max_tokens=10_000)
    assert apply_key_limits(chat, ClientLimits()) is chat


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4o", "loc/llama"])
def test_a_model_matching_one_pattern_is_allowed(model: str) -> None:
    assert apply_key_limits(_chat(model), ClientLimits(models=["gpt-4o*", "loc/*"])).model == model


def test_another_model_is_403_naming_it() -> None:
    with pytest.raises(PermissionDenied) as caught:
        apply_key_limits(_chat("claude-opus"), ClientLimits(models=["gpt-*"]))
    assert "claude-opus" in caught.value.message
    assert (caught.value.code, caught.value.type) == ("model_not_allowed", "permission_error")


def test_more_max_tokens_than_the_key_allows_is_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        apply_key_limits(_chat(max_tokens=101), ClientLimits(max_tokens=100))
    assert caught.value.param == "max_tokens"
    assert apply_key_limits(_chat(max_tokens=100), ClientLimits(max_tokens=100)).max_tokens == 100


def test_a_request_without_max_tokens_gets_the_keys() -> None:
    assert apply_key_limits(_chat(), ClientLimits(max_tokens=64)).max_tokens == 64


async def test_the_edge_refuses_an_expired_key_that_auth_still_called_valid() -> None:
    bus = InMemoryBus()
    auth = bus.peer()
    expiries = {hash_key("sk-fresh"): time.time() + 3600, hash_key("sk-stale"): time.time() - 1}

    async def on_verify(request: KeyVerifyRequest, delivery: Delivery) -> None:
        expires_at = expiries[request.key_hash]
        reply = KeyVerifyReply(valid=True, client=Client(id="k1"), expires_at=expires_at, ttl=30)
        await auth.respond(delivery, AUTH_KEY_VERIFY, reply)

    await auth.subscribe(AUTH_KEY_VERIFY, on_verify)
    cache = KeyCache(bus, ttl=30)
    caller = await cache.verify("sk-fresh")
    assert caller.expires_at == expiries[hash_key("sk-fresh")]
    with pytest.raises(AuthenticationFailed) as caught:
        await cache.verify("sk-stale")
    assert caught.value.code == "expired_api_key"
    await bus.drain()
    await auth.drain()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_clients_always_reach_the_management_api(host: str) -> None:
    assert ManagementKey("mk").admits(host)


@pytest.mark.parametrize("host", ["10.0.0.5", "192.0.2.1", "2001:db8::1", "", "testclient"])
def test_other_clients_are_refused_by_default(host: str) -> None:
    assert not ManagementKey("mk").admits(host)


def test_allow_remote_admits_everyone_or_only_the_listed_networks() -> None:
    anyone = ManagementKey("mk", RemoteManagementConfig(allow_remote=True))
    assert anyone.admits("203.0.113.1")
    office = ManagementKey(
        "mk", RemoteManagementConfig(allow_remote=True, allowed_cidrs=["10.0.0.0/8", "fd00::/8"])
    )
    assert office.admits("10.20.30.40")
    assert office.admits("fd00::7")
    assert not office.admits("203.0.113.1")


def test_the_management_key_is_kept_hashed_and_compared_whole() -> None:
    key = ManagementKey("mk-secret-value")
    assert key.matches("mk-secret-value")
    assert not key.matches("mk-secret-valu")
    assert not key.matches("")
    assert "mk-secret-value" not in repr(vars(key))


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("15m", 900), ("12h", 43_200), ("30d", 2_592_000)])
def test_cli_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-5", "ten", "5y"])
def test_bad_cli_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)
