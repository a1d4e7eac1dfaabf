"""Edge wiring: bus, inbox, key cache, catalog; uvicorn on uvloop."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from contextlib import AsyncExitStack
from typing import Any

import uvicorn
from fastapi import FastAPI

from llmbus.bus import Inbox, connect
from llmbus.bus.runtime import settle_heap
from llmbus.config import Config, ConfigError, ConfigWatcher, load_config
from llmbus.config.guard import UnsafeSettings, refuse_unsafe
from llmbus.edge.app import create_app
from llmbus.edge.context import EdgeContext
from llmbus.edge.drain import EdgeDrain
from llmbus.edge.keys import KeyCache
from llmbus.edge.management import ManagementKey
from llmbus.edge.registry import RegistryClient
from llmbus.edge.server import PROTOCOL, HeadLimitedProtocol
from llmbus.edge.settings import EdgeSettings
from llmbus.edge.usage import UsageReporter
from llmbus.telemetry import setup_logging, setup_tracing, shutdown_tracing

__all__ = ["app", "build_context", "main"]

log = logging.getLogger(__name__)


async def build_context(settings: EdgeSettings, stack: AsyncExitStack) -> EdgeContext:
    config = load_config(settings.config)
    bus = await connect(
        settings.nats_url, name="llmbus-edge", user=settings.nats_user, password=settings.nats_password
    )
    stack.push_async_callback(bus.drain)
    inbox = Inbox(bus)
    await inbox.start()
    EdgeDrain(inbox, settings.drain_seconds).install()
    keys = KeyCache(bus, settings.key_cache_ttl)
    keys.set_config_keys([(k.key, k.name) for k in config.client_keys()])
    await keys.start()
    usage = UsageReporter(bus, settings.usage_flush_interval)
    reporter = asyncio.create_task(usage.run())

    async def stop_reporting() -> None:  # before the bus drains: the last records go out
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)

    stack.push_async_callback(stop_reporting)
    await bus.flush()
    management = ManagementKey(config.management_key, config.remote_management)

    async def apply(new: Config) -> None:
        management.set(new.management_key, new.remote_management)
        keys.set_config_keys([(k.key, k.name) for k in new.client_keys()])

    watcher = asyncio.create_task(ConfigWatcher(settings.config, apply).run())
    stack.callback(watcher.cancel)
    settle_heap()
    log.info("edge ready on http://%s:%d", settings.host, settings.port)
    return EdgeContext(
        settings=settings,
        bus=bus,
        inbox=inbox,
        keys=keys,
        registry=RegistryClient(bus),
        management=management,
        usage=usage,
    )


async def _build_and_flush(settings: EdgeSettings, stack: AsyncExitStack) -> EdgeContext:
    stack.callback(shutdown_tracing)
    return await build_context(settings, stack)


def app() -> FastAPI:
    """One process of a multi-process edge (uvicorn's app factory, in a process of its
    own): its own logging, tracing, bus connection and inbox."""
    settings = EdgeSettings.from_env()
    setup_logging("edge", settings.log_level)
    setup_tracing("edge")
    HeadLimitedProtocol.configure(settings)
    return create_app(settings, _build_and_flush)


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
    HeadLimitedProtocol.configure(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "asyncio" if sys.platform == "win32" else "uvloop",
        # httptools, with limits on the request head (llmbus.edge.server).
        "http": PROTOCOL,
        "lifespan": "on",
        "log_level": "warning",
        "access_log": False,
        # uvicorn's own lines through our handler (JSON or text, redacted).
        "log_config": None,
        # The edge's own drain ends what is still running first (llmbus.edge.drain).
        "timeout_graceful_shutdown": math.ceil(settings.drain_seconds) + 2,
    }
    if settings.processes > 1:
        # uvicorn's supervisor: the socket bound here, one process per worker, each
        # restarted if it dies.
        shutdown_tracing()
        uvicorn.run("llmbus.edge.main:app", factory=True, workers=settings.processes, **options)
        return 0
    try:
        uvicorn.Server(uvicorn.Config(create_app(settings, build_context), **options)).run()
    finally:
        shutdown_tracing()
    return 0
