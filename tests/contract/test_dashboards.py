"""The ops profile's Prometheus and Grafana files, checked without running either: every
metric the dashboard queries is one the services register (with the labels it groups
by), Prometheus scrapes every llmbus service of docker-compose.yml where its `/metrics`
listens, and the provisioning files are the YAML and JSON Grafana expects."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from llmbus.edge.routes.health import router as edge_health

from .test_compose import COMPOSE_FILE, OURS, _interpolate, _module

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "infra" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "infra" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "llmbus.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "llmbus.yml"

_METRIC = re.compile(r"\bllmbus_\w+")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _metric_modules() -> list[str]:
    """Every module of ours that registers a Prometheus metric."""
    modules = []
    for source in sorted(ROOT.glob("*/*/src/llmbus/**/*.py")):
        text = source.read_text()
        if "prometheus_client" not in text or not re.search(r"\b(?:Counter|Histogram|Gauge)\(", text):
            continue
        parts = source.relative_to(ROOT).with_suffix("").parts
        modules.append(".".join(parts[parts.index("src") + 1 :]))
    return modules


def _registered() -> dict[str, frozenset[str]]:
    """Series name (as exported, suffixes and all) -> the label names it carries."""
    for module in _metric_modules():
        importlib.import_module(module)
    series: dict[str, frozenset[str]] = {}
    for collector in list(REGISTRY._collector_to_names):
        if not isinstance(collector, MetricWrapperBase):
            continue  # the process and platform collectors
        labels: tuple[str, ...] = getattr(collector, "_labelnames", ())
        for family in collector.describe():
            if not family.name.startswith("llmbus_"):
                continue
            extra = {"le"} if family.type == "histogram" else set()
            for suffix in _SUFFIXES.get(family.type, ("",)):
                series[family.name + suffix] = frozenset(labels) | extra
    return series


REGISTERED = _registered()


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _expressions() -> list[str]:
    exprs = [t["expr"] for p in _panels() for t in p["targets"]]
    exprs += [v["query"]["query"] for v in _dashboard()["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_the_registry_is_read_from_the_services_themselves() -> None:
    # The lookup below is only as good as this list: the metrics named in the issue are in it.
    for name in (
        "llmbus_edge_requests_total",
        "llmbus_worker_requests_total",
        "llmbus_edge_first_token_seconds_bucket",
        "llmbus_worker_in_flight",
        "llmbus_router_requests_total",
        "llmbus_auth_key_checks_total",
        "llmbus_edge_limit_refusals_total",
    ):
        assert name in REGISTERED, name
    assert REGISTERED["llmbus_edge_requests_total"] == {"model", "status"}


@pytest.mark.parametrize("expr", _expressions())
def test_every_metric_the_dashboard_queries_is_exported(expr: str) -> None:
    names = _METRIC.findall(expr)
    assert names, f"a panel queries no llmbus metric: {expr}"
    for name in names:
        assert name in REGISTERED, f"{name} is exported by no service (queried by {expr})"
    # The labels it filters and groups by are labels of the metrics it reads.
    labels = frozenset().union(*(REGISTERED[n] for n in names))
    used = {m for m in _MATCHER.findall(expr)}
    for grouping in _GROUPING.findall(expr):
        used |= {label.strip() for label in grouping.split(",") if label.strip()}
    label_values = re.search(r"label_values\(\s*\w+\s*,\s*(\w+)\s*\)", expr)
    if label_values:
        used.add(label_values.group(1))
    assert used <= labels, f"{expr} uses labels {sorted(used - labels)} that {names} do not carry"


def test_the_dashboard_covers_what_an_operator_asks_first() -> None:
    queried = {n for e in _expressions() for n in _METRIC.findall(e)}
    for wanted in (
        "llmbus_edge_requests_total",  # rate and errors by model and status
        "llmbus_edge_request_seconds_bucket",  # latency quantiles
        "llmbus_edge_first_token_seconds_bucket",  # time to first token
        "llmbus_router_requests_total",  # routing outcomes
        "llmbus_worker_requests_total",  # upstream outcomes by provider
        "llmbus_worker_tokens_total",  # tokens
        "llmbus_edge_requests_in_flight",
        "llmbus_worker_in_flight",
        "llmbus_auth_cooldowns_total",
        "llmbus_edge_limit_refusals_total",
        "llmbus_auth_key_checks_total",
    ):
        assert wanted in queried, f"the dashboard shows nothing of {wanted}"


def test_the_dashboard_is_one_grafana_loads() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    for panel in _panels():
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert all(t["datasource"]["uid"] == datasource["uid"] for t in panel["targets"])
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    # Panels do not overlap.
    cells = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for expr in _expressions():
        assert set(re.findall(r"\$(\w+)", expr)) - {"__rate_interval"} <= variables, expr


def test_provisioning_points_at_what_compose_mounts() -> None:
    grafana = COMPOSE_FILE.services["grafana"]
    prometheus = COMPOSE_FILE.services["prometheus"]
    mounts = {
        (ROOT / v.split(":")[0]).resolve(): v.split(":")[1] for v in grafana.volumes if v.startswith("./")
    }
    assert mounts[(GRAFANA / "provisioning").resolve()] == "/etc/grafana/provisioning"
    dashboards_dir = mounts[(GRAFANA / "dashboards").resolve()]
    providers = yaml.safe_load(PROVIDERS.read_text())
    assert providers["apiVersion"] == 1
    assert [p["options"]["path"] for p in providers["providers"]] == [dashboards_dir]
    datasources = yaml.safe_load(DATASOURCES.read_text())
    assert datasources["apiVersion"] == 1
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus"
    port = next(p for p in prometheus.ports if p.endswith(":9090"))
    assert source["url"] == "http://prometheus:9090", port
    config_mount = next(v for v in prometheus.volumes if v.startswith("./infra/prometheus/"))
    assert (ROOT / config_mount.split(":")[0]).resolve() == PROMETHEUS.resolve()
    assert f"--config.file={config_mount.split(':')[1]}" in (prometheus.command or [])


def test_ops_images_are_pinned_and_ports_stay_local() -> None:
    for name in ("prometheus", "grafana"):
        service = COMPOSE_FILE.services[name]
        image, _, tag = service.image.partition(":")
        assert re.match(r"v?\d+\.\d+\.\d+$", tag), f"{name}: pin {image} to a release"
        assert service.profiles == ["ops"]
        for port in service.ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
    grafana = COMPOSE_FILE.services["grafana"].environment
    assert grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer", "anonymous visitors only read"
    assert grafana["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    assert grafana["GF_AUTH_BASIC_ENABLED"] == "false"


def _scraped() -> dict[str, set[tuple[str, int, str]]]:
    """Job -> the (host, port, path) it scrapes."""
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs: dict[str, set[tuple[str, int, str]]] = {}
    for job in config["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        targets = jobs.setdefault(job["job_name"], set())
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A", "compose replicas are A records"
            targets |= {(name, int(sd["port"]), path) for name in sd["names"]}
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port), path))
    return jobs


def _metrics_port(name: str) -> int:
    env = OURS[name].environment
    if _module(OURS[name]) == "edge":
        assert "/metrics" in {getattr(r, "path", None) for r in edge_health.routes}
        return int(env["LLMBUS_PORT"])
    return int(env["LLMBUS_METRICS_PORT"])


def test_prometheus_scrapes_every_service_where_its_metrics_listen() -> None:
    targets = {t for job in _scraped().values() for t in job}
    for host, _, _ in targets:
        assert host in OURS, f"Prometheus scrapes {host}, which is no llmbus service of docker-compose.yml"
    for name in OURS:
        if _module(OURS[name]) == "mock_upstream":
            continue  # the stand-in upstream exports nothing of ours
        assert (name, _metrics_port(name), "/metrics") in targets, f"Prometheus does not scrape {name}"


@pytest.mark.parametrize("name", sorted(n for n in OURS if "LLMBUS_METRICS_PORT" in OURS[n].environment))
def test_the_ops_setting_opens_each_metrics_port_to_the_compose_network(name: str) -> None:
    env = OURS[name].environment
    assert _interpolate(env.get("LLMBUS_METRICS_HOST", "127.0.0.1")) == "127.0.0.1", "loopback by default"
    opened = _interpolate(env.get("LLMBUS_METRICS_HOST", "127.0.0.1"), {"LLMBUS_METRICS_HOST": "0.0.0.0"})
    assert opened == "0.0.0.0", f"LLMBUS_METRICS_HOST=0.0.0.0 does not let Prometheus reach {name}"


_PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(_PROMTOOL is None, reason="no promtool here (Debian: apt-get install prometheus)")
def test_promtool_accepts_the_config_and_every_dashboard_query(tmp_path: Path) -> None:
    assert _PROMTOOL is not None
    config = subprocess.run(
        [_PROMTOOL, "check", "config", "--syntax-only", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    # Each query as a recording rule, Grafana's variables filled in as Grafana would.
    filled = {"$__rate_interval": "1m", "$model": ".*", "$provider": ".*"}
    rules = []
    for index, expr in enumerate(_expressions()):
        if expr.startswith("label_values("):
            continue  # Grafana's own function, not PromQL
        for variable, value in filled.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"llmbus:dashboard_query_{index}", "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [_PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(rules)} rules found" in checked.stdout
