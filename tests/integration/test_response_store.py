"""Auth's stored responses (Responses API `store`, `previous_response_id`) over the
in-memory bus and a real Redis: written with the configured expiry, read back whole by
the key that made them only, deleted, unknown ids a 404, and the store switched off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from llmbus.auth.responses import ResponseHandlers, ResponseStore
from llmbus.bus import RemoteError
from llmbus.config import ResponsesConfig
from llmbus.proto import Message, ToolCall
from llmbus.proto.responses import ResponseGet, ResponsePut, ResponseRecord
from llmbus.proto.subjects import AUTH_RESPONSES_DELETE, AUTH_RESPONSES_GET, AUTH_RESPONSES_PUT
from llmbus.testing import InMemoryBus

RECORD = ResponseRecord(
    response_id="resp_abc",
    client_id="key-1",
    response=b'{"id":"resp_abc","object":"response","status":"completed"}',
    messages=[
        Message(role="user", content="Weather in Paris?"),
        Message(role="assistant", tool_calls=[ToolCall(id="call_1", name="get_weather", arguments="{}")]),
    ],
    created_at=1_700_000_000.0,
)


@dataclass
class Auth:
    edge: InMemoryBus
    redis: Redis
    handlers: ResponseHandlers


@pytest.fixture
async def auth(redis_url: str) -> AsyncIterator[Auth]:
    # Database 5: no other test uses it.
    redis = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/5")
    await redis.flushdb()
    bus = InMemoryBus()
    handlers = ResponseHandlers(bus, ResponseStore(redis), ResponsesConfig(ttl_seconds=600))
    await handlers.subscribe()
    edge = bus.peer()
    yield Auth(edge, redis, handlers)
    await edge.drain()
    await bus.drain()
    await redis.aclose()


async def test_a_stored_response_is_read_back_whole_and_expires(auth: Auth) -> None:
    stored = await auth.edge.request(AUTH_RESPONSES_PUT, ResponsePut(record=RECORD), timeout=2)
    assert stored.stored
    assert stored.ttl_seconds == 600
    ttl = await auth.redis.ttl("llmbus:response:key-1:resp_abc")
    assert 590 < ttl <= 600
    read = await auth.edge.request(
        AUTH_RESPONSES_GET, ResponseGet(client_id="key-1", response_id="resp_abc"), timeout=2
    )
    assert read == RECORD


async def test_another_key_does_not_find_it(auth: Auth) -> None:
    await auth.edge.request(AUTH_RESPONSES_PUT, ResponsePut(record=RECORD), timeout=2)
    with pytest.raises(RemoteError) as missing:
        await auth.edge.request(
            AUTH_RESPONSES_GET, ResponseGet(client_id="key-2", response_id="resp_abc"), timeout=2
        )
    assert missing.value.status == 404
    assert missing.value.code == "response_not_found"
    with pytest.raises(RemoteError):
        await auth.edge.request(
            AUTH_RESPONSES_DELETE, ResponseGet(client_id="key-2", response_id="resp_abc"), timeout=2
        )
    # Still there for its own key.
    await auth.edge.request(
        AUTH_RESPONSES_GET, ResponseGet(client_id="key-1", response_id="resp_abc"), timeout=2
    )


async def test_a_deleted_response_is_gone(auth: Auth) -> None:
    await auth.edge.request(AUTH_RESPONSES_PUT, ResponsePut(record=RECORD), timeout=2)
    deleted = await auth.edge.request(
        AUTH_RESPONSES_DELETE, ResponseGet(client_id="key-1", response_id="resp_abc"), timeout=2
    )
    assert deleted.deleted
    assert deleted.response_id == "resp_abc"
    with pytest.raises(RemoteError) as missing:
        await auth.edge.request(
            AUTH_RESPONSES_GET, ResponseGet(client_id="key-1", response_id="resp_abc"), timeout=2
        )
    assert missing.value.status == 404
    with pytest.raises(RemoteError) as again:
        await auth.edge.request(
            AUTH_RESPONSES_DELETE, ResponseGet(client_id="key-1", response_id="resp_abc"), timeout=2
        )
    assert again.value.status == 404


async def test_the_store_switched_off_keeps_nothing(auth: Auth) -> None:
    auth.handlers.config = ResponsesConfig(store=False)
    stored = await auth.edge.request(AUTH_RESPONSES_PUT, ResponsePut(record=RECORD), timeout=2)
    assert not stored.stored
    assert await auth.redis.keys("llmbus:response:*") == []
    with pytest.raises(RemoteError) as off:
        await auth.edge.request(
            AUTH_RESPONSES_GET, ResponseGet(client_id="key-1", response_id="resp_abc"), timeout=2
        )
    assert off.value.status == 400
    assert off.value.code == "response_store_disabled"


async def test_redis_down_is_a_503() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    bus = InMemoryBus()
    await ResponseHandlers(bus, ResponseStore(redis), ResponsesConfig()).subscribe()
    edge = bus.peer()
    try:
        with pytest.raises(RemoteError) as down:
            await edge.request(AUTH_RESPONSES_PUT, ResponsePut(record=RECORD), timeout=5)
        assert down.value.status == 503
    finally:
        await edge.drain()
        await bus.drain()
        await redis.aclose()
