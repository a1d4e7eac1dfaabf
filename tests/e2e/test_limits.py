"""Limits hold across replicas: two edges and two routers share one count in Redis.

A client key created with an RPM limit is hammered concurrently through both edges in
both client formats: exactly the limit is admitted, every other request gets a 429
with Retry-After in its own format. The same for a key's TPM (requests that hold their
reservation, so none is settled before the others ask), and for a provider's own
RPM and per-request token ceiling from the config."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmbus.testing import Stack, StackPorts, free_port

MANAGEMENT_KEY = "mk-limits-management"
CLIENT_KEY = "sk-limits-client"
CONFIG = """
api-keys:
  - key: sk-limits-client
    name: limits
management-key: mk-limits-management
providers:
  openai:
    endpoint: ${OPENAI_BASE_URL}
    api_keys: [sk-test-upstream]
    health_check: {enabled: false}
    models:
      - gpt-4o-mini
      - name: held
        upstream: slow-start
  capped:
    type: openai
    endpoint: ${OPENAI_BASE_URL}
    api_keys: [sk-test-upstream]
    health_check: {enabled: false}
    limits: {requests_per_minute: 4, max_tokens_per_request: 100}
    models:
      - name: capped-mini
        upstream: gpt-4o-mini
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Stack]:
    config = tmp_path_factory.mktemp("limits") / "config.yaml"
    config.write_text(CONFIG)
    ports = StackPorts.pick(prefer_defaults=False)
    stack = Stack(
        config=config,
        log_dir=logs_dir / "limits-stack",
        ports=ports,
        replicas=2,
        workers={"openai": 1},
        env={
            "LLMBUS_DEV": "1",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{ports.mock}",
            "LLMBUS_MOCK_SLOW_START_SECONDS": "1.5",
        },
    )
    stack.start()
    try:
        # A second edge: clients reach the gateway through both, as behind a balancer.
        stack.start_service("edge-2", "edge", {"LLMBUS_PORT": str(free_port()), "LLMBUS_HOST": "127.0.0.1"})
        stack.wait_ready("edge-2")
        yield stack
    finally:
        stack.stop()


def _edges(stack: Stack) -> list[str]:
    second = stack.processes["edge-2"].env["LLMBUS_PORT"]
    return [stack.base_url, f"http://127.0.0.1:{second}"]


async def _new_key(stack: Stack, **limits: int) -> str:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        response = await http.post(
            "/v1/keys", json={"name": "hammered", **limits}, headers={"x-management-key": MANAGEMENT_KEY}
        )
    assert response.status_code in (200, 201), response.text
    key: str = response.json()["key"]
    return key


async def _hammer(
    stack: Stack, key: str, count: int, model: str = "gpt-4o-mini", max_tokens: int = 16
) -> list[tuple[str, httpx.Response]]:
    """`count` requests at once, alternating edges and formats: (format, response)."""
    edges = _edges(stack)

    async def one(i: int, http: httpx.AsyncClient) -> tuple[str, httpx.Response]:
        base = edges[i % len(edges)]
        body = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]}
        if (i // 2) % 2 == 0:
            return "openai", await http.post(
                f"{base}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            )
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        return "anthropic", await http.post(f"{base}/v1/messages", json=body, headers=headers)

    async with httpx.AsyncClient(timeout=30) as http:
        return await asyncio.gather(*(one(i, http) for i in range(count)))


def _assert_refusals_are_429s_in_their_format(results: list[tuple[str, httpx.Response]]) -> None:
    formats = set()
    for dialect, response in results:
        if response.status_code == 200:
            continue
        assert response.status_code == 429, response.text
        assert int(response.headers["retry-after"]) >= 1
        body = response.json()
        if dialect == "anthropic":
            assert body["type"] == "error"
            assert body["error"]["type"] == "rate_limit_error"
        else:
            assert body["error"]["type"] == "rate_limit_error"
            assert body["error"]["code"] == "rate_limit_exceeded"
        formats.add(dialect)
    assert formats == {"openai", "anthropic"}, "both formats were refused"


async def test_a_keys_rpm_admits_exactly_the_limit_across_two_edges(stack: Stack) -> None:
    key = await _new_key(stack, rpm=6)
    results = await _hammer(stack, key, 24)
    assert sum(r.status_code == 200 for _, r in results) == 6
    _assert_refusals_are_429s_in_their_format(results)
    # 60 s / 6 requests: the next one is admitted 10 s after the burst.
    waits = {int(r.headers["retry-after"]) for _, r in results if r.status_code == 429}
    assert waits <= {10, 11}


async def test_a_keys_tpm_admits_what_the_estimates_fit(stack: Stack) -> None:
    # Each request reserves its prompt (about 4 tokens) and max_tokens (300); the held
    # model answers after 1.5 s, so no request settles before the others reserve.
    key = await _new_key(stack, tpm=1000)
    results = await _hammer(stack, key, 12, model="held", max_tokens=300)
    assert sum(r.status_code == 200 for _, r in results) == 3
    _assert_refusals_are_429s_in_their_format(results)
    assert "tokens per minute" in next(r for _, r in results if r.status_code == 429).text


async def test_a_providers_own_rpm_from_the_config_holds_across_routers(stack: Stack) -> None:
    results = await _hammer(stack, CLIENT_KEY, 12, model="capped-mini")
    assert sum(r.status_code == 200 for _, r in results) == 4
    _assert_refusals_are_429s_in_their_format(results)


async def test_more_max_tokens_than_a_provider_allows_is_a_400(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "capped-mini", "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "max_tokens_exceeded"
