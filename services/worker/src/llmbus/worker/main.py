"""Worker wiring: the providers of one adapter family, one shared HTTP client, the exec
subscriptions (queue group `worker.<provider>`), health checks, the status it sends the
routers, and config reloads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from contextlib import AsyncExitStack

from llmbus.bus import Bus, BusFailure, connect, run_service
from llmbus.config import Config, ConfigWatcher, load_config
from llmbus.config.guard import refuse_unsafe
from llmbus.proto import WORKER_STATUS, WorkerStatus
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.adapters import adapter_for
from llmbus.providers.credentials import CredentialSource
from llmbus.providers.http import HttpClient
from llmbus.telemetry import serve_metrics
from llmbus.worker.handlers import Worker
from llmbus.worker.health import HealthChecker
from llmbus.worker.launcher import supervise
from llmbus.worker.settings import WorkerSettings
from llmbus.worker.tokens import AUTH_OWNED_FAMILIES, AuthTokens

__all__ = ["main", "serve", "served_providers"]

log = logging.getLogger(__name__)

VERSION = "0.1.0"


def served_providers(
    settings: WorkerSettings, providers: dict[str, ConfiguredProvider]
) -> dict[str, ConfiguredProvider]:
    wanted = {name.strip() for name in settings.providers.split(",") if name.strip()}
    return {
        name: provider
        for name, provider in providers.items()
        if provider.family == settings.family and provider.configured and (not wanted or name in wanted)
    }


async def _send_status(
    bus: Bus, worker: Worker, health: HealthChecker, settings: WorkerSettings, instance: str
) -> None:
    while True:
        status = WorkerStatus(
            instance=instance,
            family=settings.family,
            version=VERSION,
            providers=sorted(worker.providers),
            in_flight=worker.in_flight,
            stats=worker.stats.snapshot(),
            health=list(health.reports.values()),
            interval=settings.status_interval,
        )
        with contextlib.suppress(BusFailure):
            await bus.publish(WORKER_STATUS, status, traced=False)
        await asyncio.sleep(settings.status_interval)


async def serve(settings: WorkerSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    refuse_unsafe(settings, config)
    adapter = adapter_for(settings.family)
    providers = served_providers(settings, configured_providers(config))
    if not providers:
        log.warning("no configured provider of family %s: this worker will idle", settings.family)
    instance = settings.instance or f"{socket.gethostname()}-{os.getpid()}"
    async with AsyncExitStack() as stack:
        http = HttpClient(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_connections=settings.max_connections,
            max_keepalive=settings.max_keepalive,
            keepalive_expiry=settings.keepalive_expiry,
        )
        stack.push_async_callback(http.aclose)
        bus = await connect(
            settings.nats_url,
            name=f"llmbus-worker-{settings.family}-{os.getpid()}",
            user=settings.nats_user,
            password=settings.nats_password,
        )
        stack.push_async_callback(bus.drain)
        # Copilot and Kiro tokens come from auth, which owns those credentials.
        sources: dict[str, CredentialSource] | None = (
            {settings.family: AuthTokens(bus)} if settings.family in AUTH_OWNED_FAMILIES else None
        )
        worker = Worker(
            bus, http, providers, {settings.family: adapter}, settings.heartbeat_interval, sources
        )
        await worker.start()
        health = HealthChecker(http, worker.adapters, lambda: worker.providers, worker.sources)

        async def apply(new: Config) -> None:
            await worker.serve(served_providers(settings, configured_providers(new)))
            log.info("now serving: %s", ", ".join(sorted(worker.providers)) or "none")

        watcher = ConfigWatcher(settings.config, apply)
        tasks = [
            asyncio.create_task(health.run()),
            asyncio.create_task(_send_status(bus, worker, health, settings, instance)),
            asyncio.create_task(watcher.run()),
        ]
        for task in tasks:
            stack.callback(task.cancel)
        if settings.metrics_port:
            server = await serve_metrics(settings.metrics_host, settings.metrics_port, lambda: bus.connected)
            stack.callback(server.close)
        await bus.flush()
        log.info(
            "worker ready: family %s, providers %s", settings.family, ", ".join(sorted(providers)) or "none"
        )
        await stop.wait()


def main() -> int:
    settings = WorkerSettings.from_env()
    if settings.processes > 1:
        return supervise(settings)
    return run_service(f"worker-{settings.family}", lambda stop: serve(settings, stop), settings.log_level)
