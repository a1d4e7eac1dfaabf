"""More than one core per family: `LLMBUS_PROCESSES=N` makes the worker command start N
processes of itself, in the same queue groups, and supervise them.

A child that exits while the launcher runs is started again, after a wait that doubles
from half a second up to half a minute while it keeps dying young (it resets once a
child has run for a minute). SIGTERM or SIGINT passes SIGTERM to every child, each
drains as a single worker does, and the launcher waits for them (then kills what is left
after their `LLMBUS_DRAIN_SECONDS` and `DRAIN_MARGIN` more). Children die with the
launcher even if it is killed outright.

Child k is told apart by its instance name (`<instance>-k`) and, when the family serves
metrics, by its port (`metrics_port + k`): the first child answers the configured port,
so a health check there sees the family up."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping

from llmbus.telemetry import setup_logging
from llmbus.worker.settings import WorkerSettings

__all__ = ["child_environment", "supervise"]

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0
"""A child that ran this long before it died is restarted at once (its backoff resets)."""
DRAIN_MARGIN = 5.0
"""Beyond a child's own drain time, how long SIGTERM waits for it to exit before killing it
(closing its bus connection and clients takes a moment too)."""


def child_environment(settings: WorkerSettings, index: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of child `index`: the launcher's, as one process of the family."""
    base = settings.instance or f"{socket.gethostname()}-{os.getpid()}"
    env = dict(environ)
    env["LLMBUS_PROCESSES"] = "1"
    env["LLMBUS_INSTANCE"] = f"{base}-{index}"
    env["LLMBUS_METRICS_PORT"] = str(settings.metrics_port + index if settings.metrics_port else 0)
    env.pop("LLMBUS_INSTANCE_FILE", None)
    env.pop("LLMBUS_METRICS_PORT_FILE", None)
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: SIGTERM this child when the launcher goes, however it goes."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Launcher:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        self.children: dict[int, asyncio.subprocess.Process] = {}

    async def _start(self, index: int) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "llmbus.worker",
            env=child_environment(self.settings, index, os.environ),
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.children[index] = process
        log.info("worker process %d started (pid %d)", index, process.pid)
        return process

    async def keep(self, index: int) -> None:
        """Run child `index`, and run it again when it dies, until the launcher stops."""
        backoff = FIRST_BACKOFF
        while not self.stopping.is_set():
            began = time.monotonic()
            process = await self._start(index)
            code = await process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - began >= HEALTHY_AFTER:
                backoff = FIRST_BACKOFF
            log.warning(
                "worker process %d (pid %d) exited with %s; again in %.1f s",
                index,
                process.pid,
                code,
                backoff,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def stop_children(self) -> None:
        running = [p for p in self.children.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.settings.drain_seconds + DRAIN_MARGIN):
                for process in running:
                    await process.wait()
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    log.warning("worker process pid %d did not drain in time: killed", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        keepers = [asyncio.create_task(self.keep(i)) for i in range(self.settings.processes)]
        log.info("worker launcher: %d processes of family %s", self.settings.processes, self.settings.family)
        await self.stopping.wait()
        await self.stop_children()
        await asyncio.gather(*keepers, return_exceptions=True)
        return 0


def supervise(settings: WorkerSettings) -> int:
    """Run `settings.processes` worker processes until SIGTERM; the exit code of the launcher."""
    setup_logging(f"worker-{settings.family}-launcher", settings.log_level)
    return asyncio.run(_Launcher(settings).run())
