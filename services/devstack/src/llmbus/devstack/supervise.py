"""`make run`'s supervision: a process that exits is started again, after a wait that
doubles from half a second up to half a minute while it keeps dying young (it resets
once the process has run for a minute); the others keep serving meanwhile. Stopping
sends SIGTERM to every llmbus service at once, lets them drain, and stops NATS and Redis
only after them.

The edge's port stays the same across runs: a port still closing from the last run is
waited for, a port another process listens on is a clear error naming that process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmbus.testing import Process, Stack

__all__ = ["PortTaken", "Supervisor", "claim_port", "port_holder"]

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0
"""A process that ran this long before it exited is started again after the first wait."""
INFRA = ("nats", "redis")
"""Stopped after every llmbus service, so the services drain over a working bus."""


class PortTaken(RuntimeError):
    """A port the stack needs is held by another process."""


def _can_bind(host: str, port: int) -> bool:
    # SO_REUSEADDR, as uvicorn binds: a port whose last connections are closing
    # (TIME_WAIT) is free to listen on, one that something listens on is not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str | None:
    """`name (pid N)` of a process listening on TCP `port` of this machine, when /proc
    tells (Linux, a process of a user we may inspect); None otherwise."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                        name = Path(f"/proc/{pid}/comm").read_text().strip()
                        return f"{name} (pid {pid})"
    return None


def claim_port(port: int, host: str = "127.0.0.1", wait: float = 15.0) -> None:
    """Return once `port` can be listened on, waiting up to `wait` seconds for one that
    is still being released (the last run's edge stopping); `PortTaken` naming the
    holder when another process keeps it."""
    deadline = time.monotonic() + wait
    while not _can_bind(host, port):
        if time.monotonic() >= deadline:
            holder = port_holder(port)
            who = f"{holder} listens on it" if holder else "another process holds it"
            raise PortTaken(
                f"port {port} is taken: {who}. Stop it, or run on another port: "
                f"`make run PORT=<port>` (python -m llmbus.devstack --port <port>)"
            )
        time.sleep(0.2)


@dataclass
class _Watch:
    started: float = field(default_factory=time.monotonic)
    backoff: float = FIRST_BACKOFF
    due: float | None = None
    """When the exited process starts again; None while it runs."""


@dataclass
class Supervisor:
    stack: Stack
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)
    drain_seconds: float = 15.0
    """How long the services get to stop after SIGTERM before they are killed."""
    _watches: dict[str, _Watch] = field(default_factory=dict)

    def tick(self) -> None:
        """Look at every process once: note the ones that exited, start the ones due."""
        now = time.monotonic()
        for name, process in self.stack.processes.items():
            watch = self._watches.setdefault(name, _Watch())
            if process.running:
                continue
            if watch.due is None:
                if now - watch.started >= HEALTHY_AFTER:
                    watch.backoff = FIRST_BACKOFF
                code = process.popen.returncode if process.popen is not None else None
                self.say(
                    f"llmbus: {name} exited ({_status(code)}); starting it again in {watch.backoff:.1f} s. "
                    f"Its log: {process.log_path}"
                )
                watch.due = now + watch.backoff
                watch.backoff = min(watch.backoff * 2, MAX_BACKOFF)
            elif now >= watch.due:
                self._restart(name, process, watch)

    def _restart(self, name: str, process: Process, watch: _Watch) -> None:
        if name == "edge":
            port = int(process.env.get("LLMBUS_PORT", "8317"))
            if not _can_bind(process.env.get("LLMBUS_HOST", "127.0.0.1"), port):
                return  # still closing (or taken): looked at again on the next tick
        process.start()
        watch.started, watch.due = time.monotonic(), None
        pid = process.popen.pid if process.popen is not None else "?"
        self.say(f"llmbus: {name} started again (pid {pid})")

    def stop(self) -> None:
        """SIGTERM to every llmbus service at once; NATS and Redis once they are gone."""
        services = [p for name, p in self.stack.processes.items() if name not in INFRA]
        for process in services:
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_seconds
        for process in services:
            if process.popen is None:
                continue
            try:
                process.popen.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.say(f"llmbus: {process.name} did not stop in time: killed")
                process.kill()
        self.stack.stop()


def _status(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"status {code}"
