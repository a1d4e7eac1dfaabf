"""Worker wiring: the providers of one adapter family, one shared HTTP client, the exec
subscriptions (queue group `worker.<provider>`), health checks, the status it sends the
routers, and config reloads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from llmbus.bus import Bus, BusFailure, Lifecycle, run_service
from llmbus.config import Config, ConfigWatcher, load_config
from llmbus.config.guard import refuse_unsafe
from llmbus.proto import WORKER_STATUS, WorkerStatus
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.adapters import adapter_for
from llmbus.providers.credentials import CredentialSource
from llmbus.providers.http import HttpClient
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
    async with Lifecycle(f"worker-{settings.family}", settings, stop) as life:
        http = HttpClient(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_connections=settings.max_connections,
            max_keepalive=settings.max_keepalive,
            keepalive_expiry=settings.keepalive_expiry,
        )
        life.on_close(http.aclose)
        bus = await life.connect(f"llmbus-worker-{settings.family}-{os.getpid()}")
        bus.coalesce(settings.coalesce_ms / 1000)
        # Copilot and Kiro tokens come from auth, which owns those credentials.
        sources: dict[str, CredentialSource] | None = (
            {settings.family: AuthTokens(bus)} if settings.family in AUTH_OWNED_FAMILIES else None
        )
        worker = Worker(
            bus, http, providers, {settings.family: adapter}, settings.heartbeat_interval, sources
        )
        await worker.start()
        # Stopping: leave every provider's queue group first, so new requests go to the
        # other workers while the streams in flight finish here.
        life.on_stop(lambda: worker.serve({}))
        health = HealthChecker(http, worker.adapters, lambda: worker.providers, worker.sources)

        async def apply(new: Config) -> None:
            if life.stop.is_set():
                return  # stopping: no provider again
            await worker.serve(served_providers(settings, configured_providers(new)))
            log.info("now serving: %s", ", ".join(sorted(worker.providers)) or "none")

        life.spawn(health.run())
        life.spawn(_send_status(bus, worker, health, settings, instance))
        life.spawn(ConfigWatcher(settings.config, apply).run())
        await life.serve(
            f"worker ready: family {settings.family}, providers {', '.join(sorted(providers)) or 'none'}"
        )


def main() -> int:
    settings = WorkerSettings.from_env()
    if settings.processes > 1:
        return supervise(settings)
    return run_service(f"worker-{settings.family}", lambda stop: serve(settings, stop), settings.log_level)
