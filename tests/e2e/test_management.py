"""The provider management API of the spec, end to end: registry, models with aliases,
prefixes and exclusions, capabilities, status with health checks and cooldowns, metrics
across replicas, switches that every router applies, config reload."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from llmbus.providers import BUILTIN
from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY, MANAGEMENT_KEY

pytestmark = pytest.mark.e2e

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
SERVICES = ("router", "router-2", "worker-openai", "worker-openai-2", "edge", "auth")


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=10
    ) as client:
        yield client


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> float:
    """Seconds until `check()` holds; fails after `timeout`."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def test_every_builtin_provider_is_registered_with_its_metadata(http: httpx.AsyncClient) -> None:
    listing = (await http.get("/v1/providers")).json()
    by_id = {p["id"]: p for p in listing["data"]}
    assert set(BUILTIN) <= set(by_id)
    assert len(BUILTIN) == 16
    mistral = by_id["mistral"]
    assert mistral["kind"] == "direct"
    assert mistral["auth_type"] == "api_key"
    assert mistral["endpoint"] == "https://api.mistral.ai/v1"
    assert mistral["routable"] is False
    assert "no credentials" in mistral["reason"]
    assert by_id["claude"]["kind"] == "direct"
    assert by_id["claude"]["routable"] is True
    assert by_id["openrouter"]["kind"] == "aggregator"
    assert by_id["copilot"]["kind"] == "proprietary"
    assert by_id["copilot"]["auth_type"] == "oauth_device_flow"
    assert by_id["copilot"]["routable"] is True
    assert by_id["kiro"]["auth_type"] == "token_file"
    assert by_id["kiro"]["routable"] is True
    assert by_id["openai"]["routable"] is True
    assert by_id["local"]["kind"] == "custom"
    assert by_id["local"]["prefix"] == "loc"


async def test_provider_details_models_and_capabilities(http: httpx.AsyncClient) -> None:
    detail = (await http.get("/v1/providers/claude")).json()
    names = {m["id"]: m for m in detail["model_list"]}
    assert names["claude-3-5-sonnet"]["max_tokens"] == 200_000
    assert names["claude-3-5-sonnet"]["upstream"] == "claude-3-5-sonnet-20241022"
    models = (await http.get("/v1/providers/openai/models")).json()
    mini = next(m for m in models["data"] if m["id"] == "gpt-4o-mini")
    assert mini["aliases"] == ["mini"]
    caps = (await http.get("/v1/providers/gemini/capabilities")).json()
    assert caps == {
        "provider": "gemini",
        "streaming": True,
        "functions": True,
        "vision": True,
        "code_generation": False,
        "multimodal": True,
        "embeddings": True,  # gemini-embedding-001 is listed
        "max_tokens": 1_000_000,
    }
    missing = await http.get("/v1/providers/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "provider_not_found"


async def test_reads_need_a_client_key(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as anonymous:
        assert (await anonymous.get("/v1/providers")).status_code == 401
        assert (await anonymous.get("/v1/metrics/providers")).status_code == 401


async def test_models_list_names_aliases_and_prefixes_and_hides_exclusions(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    ids = {m.id async for m in client.models.list()}
    assert {"gpt-4o-mini", "mini", "openai/gpt-4o-mini", "openai/mini"} <= ids
    assert {"loc/compat-mini", "local/compat-mini"} <= ids
    assert "compat-mini" not in ids, "force-model-prefix keeps prefixed providers behind their prefix"
    assert "gpt-4o-secret" not in ids
    assert "internal-beta" not in ids
    assert "mistral-large-latest" not in ids, "no credentials, not routable"
    only_spare = (await http.get("/v1/models", params={"provider": "spare"})).json()
    assert {m["id"] for m in only_spare["data"]} == {"spare-model", "spare/spare-model"}
    model = await client.models.retrieve("mini")
    assert model.id == "mini"
    assert (await http.get("/v1/models/mini")).json()["canonical"] == "gpt-4o-mini"


@pytest.mark.parametrize("model", ["mini", "loc/compat-mini", "local/compat-mini", "openai/gpt-4o-mini"])
async def test_aliases_and_prefixes_route(client: openai.AsyncOpenAI, model: str) -> None:
    completion = await client.chat.completions.create(model=model, messages=USER)
    assert completion.model == model
    assert "hello" in (completion.choices[0].message.content or "")


@pytest.mark.parametrize("model", ["gpt-4o-secret", "internal-beta", "compat-mini"])
async def test_excluded_and_unprefixed_names_are_404(client: openai.AsyncOpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model=model, messages=USER)


async def test_capability_filter_refuses_tools_for_a_model_without_them(client: openai.AsyncOpenAI) -> None:
    tools: list[ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="no-tools", messages=USER, tools=tools)
    assert "tools" in caught.value.message
    plain = await client.chat.completions.create(model="no-tools", messages=USER)
    assert plain.choices[0].message.content


async def test_capabilities_query(http: httpx.AsyncClient) -> None:
    streaming = (
        await http.get("/v1/capabilities", params={"model": "gpt-4o-mini", "feature": "streaming"})
    ).json()
    assert streaming["supported"] is True
    tools = (await http.get("/v1/capabilities", params={"model": "no-tools", "feature": "functions"})).json()
    assert tools["supported"] is False
    everything = (await http.get("/v1/capabilities", params={"model": "gpt-4o-mini"})).json()
    assert everything["features"]["vision"] is True
    assert (
        await http.get("/v1/capabilities", params={"model": "gpt-4o-mini", "feature": "x"})
    ).status_code == 400
    assert (await http.get("/v1/capabilities", params={"model": "nope"})).status_code == 404
    assert (await http.get("/v1/capabilities")).status_code == 400


async def _provider(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await http.get(f"/v1/providers/{name}")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_switching_a_provider_off_reaches_every_router_within_a_second(
    stack: Stack, http: httpx.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    manage = {"Authorization": f"Bearer {MANAGEMENT_KEY}"}
    off = await http.put("/v1/providers/spare/enabled", json={"enabled": False}, headers=manage)
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False
    try:

        async def is_off() -> bool:
            # Registry queries go to any router of the queue group: ask several times.
            answers = [(await _provider(http, "spare"))["enabled"] for _ in range(6)]
            return not any(answers)

        assert await _eventually(is_off) < 1.0
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="spare-model", messages=USER)
        assert caught.value.status_code == 503
        assert "disabled" in caught.value.message
        ids = {m.id async for m in client.models.list()}
        assert "spare-model" not in ids
    finally:
        on = await http.put("/v1/providers/spare/enabled", json={"enabled": True}, headers=manage)
        assert on.status_code == 200

    async def is_on() -> bool:
        return (await _provider(http, "spare"))["enabled"] is True

    await _eventually(is_on)
    completion = await client.chat.completions.create(model="spare-model", messages=USER)
    assert completion.choices[0].message.content


async def test_switches_need_the_management_key(http: httpx.AsyncClient) -> None:
    with_client_key = await http.put("/v1/providers/spare/enabled", json={"enabled": False})
    assert with_client_key.status_code == 403
    bad_body = await http.put(
        "/v1/providers/spare/enabled", json={"on": 1}, headers={"x-management-key": MANAGEMENT_KEY}
    )
    assert bad_body.status_code == 400
    unknown = await http.put(
        "/v1/providers/nobody/enabled", json={"enabled": False}, headers={"x-management-key": MANAGEMENT_KEY}
    )
    assert unknown.status_code == 404
    assert (await _provider(http, "spare"))["enabled"] is True


async def test_status_shows_health_checks(http: httpx.AsyncClient) -> None:
    async def checked() -> bool:
        statuses = [(await http.get(f"/v1/providers/{n}/status")).json() for n in ("openai", "broken")]
        return all(s["health"] is not None for s in statuses)

    await _eventually(checked, timeout=10)
    openai_status = (await http.get("/v1/providers/openai/status")).json()
    assert openai_status["health"]["ok"] is True
    assert openai_status["workers"] == 2
    assert openai_status["credentials"] == [{"name": "key-1", "type": "api_key", "state": "ready"}]
    broken = (await http.get("/v1/providers/broken/status")).json()
    assert broken["health"]["ok"] is False
    assert broken["health"]["error"]
    orphan = (await http.get("/v1/providers/orphan/status")).json()
    assert orphan["workers"] == 0


async def test_a_rate_limited_credential_cools_down_for_every_router(
    http: httpx.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    completion = await client.chat.completions.create(model="resilient", messages=USER)
    assert completion.choices[0].message.content
    status = (await http.get("/v1/providers/flaky/status")).json()
    assert status["credentials"][0]["state"] == "cooling_down"
    assert status["cooldowns"][0]["reason"] == "rate limited upstream"
    assert 0 < status["cooldowns"][0]["remaining_s"] <= 5


async def test_metrics_add_up_requests_errors_latency_and_tokens(
    http: httpx.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    for _ in range(3):
        await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model="fail-500", messages=USER)

    async def counted() -> bool:
        data = (await http.get("/v1/metrics/providers", params={"provider": "openai"})).json()["data"]
        return bool(data) and data[0]["requests"] >= 4 and data[0]["errors"].get("upstream", 0) >= 1

    await _eventually(counted)
    openai_metrics = (await http.get("/v1/metrics/providers")).json()
    entry = next(p for p in openai_metrics["data"] if p["provider"] == "openai")
    assert entry["latency_ms"]["p50"] is not None
    assert entry["latency_ms"]["p50"] <= entry["latency_ms"]["p95"] <= entry["latency_ms"]["p99"]
    assert entry["time_to_first_token_ms"]["p50"] is not None
    assert entry["tokens"]["in"] > 0
    assert entry["tokens"]["out"] > 0
    assert 0 < entry["error_rate"] < 1


@pytest.mark.parametrize("service", ["edge", "router", "auth", "worker-openai"])
async def test_every_service_serves_prometheus_metrics(stack: Stack, service: str) -> None:
    async with httpx.AsyncClient() as plain:
        response = await plain.get(stack.metrics_url(service))
    assert response.status_code == 200
    assert "# TYPE" in response.text
    assert "llmbus_" in response.text


async def test_config_reload_applies_a_good_file_and_refuses_a_bad_one(
    stack: Stack, client: openai.AsyncOpenAI, config_file: Path
) -> None:
    original = _read(config_file)
    added = original.replace(
        "      - name: no-tools\n",
        "      - name: hot-model\n        upstream: gpt-4o-mini\n      - name: no-tools\n",
    )
    assert added != original

    async def served() -> bool:
        return "hot-model" in {m.id async for m in client.models.list()}

    try:
        # A stream in flight across the reload runs to its end.
        stream = await client.chat.completions.create(model="slow", messages=USER, stream=True)
        first = await stream.__anext__()
        _write(config_file, added)
        for name in SERVICES:
            stack.processes[name].signal(signal.SIGHUP)
        await _eventually(served, timeout=5)
        rest = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
        assert text == "Mock answer to: hello"
        completion = await client.chat.completions.create(model="hot-model", messages=USER)
        assert completion.choices[0].message.content

        _write(config_file, added + "\nproviders: [this is not a mapping]\n")
        for name in ("router", "router-2", "worker-openai", "worker-openai-2"):
            stack.processes[name].signal(signal.SIGHUP)

        async def refused() -> bool:
            return "config reload refused" in stack.processes["router"].log_text()

        await _eventually(refused, timeout=5)
        assert "providers: expected a mapping" in stack.processes["router"].log_text()
        assert await served(), "the previous configuration stays in force"
        completion = await client.chat.completions.create(model="hot-model", messages=USER)
        assert completion.choices[0].message.content
    finally:
        _write(config_file, original)
        for name in SERVICES:
            stack.processes[name].signal(signal.SIGHUP)
        await _eventually(lambda: _not(served), timeout=5)


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, text: str) -> None:
    path.write_text(text)


async def _not(check: Callable[[], Awaitable[bool]]) -> bool:
    return not await check()
