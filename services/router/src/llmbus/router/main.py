"""Router wiring: config → catalog; `llm.v1.route` and `control.v1.registry` in the
`router` queue group; the live view from broadcast events and worker status; the
runtime state (switches, cooldowns) fetched from auth at start; config reloads."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from llmbus.bus import connect, run_service
from llmbus.config import Config, ConfigWatcher, load_config
from llmbus.config.guard import refuse_unsafe
from llmbus.proto import (
    AUTH_COOLDOWN_EVENTS,
    AUTH_CREDENTIAL_EVENTS,
    CONTROL_COOLDOWNS,
    CONTROL_COOLDOWNS_CLEARED,
    CONTROL_PROVIDER_ENABLED,
    CONTROL_REGISTRY,
    ROUTE,
    WORKER_STATUS,
)
from llmbus.router.handlers import Router
from llmbus.router.settings import RouterSettings
from llmbus.telemetry import serve_metrics

__all__ = ["main", "serve"]

log = logging.getLogger(__name__)


async def serve(settings: RouterSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    refuse_unsafe(settings, config)
    async with AsyncExitStack() as stack:
        bus = await connect(
            settings.nats_url, name="llmbus-router", user=settings.nats_user, password=settings.nats_password
        )
        stack.push_async_callback(bus.drain)
        router = Router(bus, config)
        await bus.subscribe(CONTROL_PROVIDER_ENABLED, router.on_enabled)
        await bus.subscribe(AUTH_COOLDOWN_EVENTS, router.on_cooldown)
        await bus.subscribe(AUTH_CREDENTIAL_EVENTS, router.on_credential)
        await bus.subscribe(CONTROL_COOLDOWNS, router.on_cooldown)
        await bus.subscribe(CONTROL_COOLDOWNS_CLEARED, router.on_cooldowns_cleared)
        await bus.subscribe(WORKER_STATUS, router.on_worker_status)
        await bus.subscribe(ROUTE, router.on_route, queue=ROUTE.queue)
        await bus.subscribe(CONTROL_REGISTRY, router.on_query, queue=CONTROL_REGISTRY.queue)

        async def apply(new: Config) -> None:
            router.apply(new)

        tasks = [
            asyncio.create_task(router.catch_up()),
            asyncio.create_task(ConfigWatcher(settings.config, apply).run()),
        ]
        for task in tasks:
            stack.callback(task.cancel)
        if settings.metrics_port:
            server = await serve_metrics(settings.metrics_host, settings.metrics_port, lambda: bus.connected)
            stack.callback(server.close)
        await bus.flush()
        log.info("router ready: %d model names", len(router.catalog.routes(router.state)))
        await stop.wait()


def main() -> int:
    settings = RouterSettings.from_env()
    return run_service("router", lambda stop: serve(settings, stop), settings.log_level)
