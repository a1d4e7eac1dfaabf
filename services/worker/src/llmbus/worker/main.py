"""Worker wiring: the providers of one adapter family, one shared HTTP client, the exec
subscriptions (queue group `worker.<provider>`) and service heartbeats."""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import AsyncExitStack

from llmbus.bus import connect, run_service
from llmbus.config import load_config
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.adapters import adapter_for
from llmbus.providers.http import HttpClient
from llmbus.telemetry import serve_metrics
from llmbus.worker.handlers import Worker
from llmbus.worker.settings import WorkerSettings

__all__ = ["main", "serve"]

log = logging.getLogger(__name__)


def served_providers(
    settings: WorkerSettings, providers: dict[str, ConfiguredProvider]
) -> dict[str, ConfiguredProvider]:
    wanted = {name.strip() for name in settings.providers.split(",") if name.strip()}
    return {
        name: provider
        for name, provider in providers.items()
        if provider.family == settings.family and provider.configured and (not wanted or name in wanted)
    }


async def serve(settings: WorkerSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    adapter = adapter_for(settings.family)
    providers = served_providers(settings, configured_providers(config))
    if not providers:
        log.warning("no configured provider of family %s: this worker will idle", settings.family)
    async with AsyncExitStack() as stack:
        http = HttpClient(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_connections=settings.max_connections,
        )
        stack.push_async_callback(http.aclose)
        bus = await connect(settings.nats_url, name=f"llmbus-worker-{settings.family}-{os.getpid()}")
        stack.push_async_callback(bus.drain)
        worker = Worker(bus, http, providers, {settings.family: adapter}, settings.heartbeat_interval)
        await worker.start()
        if settings.metrics_port:
            server = await serve_metrics("0.0.0.0", settings.metrics_port, lambda: bus.connected)
            stack.callback(server.close)
        await bus.flush()
        log.info(
            "worker ready: family %s, providers %s", settings.family, ", ".join(sorted(providers)) or "none"
        )
        await stop.wait()


def main() -> int:
    settings = WorkerSettings.from_env()
    return run_service(f"worker-{settings.family}", lambda stop: serve(settings, stop), settings.log_level)
