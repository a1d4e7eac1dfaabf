"""Process lifecycle shared by the bus services (router, workers, auth).

`run_service` owns the process: it installs uvloop, turns SIGTERM and SIGINT into a stop
event, runs the service's `serve(stop)` coroutine and flushes traces on the way out.

`Lifecycle` is the one way a bus service starts and stops, so every service does both
the same way:

    async with Lifecycle("router", settings, stop) as life:
        bus = await life.connect("llmbus-router")
        ...                                  # subscriptions, the service's own objects
        life.spawn(watcher.run())            # background tasks
        await life.serve("router ready")     # metrics, flush, "ready", wait for stop

Start: connect to NATS (retried within its timeout), the service's wiring, background
tasks, the `/metrics` and `/healthz` port, a flush (the subscriptions are live on the
server), one "ready" line. Stop (SIGTERM, SIGINT), in this order:

1. no new work: the `on_stop` callbacks (a worker leaves its queue groups, so the next
   request goes to another worker or fails over at once);
2. work in flight finishes: the message handlers still running get `drain_seconds`;
   those still running after it are cancelled (a stream cut this way ends at the edge
   with an error event, after its idle timeout at most);
3. the background tasks are cancelled, the metrics port closes;
4. the bus drains (the last messages go out) and closes;
5. what the service opened (`on_close`: HTTP clients, Redis) closes, last first.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Protocol, Self

from llmbus.bus.client import NatsBus, connect
from llmbus.telemetry import serve_metrics, setup_logging, setup_tracing, shutdown_tracing

__all__ = ["BusServiceSettings", "Lifecycle", "run_service", "settle_heap"]

log = logging.getLogger(__name__)


class BusServiceSettings(Protocol):
    """What `Lifecycle` reads from a service's settings."""

    @property
    def nats_url(self) -> str: ...
    @property
    def nats_user(self) -> str: ...
    @property
    def nats_password(self) -> str: ...
    @property
    def metrics_host(self) -> str: ...
    @property
    def metrics_port(self) -> int: ...
    @property
    def drain_seconds(self) -> float: ...


class Lifecycle:
    """One bus service's start and orderly stop (see the module docstring)."""

    def __init__(self, name: str, settings: BusServiceSettings, stop: asyncio.Event) -> None:
        self.name = name
        self.settings = settings
        self.stop = stop
        self._bus: NatsBus | None = None
        self.closing = AsyncExitStack()
        """What `on_close` adds to, for code that takes an exit stack."""
        self._tasks: list[asyncio.Task[Any]] = []
        self._on_stop: list[Callable[[], Awaitable[object]]] = []
        self._metrics: asyncio.Server | None = None

    @property
    def bus(self) -> NatsBus:
        if self._bus is None:
            raise RuntimeError("not connected: call connect() first")
        return self._bus

    async def __aenter__(self) -> Self:
        await self.closing.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            await self._shut_down()
        except Exception as failure:  # what the service opened must still close
            log.error("%s: stopping failed: %s", self.name, failure)
        return await self.closing.__aexit__(kind, exc, tb)

    async def connect(self, client_name: str, timeout: float = 10.0) -> NatsBus:
        """The service's bus connection (it reconnects by itself afterwards)."""
        settings = self.settings
        self._bus = await connect(
            settings.nats_url,
            name=client_name,
            timeout=timeout,
            user=settings.nats_user,
            password=settings.nats_password,
        )
        return self._bus

    def on_close(self, close: Callable[[], Awaitable[object]]) -> None:
        """Close a resource of the service after the bus has drained (last added, first
        closed): what in-flight work uses must outlive it."""
        self.closing.push_async_callback(close)

    def on_stop(self, stop_taking_work: Callable[[], Awaitable[object]]) -> None:
        """Run first when the service stops: stop taking new work."""
        self._on_stop.append(stop_taking_work)

    def spawn(self, work: Coroutine[Any, Any, object]) -> asyncio.Task[Any]:
        """A background task, cancelled after the work in flight has drained."""
        task = asyncio.create_task(work)
        self._tasks.append(task)
        return task

    async def serve(self, ready: str) -> None:
        """Serve metrics, make sure the subscriptions are live, log `ready`, then wait for
        the stop signal."""
        bus = self.bus
        if self.settings.metrics_port:
            self._metrics = await serve_metrics(
                self.settings.metrics_host, self.settings.metrics_port, lambda: bus.connected
            )
        await bus.flush()
        settle_heap()
        log.info("%s", ready)
        await self.stop.wait()

    async def _shut_down(self) -> None:
        if self.stop.is_set():
            log.info("%s stopping: no new work, draining", self.name)
        for stop_taking_work in self._on_stop:
            try:
                await stop_taking_work()
            except Exception as exc:  # the rest of the drain must still happen
                log.warning("%s: stopping new work failed: %s", self.name, exc)
        bus = self._bus
        if bus is not None:
            left = await bus.settle(self.settings.drain_seconds)
            if left:
                log.warning(
                    "%s: %d handlers still running after %g s: cancelled",
                    self.name,
                    left,
                    self.settings.drain_seconds,
                )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._metrics is not None:
            self._metrics.close()
        if bus is not None:
            await bus.drain()
        if self.stop.is_set():
            log.info("%s stopped", self.name)


def settle_heap() -> None:
    """Once a service has started: what start-up made (modules, config, clients) is moved
    out of the garbage collector's sight (`gc.freeze`), so that its collections scan only
    what requests make, not every long-lived object of the process again and again."""
    gc.collect()
    gc.freeze()


def run_service(name: str, serve: Callable[[asyncio.Event], Awaitable[None]], log_level: str = "info") -> int:
    setup_logging(name, log_level)
    setup_tracing(name)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    try:
        if sys.platform != "win32":
            import uvloop

            uvloop.run(main())
        else:  # pragma: no cover
            asyncio.run(main())
    except Exception as exc:
        log.error("%s failed: %s", name, exc)
        return 1
    finally:
        shutdown_tracing()
    return 0
