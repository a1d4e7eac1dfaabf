"""Stored responses of the Responses API (`store`, `previous_response_id`), in Redis.

    llmbus:response:<client id>:<response id>   string  the ResponseRecord (msgpack), expiring
                                                        after `responses.ttl_seconds`

A record is keyed by the client key that made it: another key asking for the same id
finds nothing (404), as OpenAI's responses belong to their project. With
`responses.store: false` nothing is written and a lookup is a 400 that says so.

    auth.v1.responses.put      the edge stores a finished response
    auth.v1.responses.get      the edge reads one (previous_response_id, GET /v1/responses/{id})
    auth.v1.responses.delete   DELETE /v1/responses/{id}
"""

from __future__ import annotations

import logging

import msgspec
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.bus import Bus, Delivery
from llmbus.config import ResponsesConfig
from llmbus.proto import BusError
from llmbus.proto.responses import ResponseDeleted, ResponseGet, ResponsePut, ResponseRecord, ResponseStored
from llmbus.proto.subjects import AUTH_RESPONSES_DELETE, AUTH_RESPONSES_GET, AUTH_RESPONSES_PUT

__all__ = ["ResponseHandlers", "ResponseStore", "ResponseStoreUnavailable"]

log = logging.getLogger(__name__)

STORED = Counter("llmbus_auth_responses_total", "Stored responses written, read and deleted", ["action"])

_PREFIX = "llmbus:response:"
_record = msgspec.msgpack.Decoder(ResponseRecord)
_encode = msgspec.msgpack.Encoder().encode


class ResponseStoreUnavailable(Exception):
    """Redis cannot be reached."""


def _key(client_id: str, response_id: str) -> str:
    return f"{_PREFIX}{client_id}:{response_id}"


class ResponseStore:
    """Responses in Redis, each under its client key's id, expiring after `ttl_seconds`."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def put(self, record: ResponseRecord, ttl_seconds: int) -> None:
        try:
            await self.redis.set(_key(record.client_id, record.response_id), _encode(record), ex=ttl_seconds)
        except RedisError as exc:
            raise ResponseStoreUnavailable(type(exc).__name__) from None

    async def get(self, client_id: str, response_id: str) -> ResponseRecord | None:
        try:
            raw = await self.redis.get(_key(client_id, response_id))
        except RedisError as exc:
            raise ResponseStoreUnavailable(type(exc).__name__) from None
        if not isinstance(raw, bytes):
            return None
        try:
            return _record.decode(raw)
        except msgspec.DecodeError:
            log.warning("stored response %s is unreadable: dropped", response_id)
            return None

    async def delete(self, client_id: str, response_id: str) -> bool:
        try:
            return bool(await self.redis.delete(_key(client_id, response_id)))
        except RedisError as exc:
            raise ResponseStoreUnavailable(type(exc).__name__) from None


_STORE_DOWN = BusError(
    status=503, code="auth_store_unavailable", message="the auth store (Redis) is unavailable"
)
_STORE_OFF = BusError(
    status=400,
    code="response_store_disabled",
    message="This gateway keeps no responses (`responses.store: false` in its config).",
)


def _not_found(response_id: str) -> BusError:
    return BusError(
        status=404, code="response_not_found", message=f"Response with id '{response_id}' not found."
    )


class ResponseHandlers:
    """`auth.v1.responses.*`; `config` is replaced on a config reload."""

    def __init__(self, bus: Bus, store: ResponseStore, config: ResponsesConfig) -> None:
        self.bus = bus
        self.store = store
        self.config = config

    async def subscribe(self) -> None:
        await self.bus.subscribe(AUTH_RESPONSES_PUT, self.put, queue=AUTH_RESPONSES_PUT.queue)
        await self.bus.subscribe(AUTH_RESPONSES_GET, self.get, queue=AUTH_RESPONSES_GET.queue)
        await self.bus.subscribe(AUTH_RESPONSES_DELETE, self.delete, queue=AUTH_RESPONSES_DELETE.queue)

    async def put(self, request: ResponsePut, delivery: Delivery) -> None:
        config = self.config
        if not config.store:
            await self.bus.respond(delivery, AUTH_RESPONSES_PUT, ResponseStored(stored=False))
            return
        try:
            await self.store.put(request.record, config.ttl_seconds)
        except ResponseStoreUnavailable:
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        STORED.labels("put").inc()
        await self.bus.respond(
            delivery, AUTH_RESPONSES_PUT, ResponseStored(stored=True, ttl_seconds=config.ttl_seconds)
        )

    async def get(self, request: ResponseGet, delivery: Delivery) -> None:
        if not self.config.store:
            await self.bus.respond_error(delivery, _STORE_OFF)
            return
        try:
            record = await self.store.get(request.client_id, request.response_id)
        except ResponseStoreUnavailable:
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        if record is None:
            await self.bus.respond_error(delivery, _not_found(request.response_id))
            return
        STORED.labels("get").inc()
        await self.bus.respond(delivery, AUTH_RESPONSES_GET, record)

    async def delete(self, request: ResponseGet, delivery: Delivery) -> None:
        if not self.config.store:
            await self.bus.respond_error(delivery, _STORE_OFF)
            return
        try:
            deleted = await self.store.delete(request.client_id, request.response_id)
        except ResponseStoreUnavailable:
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        if not deleted:
            await self.bus.respond_error(delivery, _not_found(request.response_id))
            return
        STORED.labels("delete").inc()
        await self.bus.respond(
            delivery, AUTH_RESPONSES_DELETE, ResponseDeleted(response_id=request.response_id)
        )
