"""Router handlers.

- route: model → failover plan → `llm.v1.exec.<provider>`; the request body is
  forwarded as it is (`msgspec.Raw`), never decoded here.
- registry queries from the edge, answered with ready JSON.
- the live view: providers switched on or off, credentials cooling down, worker status.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
from prometheus_client import Counter

from llmbus.api import ApiError, openai_error_body
from llmbus.bus import Bus, BusFailure, BusUnavailable, Delivery, retry_within
from llmbus.config import Config
from llmbus.proto import (
    AUTH_STATE,
    CONTROL_REGISTRY,
    EVENTS,
    EXEC,
    Cooldown,
    CooldownCleared,
    CredentialEvent,
    Error,
    ExecRequest,
    ProviderEnabled,
    RegistryQuery,
    RegistryReply,
    RouteRequest,
    RuntimeState,
    RuntimeStateRequest,
    WorkerStatus,
)
from llmbus.providers import configured_providers
from llmbus.router.cluster import Cluster
from llmbus.router.registry import Registry
from llmbus.routing import Catalog, LiveState, NoRoute, RoutingError, Selector, plan

__all__ = ["Router"]

log = logging.getLogger(__name__)

ROUTED = Counter("llmbus_router_requests_total", "Requests routed", ["provider", "outcome"])
_json = msgspec.json.Encoder().encode


class Router:
    def __init__(self, bus: Bus, config: Config) -> None:
        self.bus = bus
        self._routed: dict[str, Any] = {}
        """`ROUTED`'s series of routed requests, by provider."""
        self.state = LiveState()
        self.cluster = Cluster(self.state)
        self.apply(config)

    def apply(self, config: Config) -> None:
        """Take a (new) configuration: one assignment each, requests in flight unaffected."""
        self.catalog = Catalog(
            configured_providers(config), force_model_prefix=config.force_model_prefix, routing=config.routing
        )
        self.selector = Selector(config.routing.strategy)
        self.max_attempts = config.routing.max_attempts
        for name in self.catalog.unknown_fallbacks():
            log.error("the config names `%s` as a fallback model, but no provider serves it", name)
        self.registry = Registry(self.catalog, self.state, self.cluster)

    # --- the hot path ----------------------------------------------------------------

    async def on_route(self, request: RouteRequest, delivery: Delivery) -> None:
        if request.deadline and request.deadline < time.time() * 1000:
            return  # the edge has given up already
        try:
            targets = plan(
                self.catalog, self.selector, request.model, request.needs, self.state, self.max_attempts
            )
        except RoutingError as exc:
            ROUTED.labels("", exc.code).inc()
            await self._fail(request, exc)
            return
        if all(self.state.has_worker(t.provider) is False for t in targets):
            # Every step's provider has had no live worker for a while: say so at once
            # (NATS tells the edge of no responders only on the edge's own publishes).
            # Before any worker status has arrived (a router just started), it is sent on.
            providers = ", ".join(sorted({t.provider for t in targets}))
            error = NoRoute(
                f"no llmbus worker serves `{request.model}` now (providers: {providers})",
                code="no_worker_available",
            )
            ROUTED.labels("", error.code).inc()
            await self._fail(request, error)
            return
        target = targets[0]
        exec_request = ExecRequest(
            request_id=request.request_id,
            model=request.model,
            reply=request.reply,
            deadline=request.deadline,
            client=request.client,
            needs=request.needs,
            body=request.body,
            tokens=request.tokens,
            first_byte_deadline=request.first_byte_deadline,
            target=target,
            plan=targets[1:],
        )
        # reply= the edge's inbox: with no worker subscribed, NATS answers it with a 503.
        # Written at once, not at the end of the loop's pass, for a stream (its first
        # token waits on it) and when this is the router's only request (nothing would
        # share the write); requests read together share one.
        await self.bus.publish(
            EXEC,
            exec_request,
            reply=request.reply,
            pace="now" if request.needs.streaming or self.bus.handling <= 1 else "pass",
            provider=target.provider,
        )
        routed = self._routed.get(target.provider)
        if routed is None:
            routed = self._routed[target.provider] = ROUTED.labels(target.provider, "routed")
        routed.inc()

    async def _fail(self, request: RouteRequest, exc: RoutingError) -> None:
        frame = EVENTS.encode(
            Error(seq=0, status=exc.status, code=exc.code, message=exc.message, retry_after=exc.retry_after)
        )
        try:
            await self.bus.publish_raw(request.reply, frame)
        except BusUnavailable:
            log.warning("cannot answer request %s: bus unavailable", request.request_id)

    # --- registry queries ------------------------------------------------------------

    def _answer(self, query: RegistryQuery) -> dict[str, Any]:
        registry = self.registry
        match query.kind:
            case "providers":
                return registry.providers(query.params)
            case "provider":
                return registry.provider(query.name)
            case "provider_models":
                return registry.provider_models(query.name)
            case "provider_capabilities":
                return registry.provider_capabilities(query.name)
            case "provider_status":
                return registry.provider_status(query.name)
            case "models":
                return registry.models(query.params)
            case "model":
                return registry.model(query.name)
            case "capabilities":
                return registry.capabilities(query.params)
            case "metrics":
                return registry.metrics(query.params)

    async def on_query(self, query: RegistryQuery, delivery: Delivery) -> None:
        try:
            reply = RegistryReply(body=_json(self._answer(query)))
        except ApiError as exc:
            reply = RegistryReply(status=exc.status, body=openai_error_body(exc))
        await self.bus.respond(delivery, CONTROL_REGISTRY, reply)

    # --- the live view ---------------------------------------------------------------

    def load(self, snapshot: RuntimeState) -> None:
        """Take the switches and cooldowns set before this router started. Events that
        arrived meanwhile are newer and win: the snapshot only fills what they did not set."""
        for provider, enabled in snapshot.enabled.items():
            self.state.enabled.setdefault(provider, enabled)
        self.state.credentials.load(snapshot.credentials)
        for cooldown in snapshot.cooldowns:
            self.state.cool_down(
                cooldown.provider, cooldown.credential, cooldown.until, cooldown.reason, cooldown.model
            )

    async def catch_up(self, max_delay: float = 2.0) -> None:
        """Fetch the runtime state from auth, retried until auth answers (it may start
        after the router): the bus's one retry policy, without a budget."""

        async def ask(_: float | None) -> RuntimeState:
            return await self.bus.request(AUTH_STATE, RuntimeStateRequest(), timeout=2)

        snapshot = await retry_within(
            None,
            ask,
            on=BusFailure,
            wait_initial=0.1,
            wait_max=max_delay,
            what="fetching auth's runtime state",
        )
        self.load(snapshot)
        log.info(
            "runtime state loaded: %d switches, %d cooldowns",
            len(snapshot.enabled),
            len(snapshot.cooldowns),
        )

    async def on_enabled(self, event: ProviderEnabled, _: Delivery) -> None:
        self.state.enabled[event.provider] = event.enabled
        log.info("provider %s %s", event.provider, "enabled" if event.enabled else "disabled")

    async def on_cooldown(self, event: Cooldown, _: Delivery) -> None:
        """A worker's refusal or recovery report, or auth's longer rest."""
        if not event.until:
            self.state.recovered(event.provider, event.credential, event.model)
            return
        self.state.cool_down(event.provider, event.credential, event.until, event.reason, event.model)
        log.info(
            "credential %s/%s cooling down for %.0fs%s: %s",
            event.provider,
            event.credential,
            event.until - time.time(),
            f" for {event.model}" if event.model else "",
            event.reason,
        )

    async def on_cooldowns_cleared(self, event: CooldownCleared, _: Delivery) -> None:
        cleared = self.state.clear(event.provider, event.credential, event.model)
        log.info("cooldowns of %s cleared: %d", event.provider, cleared)

    async def on_credential(self, event: CredentialEvent, _: Delivery) -> None:
        """Auth stored, removed or re-judged a credential (a login, a failed refresh)."""
        self.state.credentials.apply(event)
        info = event.credential
        why = f": {info.reason}" if event.action == "unhealthy" and info.reason else ""
        log.info("credential %s/%s %s%s", info.provider, info.id, event.action, why)

    async def on_worker_status(self, status: WorkerStatus, _: Delivery) -> None:
        self.cluster.update(status)
