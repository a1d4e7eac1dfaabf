"""The edge's key cache keeps valid keys working under load and through auth's and
Redis's troubles: config keys known locally, one check per key in flight, checks ahead of
expiry, and a grace period when auth cannot answer."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from llmbus.api import AuthenticationFailed, Unavailable
from llmbus.bus import Delivery
from llmbus.edge.keys import KeyCache
from llmbus.proto import AUTH_KEY_VERIFY, Client, KeyVerifyReply, KeyVerifyRequest
from llmbus.testing import InMemoryBus


class Auth:
    """A fake auth answering key checks, counting them, able to go away."""

    def __init__(self, bus: InMemoryBus, valid: set[str], delay: float = 0.0) -> None:
        self.bus = bus
        self.valid = valid
        self.delay = delay
        self.checks = 0
        self.down = False

    async def on_verify(self, request: KeyVerifyRequest, delivery: Delivery) -> None:
        self.checks += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            return  # no answer: the request times out
        valid = request.key_hash in self.valid
        client = Client(id="key_x", name="x") if valid else None
        await self.bus.respond(delivery, AUTH_KEY_VERIFY, KeyVerifyReply(valid=valid, client=client, ttl=30))


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def _auth(valid: set[str], delay: float = 0.0) -> tuple[InMemoryBus, Auth]:
    bus = InMemoryBus()
    auth = Auth(bus.peer(), {_hash(k) for k in valid}, delay)
    await auth.bus.subscribe(AUTH_KEY_VERIFY, auth.on_verify)
    return bus, auth


async def test_many_requests_with_one_key_make_one_check() -> None:
    bus, auth = await _auth({"sk-a"}, delay=0.05)
    cache = KeyCache(bus, ttl=30)
    callers = await asyncio.gather(*(cache.verify("sk-a") for _ in range(256)))
    assert {c.client.id for c in callers} == {"key_x"}
    assert auth.checks == 1


async def test_config_keys_are_known_without_asking_auth() -> None:
    bus, auth = await _auth(set())
    cache = KeyCache(bus, ttl=30)
    cache.set_config_keys([("sk-config", "team")])
    caller = await cache.verify("sk-config")
    assert caller.client.name == "team"
    assert caller.client.id == f"key_{_hash('sk-config')[:12]}", "the id auth gives config keys"
    assert auth.checks == 0
    cache.set_config_keys([])
    with pytest.raises(AuthenticationFailed):
        await cache.verify("sk-config")


async def test_a_key_is_checked_again_ahead_of_its_expiry_without_making_anyone_wait() -> None:
    bus, auth = await _auth({"sk-a"})
    cache = KeyCache(bus, ttl=0.5)
    await cache.verify("sk-a")
    await asyncio.sleep(0.45)  # in the last fifth of the entry's life
    await cache.verify("sk-a")  # answered from the cache, a check started behind it
    await asyncio.sleep(0.05)
    assert auth.checks == 2
    await asyncio.sleep(0.2)  # past the first entry's expiry: the renewed one serves
    await cache.verify("sk-a")
    assert auth.checks == 2


async def test_a_key_auth_accepted_keeps_working_while_auth_cannot_answer() -> None:
    bus, auth = await _auth({"sk-a"})
    cache = KeyCache(bus, ttl=0.1, grace=60)
    await cache.verify("sk-a")
    auth.down = True
    await asyncio.sleep(0.15)
    assert (await cache.verify("sk-a")).client.id == "key_x"
    with pytest.raises(Unavailable):
        await cache.verify("sk-never-seen")
