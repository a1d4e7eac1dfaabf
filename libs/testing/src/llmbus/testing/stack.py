"""The whole gateway as processes on one machine: NATS, Redis, the mock upstream and
every llmbus service, wired together on free ports. Used by `make run` and by the
end-to-end tests, so both run exactly the same entry points."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llmbus.bus.access import Role
from llmbus.testing.bususers import BusUsers
from llmbus.testing.leaks import SECRETS
from llmbus.testing.processes import (
    Process,
    free_port,
    port_is_free,
    start_nats,
    start_redis,
    wait_for_http,
)

__all__ = ["Stack", "StackPorts"]

_ROLES: dict[str, Role] = {"edge": "edge", "router": "router", "worker": "worker", "auth": "auth"}
"""The module of each service that uses the bus, and the NATS role it plays."""


@dataclass
class StackPorts:
    edge: int
    nats: int
    redis: int
    mock: int

    @classmethod
    def pick(cls, *, prefer_defaults: bool) -> StackPorts:
        def choose(default: int) -> int:
            return default if prefer_defaults and port_is_free(default) else free_port()

        return cls(edge=choose(8317), nats=choose(4222), redis=choose(6379), mock=choose(8319))


@dataclass
class Stack:
    config: Path
    log_dir: Path
    ports: StackPorts
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables for every service: the config file's references (upstream URLs and keys)
    and `LLMBUS_*` settings. Nothing points a provider at the mock unless this says so."""
    workers: Mapping[str, int] = field(default_factory=lambda: {"openai": 1})
    """Worker processes per adapter family."""
    replicas: int = 1
    """Routers: more than one proves the cluster-wide parts."""
    processes: dict[str, Process] = field(default_factory=dict)
    with_infra: bool = True
    bus_users: BusUsers | None = None
    """The NATS users and passwords of this run. With `with_infra`, made here when not
    given; without, those of the NATS server the stack shares (no users: an open bus)."""

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports.nats}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.edge}"

    @property
    def mock_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.mock}"

    def service_env(self) -> dict[str, str]:
        return {
            "LLMBUS_CONFIG": str(self.config),
            "LLMBUS_NATS_URL": self.nats_url,
            "LLMBUS_REDIS_URL": self.redis_url,
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }

    def start(self) -> Stack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.with_infra and self.bus_users is None:
            self.bus_users = BusUsers.generate()
        SECRETS.add_env(self.service_env(), f"the stack in {self.log_dir}")
        SECRETS.add_config(self.config.read_text(), self.service_env(), str(self.config))
        try:
            if self.with_infra:
                self.processes["nats"] = start_nats(self.ports.nats, self.log_dir, users=self.bus_users)
                self.processes["redis"] = start_redis(self.ports.redis, self.log_dir)
            self.start_service("mock-upstream", "mock_upstream", {"LLMBUS_MOCK_PORT": str(self.ports.mock)})
            wait_for_http(f"{self.mock_url}/healthz", process=self.processes["mock-upstream"])
            self.start_service("auth", "auth")
            # Replicas share their service name in traces; the instance tells them apart.
            for replica in range(1, self.replicas + 1):
                suffix = "" if replica == 1 else f"-{replica}"
                self.start_service(f"router{suffix}", "router", {"OTEL_SERVICE_NAME": "llmbus-router"})
            for family, count in self.workers.items():
                for replica in range(1, count + 1):
                    suffix = "" if replica == 1 else f"-{replica}"
                    self.start_service(
                        f"worker-{family}{suffix}",
                        "worker",
                        {"LLMBUS_FAMILY": family, "OTEL_SERVICE_NAME": f"llmbus-worker-{family}"},
                    )
            self.start_service(
                "edge", "edge", {"LLMBUS_PORT": str(self.ports.edge), "LLMBUS_HOST": "127.0.0.1"}
            )
            for process in self.processes.values():
                url = process.env.get("_HEALTH_URL")
                if url:
                    # Generous: a machine busy with other work starts services slowly.
                    wait_for_http(url, timeout=90, process=process)
        except BaseException:
            self.stop()
            raise
        return self

    def start_service(self, name: str, module: str, env: Mapping[str, str] | None = None) -> Process:
        merged = {**self.service_env(), **(env or {})}
        if self.bus_users is not None and module in _ROLES:
            merged.update(self.bus_users.service_env(name, _ROLES[module]))
        if module == "edge":
            merged["_HEALTH_URL"] = f"http://127.0.0.1:{merged['LLMBUS_PORT']}/readyz"
        elif module == "mock_upstream":
            merged["_HEALTH_URL"] = f"{self.mock_url}/healthz"
        else:
            metrics = free_port()
            merged["LLMBUS_METRICS_PORT"] = str(metrics)
            merged["_HEALTH_URL"] = f"http://127.0.0.1:{metrics}/healthz"
        merged.setdefault("OTEL_SERVICE_NAME", f"llmbus-{name}")
        process = Process(
            name,
            [sys.executable, "-m", f"llmbus.{module}"],
            env=merged,
            log_path=self.log_dir / f"{name}.log",
        ).start()
        self.processes[name] = process
        return process

    def metrics_url(self, name: str) -> str:
        """Where the service's Prometheus metrics are served."""
        env = self.processes[name].env
        if "LLMBUS_METRICS_PORT" in env:
            return f"http://127.0.0.1:{env['LLMBUS_METRICS_PORT']}/metrics"
        return f"{self.base_url}/metrics"

    def wait_ready(self, name: str) -> None:
        process = self.processes[name]
        wait_for_http(process.env["_HEALTH_URL"], process=process)

    def remember_issued(self) -> None:
        """Add the tokens the mock upstream minted (its admin API lists them) to the run's
        secrets, for the log scan; a mock that is gone has nothing more to say."""
        if "mock-upstream" not in self.processes or not self.processes["mock-upstream"].running:
            return
        try:
            with urllib.request.urlopen(f"{self.mock_url}/__mock__/issued", timeout=2) as response:
                issued = json.loads(response.read())
        except (OSError, ValueError):
            return
        for item in issued:
            SECRETS.add(str(item.get("secret", "")), f"{item.get('kind', 'a token')} minted by the mock")

    def stop(self) -> None:
        self.remember_issued()
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
        self.processes.clear()
