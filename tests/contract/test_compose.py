"""docker-compose.yml, checked without a Docker engine: its shape against a typed model of
the Compose keys it may use, every command a real entry point installed by the
Dockerfile, every variable it sets one that the service reads, healthchecks that probe
the port the service listens on, and a config that loads with each service's environment.
When a docker client is on PATH, `docker compose config` validates the file as well."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
import yaml

from llmbus.auth.settings import AuthSettings
from llmbus.bus.access import authorization, password_variable, service_users
from llmbus.config import parse_config
from llmbus.edge.settings import EdgeSettings
from llmbus.mock_upstream.settings import MockSettings
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.adapters import FAMILIES
from llmbus.router.settings import RouterSettings
from llmbus.worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# The standard OpenTelemetry SDK variables the services may be given.
OTEL_VARS = frozenset(
    {
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_BSP_SCHEDULE_DELAY",
    }
)
SETTINGS: dict[str, type[Any]] = {
    "edge": EdgeSettings,
    "router": RouterSettings,
    "auth": AuthSettings,
    "worker": WorkerSettings,
    "mock_upstream": MockSettings,
}


class Healthcheck(msgspec.Struct, forbid_unknown_fields=True):
    test: list[str]
    interval: str = "30s"
    timeout: str = "30s"
    retries: int = 3
    start_period: str = "0s"


class Dependency(msgspec.Struct, forbid_unknown_fields=True):
    condition: Literal["service_started", "service_healthy", "service_completed_successfully"]


class Service(msgspec.Struct, forbid_unknown_fields=True):
    image: str
    build: str | None = None
    command: list[str] | None = None
    environment: dict[str, str] = {}
    ports: list[str] = []
    volumes: list[str] = []
    healthcheck: Healthcheck | None = None
    depends_on: dict[str, Dependency] = {}
    profiles: list[str] = []
    restart: Literal["no", "always", "on-failure", "unless-stopped"] | None = None


class ComposeFile(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    services: dict[str, Service]
    volumes: dict[str, dict[str, Any] | None] = {}


_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def _interpolate(value: str, shell: dict[str, str] | None = None) -> str:
    """Compose's `${VAR:-default}`: the shell's (or env file's) value, else the default."""
    given = shell or {}
    return _INTERPOLATION.sub(lambda m: given.get(m.group(1)) or m.group(2) or "", value)


def _worker_providers(family: str, shell: dict[str, str]) -> dict[str, ConfiguredProvider]:
    service = OURS[f"worker-{family}"]
    env = {k: _interpolate(v, shell) for k, v in service.environment.items()}
    config = parse_config((ROOT / "config.example.yaml").read_text(), "config.example.yaml", env)
    return {n: p for n, p in configured_providers(config).items() if p.family == family and p.configured}


def _load() -> ComposeFile:
    raw = yaml.safe_load(COMPOSE.read_text())
    raw = {k: v for k, v in raw.items() if not k.startswith("x-")}
    return msgspec.convert(raw, ComposeFile)


COMPOSE_FILE = _load()
OURS = {name: s for name, s in COMPOSE_FILE.services.items() if s.image.startswith("llmbus:")}


def _module(service: Service) -> str:
    assert service.command is not None
    assert service.command[:3] == ["python", "-m", service.command[2]]
    module = service.command[2]
    assert module.startswith("llmbus."), module
    return module.removeprefix("llmbus.")


def test_the_gateway_and_its_infrastructure_are_all_there() -> None:
    assert set(COMPOSE_FILE.services) >= {
        "nats",
        "redis",
        "jaeger",
        "edge",
        "router",
        "auth",
        "worker-openai",
        "mock-upstream",
    }
    assert COMPOSE_FILE.services["mock-upstream"].profiles == ["demo"]
    profiled = {s: svc.profiles for s, svc in COMPOSE_FILE.services.items() if svc.profiles}
    assert profiled == {"mock-upstream": ["demo"], "prometheus": ["ops"], "grafana": ["ops"]}
    assert any(p.endswith(":16686") for p in COMPOSE_FILE.services["jaeger"].ports)
    assert any(p.endswith(":8317") for p in COMPOSE_FILE.services["edge"].ports)


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_is_an_entry_point_the_image_installs(name: str) -> None:
    module = _module(OURS[name])
    spec = importlib.util.find_spec(f"llmbus.{module}.__main__")
    assert spec is not None, f"{name}: llmbus.{module} has no __main__"
    assert spec.origin is not None
    package_dir = Path(spec.origin).resolve().parents[3].relative_to(ROOT)
    assert f"./{package_dir}" in DOCKERFILE.read_text(), f"the Dockerfile does not install {package_dir}"


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_variable_set_is_read_by_the_service(name: str) -> None:
    service = OURS[name]
    module = _module(service)
    reads = set(SETTINGS[module].env_vars())
    config_text = (ROOT / "config.example.yaml").read_text()
    config_vars = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", config_text))
    reads_config = "LLMBUS_CONFIG" in reads
    for var in service.environment:
        assert var in reads or var in OTEL_VARS or (reads_config and var in config_vars), (
            f"{name} sets {var}, which it never reads"
        )


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_service_has_a_healthcheck_on_its_own_port(name: str) -> None:
    service = OURS[name]
    assert service.healthcheck is not None, f"{name} has no healthcheck"
    test = service.healthcheck.test
    assert test[:4] == ["CMD", "python", "-m", "llmbus.telemetry.probe"]
    assert importlib.util.find_spec("llmbus.telemetry.probe") is not None
    port = re.search(r":(\d+)/", test[4])
    assert port is not None
    env = service.environment
    listening = env.get("LLMBUS_METRICS_PORT") or env.get("LLMBUS_PORT") or env.get("LLMBUS_MOCK_PORT")
    assert port.group(1) == listening, f"{name} probes {test[4]} but listens on {listening}"


@pytest.mark.parametrize("name", sorted(n for n in OURS if "LLMBUS_CONFIG" in OURS[n].environment))
def test_the_config_loads_with_the_service_environment(name: str) -> None:
    env = {k: _interpolate(v) for k, v in OURS[name].environment.items()}
    volume = next(v for v in OURS[name].volumes if v.endswith(":/etc/llmbus/config.yaml:ro"))
    source = _interpolate(volume).split(":")[0]
    assert env["LLMBUS_CONFIG"] == "/etc/llmbus/config.yaml"
    config = parse_config((ROOT / source).read_text(), source, env)
    assert config.providers


def test_references_resolve() -> None:
    for name, service in COMPOSE_FILE.services.items():
        for dependency in service.depends_on:
            assert dependency in COMPOSE_FILE.services, f"{name} depends on unknown {dependency}"
        for volume in service.volumes:
            source = _interpolate(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in COMPOSE_FILE.volumes, f"{name} mounts undeclared volume {source}"
    workers = {n: OURS[n].environment["LLMBUS_FAMILY"] for n in OURS if _module(OURS[n]) == "worker"}
    assert workers == {f"worker-{family}": family for family in FAMILIES}, "one worker deployment per family"
    assert OURS["auth"].environment["LLMBUS_REDIS_URL"].startswith("redis://redis:")


@pytest.mark.parametrize("family", FAMILIES)
def test_without_the_demo_env_providers_reach_the_real_services_once_keyed(family: str) -> None:
    unkeyed = _worker_providers(family, {})
    assert all(p.unroutable_reason for p in unkeyed.values()), "no key, no route: never a mock"
    keys = {
        "OPENAI_API_KEY": "sk-real",
        "CLAUDE_API_KEY": "sk-ant-real",
        "GEMINI_API_KEY": "real",
        "COPILOT_GITHUB_TOKEN": "gho_real",
        "KIRO_TOKEN_FILE": "/home/llmbus/.aws/sso/cache/kiro-auth-token.json",
    }
    keyed = _worker_providers(family, keys)
    routable = [p for p in keyed.values() if p.unroutable_reason is None]
    assert routable, f"a {family} key in the environment makes a routable provider"
    for provider in routable:
        assert "mock" not in provider.endpoint
        assert "127.0.0.1" not in provider.endpoint
        assert provider.endpoint == provider.spec.endpoint


def _demo_env() -> dict[str, str]:
    lines = (ROOT / "infra" / "demo.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {k: v for k, v in pairs}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_demo_env_points_every_family_at_the_mock_upstream(family: str) -> None:
    demo = _demo_env()
    assert demo["COMPOSE_PROFILES"] == "demo"
    providers = _worker_providers(family, demo)
    routable = [p for p in providers.values() if p.unroutable_reason is None]
    assert routable, f"the demo serves no {family} provider"
    for provider in routable:
        assert (provider.auth_endpoint or provider.endpoint).startswith("http://mock-upstream:8319")


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _has_compose(), reason="no docker compose client here")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--profile", "demo", "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- the closed bus ----------------------------------------------------------------------

NATS_CONF = ROOT / "infra" / "nats" / "nats.conf"
ROLE_OF = {"edge": "edge", "router": "router", "auth": "auth", "worker": "worker"}


def test_nats_conf_carries_the_users_the_subject_table_renders() -> None:
    rendered = authorization(service_users())
    assert NATS_CONF.read_text().endswith(rendered), (
        "infra/nats/nats.conf is out of date with the subject table; regenerate its users with\n"
        "  .venv/bin/python -c 'import llmbus.bus.access as a; "
        'print(a.authorization(a.service_users()), end="")\'\n'
        "and replace the `authorization` block at its end"
    )


@pytest.mark.parametrize("name", sorted(n for n in OURS if _module(OURS[n]) in ROLE_OF))
def test_every_service_connects_as_its_own_nats_user(name: str) -> None:
    env = OURS[name].environment
    user = env["LLMBUS_NATS_USER"]
    assert user == ROLE_OF[_module(OURS[name])]
    # A password compose insists on (`:?`), the one nats.conf expects for that user.
    assert env["LLMBUS_NATS_PASSWORD"].startswith("${" + password_variable(user) + ":?")
    assert password_variable(user) in COMPOSE_FILE.services["nats"].environment


def test_nothing_but_the_edge_listens_beyond_its_container() -> None:
    for name, service in OURS.items():
        host = _interpolate(service.environment.get("LLMBUS_METRICS_HOST", "127.0.0.1"))
        assert host == "127.0.0.1", f"{name}'s metrics need not leave the container"
    assert OURS["edge"].environment["LLMBUS_HOST"] == "0.0.0.0"


def test_the_demo_runs_in_development_mode_with_its_own_bus_passwords() -> None:
    demo = _demo_env()
    assert demo["LLMBUS_DEV"] == "1"
    for role in ("edge", "router", "worker", "auth"):
        assert demo[password_variable(role)]
