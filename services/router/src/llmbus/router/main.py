"""Router wiring: config → catalog; `llm.v1.route` and `control.v1.registry` in the
`router` queue group; the live view from broadcast events and worker status; the
runtime state (switches, cooldowns) fetched from auth at start; config reloads."""

from __future__ import annotations

import asyncio
import logging

from llmbus.bus import Lifecycle, run_service
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

__all__ = ["main", "serve"]

log = logging.getLogger(__name__)


async def serve(settings: RouterSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    refuse_unsafe(settings, config)
    async with Lifecycle("router", settings, stop) as life:
        bus = await life.connect("llmbus-router")
        router = Router(bus, config)
        await bus.subscribe(CONTROL_PROVIDER_ENABLED, router.on_enabled)
        await bus.subscribe(AUTH_COOLDOWN_EVENTS, router.on_cooldown)
        await bus.subscribe(AUTH_CREDENTIAL_EVENTS, router.on_credential)
        await bus.subscribe(CONTROL_COOLDOWNS, router.on_cooldown)
        await bus.subscribe(CONTROL_COOLDOWNS_CLEARED, router.on_cooldowns_cleared)
        await bus.subscribe(WORKER_STATUS, router.on_worker_status)
        # Eager: routing waits for nothing, and needs no task of its own.
        await bus.subscribe(ROUTE, router.on_route, queue=ROUTE.queue, eager=True)
        await bus.subscribe(CONTROL_REGISTRY, router.on_query, queue=CONTROL_REGISTRY.queue)

        async def apply(new: Config) -> None:
            router.apply(new)

        life.spawn(router.catch_up())
        life.spawn(ConfigWatcher(settings.config, apply).run())
        await life.serve(f"router ready: {len(router.catalog.routes(router.state))} model names")


def main() -> int:
    settings = RouterSettings.from_env()
    return run_service("router", lambda stop: serve(settings, stop), settings.log_level)
