"""Router wiring: config → catalog, subscribe to `llm.v1.route` in the `router` queue."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from llmbus.bus import connect, run_service
from llmbus.config import load_config
from llmbus.proto import ROUTE
from llmbus.providers import configured_providers
from llmbus.router.handlers import Router
from llmbus.router.settings import RouterSettings
from llmbus.routing import Catalog
from llmbus.telemetry import serve_metrics

__all__ = ["main", "serve"]

log = logging.getLogger(__name__)


async def serve(settings: RouterSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    catalog = Catalog(configured_providers(config))
    async with AsyncExitStack() as stack:
        bus = await connect(settings.nats_url, name="llmbus-router")
        stack.push_async_callback(bus.drain)
        router = Router(bus, catalog)
        await bus.subscribe(ROUTE, router.on_route, queue=ROUTE.queue)
        if settings.metrics_port:
            server = await serve_metrics("0.0.0.0", settings.metrics_port, lambda: bus.connected)
            stack.callback(server.close)
        await bus.flush()
        log.info("router ready: %d models", len(catalog.models()))
        await stop.wait()


def main() -> int:
    settings = RouterSettings.from_env()
    return run_service("router", lambda stop: serve(settings, stop), settings.log_level)
