"""The Grafana dashboard's queries against a real Prometheus scraping the running gateway:
every service's `/metrics` is up, every query of infra/grafana/dashboards/llmbus.json
evaluates, and the requests a client made show in the series the dashboard reads.
Needs the `prometheus` binary (Debian: `apt-get install prometheus`); skipped without it."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
import yaml

from llmbus.testing import Stack
from llmbus.testing.processes import Process, free_port, wait_for_http

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra" / "grafana" / "dashboards" / "llmbus.json"
MODEL = "gpt-4o-mini"
_PROMETHEUS = shutil.which("prometheus")


def _scrape_config(stack: Stack) -> dict[str, Any]:
    jobs: dict[str, list[str]] = {}
    for name in stack.processes:
        if name.startswith("mock"):
            continue
        job = "worker" if name.startswith("worker") else name.split("-")[0]
        jobs.setdefault(job, []).append(urlsplit(stack.metrics_url(name)).netloc)
    return {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": targets}]}
            for job, targets in jobs.items()
        ],
    }


def _get(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    data = _get(base, "/api/v1/query", query=expr)
    result: list[dict[str, Any]] = data["result"]
    return result


def _until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def _expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    filled = {"$__rate_interval": "1m", "$model": ".*", "$provider": ".*"}
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in filled.items():
                expr = expr.replace(variable, value)
            exprs.append(expr)
    return exprs


@pytest.mark.skipif(
    _PROMETHEUS is None, reason="no prometheus binary here (Debian: apt-get install prometheus)"
)
async def test_the_dashboard_reads_what_the_gateway_exports(
    stack: Stack, client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    assert _PROMETHEUS is not None
    # A first streamed request makes the model's series; the ones below are then counted as
    # increases by rate() (a series born between two scrapes has no rate yet).
    warm = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "warm up"}], stream=True
    )
    async for _ in warm:
        pass
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_scrape_config(stack)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    prometheus = Process(
        "prometheus",
        [
            _PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log_path=tmp_path / "prometheus.log",
    ).start()
    try:
        wait_for_http(f"{base}/-/ready", process=prometheus)
        scraped = len(_scrape_config(stack)["scrape_configs"])
        assert scraped >= 4  # edge, router, auth, worker

        def all_up() -> list[dict[str, Any]]:
            targets = _get(base, "/api/v1/targets")["activeTargets"]
            ups = [t for t in targets if t["health"] == "up"]
            return targets if targets and len(ups) == len(targets) else []

        targets = _until(all_up)
        assert targets, f"targets not all up: {_get(base, '/api/v1/targets')['activeTargets']}"
        # Scraped before and after the requests, so that rate() sees them.
        assert _until(lambda: _query(base, "count_over_time(up[1m]) >= 2"))
        answer = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello there"}], stream=True
        )
        async for _ in stream:
            pass
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "x"}]
            )
        stranger = openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key="sk-nobody", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await stranger.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        await stranger.close()

        for expr in _expressions():
            _query(base, expr)  # evaluates: a bad query is a 400, which _get refuses

        def series(expr: str) -> list[dict[str, Any]]:
            return _until(lambda: _query(base, expr), timeout=10)  # type: ignore[no-any-return]

        assert series(f'llmbus_edge_requests_total{{model="{MODEL}", status="200"}} >= 2')
        assert series('llmbus_edge_requests_total{status="404"} >= 1')
        assert series(f'llmbus_edge_first_token_seconds_count{{model="{MODEL}"}} >= 1')
        assert series(f'llmbus_edge_request_seconds_count{{model="{MODEL}"}} >= 2')
        assert series('llmbus_router_requests_total{outcome="routed"} >= 2')
        assert series('sum by (provider) (llmbus_worker_requests_total{outcome="ok"}) >= 2')
        assert series('llmbus_worker_tokens_total{direction="out"} > 0')
        assert series('llmbus_auth_key_checks_total{result="invalid"} >= 1')
        assert series("llmbus_edge_requests_in_flight")
        # The dashboard's own time-to-first-token median, as its panel asks for it.
        [median] = [e for e in _expressions() if "0.5" in e and "llmbus_edge_first_token_seconds" in e]
        mine = median.replace('model=~".*"', f'model="{MODEL}"')
        quantile = _until(lambda: [r for r in _query(base, mine) if r["value"][1] != "NaN"], timeout=10)
        assert quantile, "the time-to-first-token panel has no line for the model"
        assert 0 < float(quantile[0]["value"][1]) < 60, quantile
    finally:
        prometheus.stop()
