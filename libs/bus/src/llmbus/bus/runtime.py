"""Process lifecycle shared by the bus services: event loop, signals, logging, tracing.

`run_service` owns the process: it installs uvloop, turns SIGTERM and SIGINT into a stop
event, runs the service's `serve(stop)` coroutine and flushes traces on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from llmbus.telemetry import setup_logging, setup_tracing, shutdown_tracing

__all__ = ["run_service"]

log = logging.getLogger(__name__)


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
