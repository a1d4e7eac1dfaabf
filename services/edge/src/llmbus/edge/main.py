"""Edge wiring: bus, inbox, key cache, catalog; uvicorn on uvloop."""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import AsyncExitStack

import uvicorn

from llmbus.bus import Inbox, connect
from llmbus.config import Config, ConfigError, ConfigWatcher, load_config
from llmbus.config.guard import UnsafeSettings, refuse_unsafe
from llmbus.edge.app import create_app
from llmbus.edge.context import EdgeContext
from llmbus.edge.keys import KeyCache
from llmbus.edge.management import ManagementKey
from llmbus.edge.registry import RegistryClient
from llmbus.edge.settings import EdgeSettings
from llmbus.telemetry import setup_logging, setup_tracing, shutdown_tracing

__all__ = ["build_context", "main"]

log = logging.getLogger(__name__)


async def build_context(settings: EdgeSettings, stack: AsyncExitStack) -> EdgeContext:
    config = load_config(settings.config)
    bus = await connect(
        settings.nats_url, name="llmbus-edge", user=settings.nats_user, password=settings.nats_password
    )
    stack.push_async_callback(bus.drain)
    inbox = Inbox(bus)
    await inbox.start()
    keys = KeyCache(bus, settings.key_cache_ttl)
    await keys.start()
    await bus.flush()
    management = ManagementKey(config.management_key, config.remote_management)

    async def apply(new: Config) -> None:
        management.set(new.management_key, new.remote_management)

    watcher = asyncio.create_task(ConfigWatcher(settings.config, apply).run())
    stack.callback(watcher.cancel)
    log.info("edge ready on http://%s:%d", settings.host, settings.port)
    return EdgeContext(
        settings=settings,
        bus=bus,
        inbox=inbox,
        keys=keys,
        registry=RegistryClient(bus),
        management=management,
    )


def main() -> int:
    settings = EdgeSettings.from_env()
    setup_logging("edge", settings.log_level)
    setup_tracing("edge")
    try:
        refuse_unsafe(settings, load_config(settings.config))
    except ConfigError as exc:
        log.error("bad configuration:\n%s", exc)
        return 1
    except UnsafeSettings as exc:
        log.error("%s", exc)
        return 1
    app = create_app(settings, build_context)
    loop = "asyncio" if sys.platform == "win32" else "uvloop"
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=loop,
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        shutdown_tracing()
    return 0
