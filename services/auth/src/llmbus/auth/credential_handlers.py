"""Stored credentials on the bus: tokens for workers (`auth.v1.tokens.get`), the
management API's list and remove (`auth.v1.credentials.*`), and their wiring.

`CredentialService` assembles vault, upstream exchange, store and handlers, imports the
config's credentials at start and on every reload, and now and then tries the unhealthy
ones again, so that `main` only starts it. Errors of the store become `BusError`s here
and nowhere else; a token appears only in a `TokenReply`, never in an error or a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from prometheus_client import Counter
from redis.asyncio import Redis

from llmbus.auth.credentials import CredentialError, CredentialStore
from llmbus.auth.exchange import UpstreamExchange
from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.auth.vault import Vault
from llmbus.bus import Bus, BusFailure, Delivery
from llmbus.proto import (
    AUTH_CREDENTIAL_EVENTS,
    AUTH_CREDENTIALS_LIST,
    AUTH_CREDENTIALS_REMOVE,
    AUTH_TOKENS_GET,
    BusError,
    CredentialEvent,
    CredentialList,
    CredentialListRequest,
    CredentialRemove,
    TokenRequest,
)
from llmbus.providers import ConfiguredProvider
from llmbus.providers.http import HttpClient

__all__ = ["CredentialHandlers", "CredentialService"]

log = logging.getLogger(__name__)

TOKENS = Counter("llmbus_auth_tokens_total", "Tokens handed to workers", ["provider", "result"])

_STORE_DOWN = BusError(
    status=503, code="auth_store_unavailable", message="the auth store (Redis) is unavailable"
)


def _bus_error(exc: CredentialError) -> BusError:
    return BusError(status=exc.status, code=exc.code, message=exc.message)


class CredentialHandlers:
    def __init__(self, bus: Bus, store: CredentialStore) -> None:
        self.bus = bus
        self.store = store

    async def subscribe(self) -> None:
        await self.bus.subscribe(AUTH_TOKENS_GET, self.get_token, queue=AUTH_TOKENS_GET.queue)
        await self.bus.subscribe(
            AUTH_CREDENTIALS_LIST, self.list_credentials, queue=AUTH_CREDENTIALS_LIST.queue
        )
        await self.bus.subscribe(
            AUTH_CREDENTIALS_REMOVE, self.remove_credential, queue=AUTH_CREDENTIALS_REMOVE.queue
        )

    async def get_token(self, request: TokenRequest, delivery: Delivery) -> None:
        try:
            reply = await self.store.get_token(request.provider, request.credential, request.refresh)
        except CredentialError as exc:
            TOKENS.labels(request.provider, exc.code).inc()
            await self.bus.respond_error(delivery, _bus_error(exc))
            return
        except KeyStoreUnavailable:
            TOKENS.labels(request.provider, "store_unavailable").inc()
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        TOKENS.labels(request.provider, "refreshed" if request.refresh else "ok").inc()
        await self.bus.respond(delivery, AUTH_TOKENS_GET, reply)

    async def list_credentials(self, request: CredentialListRequest, delivery: Delivery) -> None:
        try:
            credentials = await self.store.list(request.provider)
        except KeyStoreUnavailable:
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        await self.bus.respond(delivery, AUTH_CREDENTIALS_LIST, CredentialList(credentials=credentials))

    async def remove_credential(self, request: CredentialRemove, delivery: Delivery) -> None:
        try:
            info = await self.store.remove(request.provider, request.id)
        except CredentialError as exc:
            await self.bus.respond_error(delivery, _bus_error(exc))
            return
        except KeyStoreUnavailable:
            await self.bus.respond_error(delivery, _STORE_DOWN)
            return
        log.info("credential %s/%s removed by %s", request.provider, request.id, request.actor or "unknown")
        await self.bus.respond(delivery, AUTH_CREDENTIALS_REMOVE, info)


class CredentialService:
    """The stored credentials of one auth process (see the module docstring).

    `retry_interval`: seconds between two attempts at every unhealthy credential."""

    def __init__(
        self,
        bus: Bus,
        redis: Redis,
        vault: Vault,
        providers: Mapping[str, ConfiguredProvider],
        *,
        http: HttpClient | None = None,
        retry_interval: float = 60.0,
    ) -> None:
        self.bus = bus
        self.providers = providers
        self._own_http = http is None
        self.http = http or HttpClient(connect_timeout=10.0, read_timeout=30.0, max_keepalive=8)
        self.retry_interval = retry_interval
        exchange = UpstreamExchange(self.http, lambda: self.providers)
        self.store = CredentialStore(redis, vault, exchange, self._publish)
        self.handlers = CredentialHandlers(bus, self.store)
        self._retry: asyncio.Task[None] | None = None

    async def _publish(self, event: CredentialEvent) -> None:
        try:
            await self.bus.publish(AUTH_CREDENTIAL_EVENTS, event)
        except BusFailure:
            log.warning(
                "credential %s/%s %s, but the routers were not told: bus unavailable",
                event.credential.provider,
                event.credential.id,
                event.action,
            )

    async def start(self) -> None:
        """Import the config's credentials, answer on the bus, start the retries."""
        await self._import()
        await self.handlers.subscribe()
        self._retry = asyncio.create_task(self._retry_unhealthy())

    async def apply(self, providers: Mapping[str, ConfiguredProvider]) -> None:
        """A reloaded config: its providers from now on, its credentials imported."""
        self.providers = providers
        await self._import()

    async def _import(self) -> None:
        try:
            await self.store.sync_config(self.providers)
        except KeyStoreUnavailable:
            log.error("config credentials not imported: the auth store is unavailable")

    async def _retry_unhealthy(self) -> None:
        while True:
            await asyncio.sleep(self.retry_interval)
            try:
                await self.store.revive()
            except KeyStoreUnavailable:
                log.warning("unhealthy credentials not retried: the auth store is unavailable")

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        if self._own_http:
            await self.http.aclose()
