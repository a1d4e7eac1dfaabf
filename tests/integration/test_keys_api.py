"""`/v1/keys` and the `llmbus keys` CLI against the edge app in-process, with the real auth
handlers over the in-memory bus and a real Redis; a fake router answers chat requests.

Keys are created, used with the openai SDK, counted, listed, revoked (refused at once),
limited to their models and max_tokens; the management API refuses wrong keys, locks a
source out after five, and answers only loopback clients unless the config allows more."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import httpx2
import openai
import pytest
from fastapi import FastAPI
from openai.types.chat import ChatCompletionMessageParam
from redis.asyncio import Redis

from llmbus.auth.handlers import AuthHandlers
from llmbus.auth.keys import KeyStore
from llmbus.auth.keys_handlers import KeyHandlers
from llmbus.auth.lockouts import LockoutStore
from llmbus.auth.runtime import RuntimeStore
from llmbus.auth.usage import UsageStore
from llmbus.auth.usage_handlers import UsageHandlers
from llmbus.bus import Delivery, Inbox
from llmbus.cli.main import main as cli
from llmbus.config import RemoteManagementConfig
from llmbus.edge.app import create_app
from llmbus.edge.context import EdgeContext
from llmbus.edge.keys import KeyCache
from llmbus.edge.management import ManagementKey
from llmbus.edge.registry import RegistryClient
from llmbus.edge.settings import EdgeSettings
from llmbus.edge.usage import UsageReporter
from llmbus.proto import (
    AUTH_KEY_VERIFY,
    EVENTS,
    ROUTE,
    USAGE_REQUESTS,
    ChatRequest,
    Delta,
    Done,
    Error,
    RequestRecord,
    RequestRecords,
    RouteRequest,
    Started,
    Usage,
    chat_codec,
)
from llmbus.telemetry import credential_ref
from llmbus.testing import InMemoryBus

MANAGEMENT_KEY = "mk-integration"
BROKEN_MODEL = "broken-model"
CONFIG_KEY = "sk-config-client-key"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@dataclass
class Gateway:
    app: FastAPI
    bus: InMemoryBus
    http: httpx2.AsyncClient
    management: ManagementKey
    usage: UsageReporter
    routed: list[ChatRequest] = field(default_factory=list)
    records: list[RequestRecord] = field(default_factory=list)

    async def counted(self) -> None:
        """Send the edge's usage records now (it sends them about once a second) and wait
        until auth's store has counted them."""
        await self.usage.flush()
        await self.bus.settle()

    def openai(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=key, base_url="http://edge/v1", max_retries=0, http_client=self.http
        )

    def from_address(self, host: str) -> httpx2.AsyncClient:
        transport = httpx2.ASGITransport(app=self.app, client=(host, 40000))
        return httpx2.AsyncClient(transport=transport, base_url="http://edge")

    async def create(self, **body: object) -> dict[str, object]:
        response = await self.http.post("/v1/keys", json=body, headers={"x-management-key": MANAGEMENT_KEY})
        assert response.status_code == 201, response.text
        created: dict[str, object] = response.json()
        return created


@pytest.fixture
async def gateway(redis_url: str) -> AsyncIterator[Gateway]:
    # Database 3: the end-to-end stack uses database 0, other tests 1 and 2.
    redis = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    await redis.flushdb()
    bus = InMemoryBus()
    auth_bus = bus.peer()
    keys = KeyStore(redis)
    await keys.sync_config_keys([(CONFIG_KEY, "e2e")])
    verify = AuthHandlers(auth_bus, keys, RuntimeStore(redis), set())
    await auth_bus.subscribe(AUTH_KEY_VERIFY, verify.verify_key, queue="auth")
    await KeyHandlers(auth_bus, keys, UsageStore(redis), LockoutStore(redis)).subscribe()
    router_bus = bus.peer()
    routed: list[ChatRequest] = []

    async def on_route(request: RouteRequest, _: Delivery) -> None:
        chat = chat_codec.decode(request.body)
        routed.append(chat)
        if chat.model == BROKEN_MODEL:
            failed = Error(
                seq=0, status=502, code="upstream_error", message="upstream said no", provider="mock"
            )
            await router_bus.publish_raw(request.reply, EVENTS.encode(failed))
            return
        for event in (
            Started(seq=0, provider="mock", model=chat.model + "-upstream", credential="c1", attempt=2),
            Delta(seq=1, text="hi"),
            Usage(seq=2, prompt_tokens=12, completion_tokens=3, cached_tokens=2, reasoning_tokens=1),
            Done(seq=3),
        ):
            await router_bus.publish_raw(request.reply, EVENTS.encode(event))

    await router_bus.subscribe(ROUTE, on_route)
    inbox = Inbox(bus)
    await inbox.start()
    management = ManagementKey(MANAGEMENT_KEY)
    keys_cache = KeyCache(bus, ttl=30)
    await keys_cache.start()
    usage = UsageReporter(bus)
    # The in-memory bus has no JetStream: the records reach auth's store straight from
    # the subject the usage stream captures (tests/integration/test_usage_stream.py
    # reads them through the real stream and its consumer).
    store = UsageStore(redis)
    await UsageHandlers(auth_bus, store).subscribe()
    records: list[RequestRecord] = []

    async def on_records(batch: RequestRecords, _: Delivery) -> None:
        for record in batch.records:
            records.append(record)
            await store.record([(len(records), record)])

    await auth_bus.subscribe(USAGE_REQUESTS, on_records)

    async def make_context(settings: EdgeSettings, _: AsyncExitStack) -> EdgeContext:
        return EdgeContext(
            settings=settings,
            bus=bus,
            inbox=inbox,
            keys=keys_cache,
            registry=RegistryClient(bus),
            management=management,
            usage=usage,
        )

    settings = EdgeSettings(accept_timeout=1, idle_timeout=1, request_timeout=5)
    app = create_app(settings, make_context)
    app.state.context = await make_context(settings, AsyncExitStack())
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://edge") as http:
        yield Gateway(app, bus, http, management, usage, routed, records)
    for peer in (bus, auth_bus, router_bus):
        await peer.drain()
    await redis.aclose()


async def test_a_created_key_serves_requests_and_its_usage_is_counted(gateway: Gateway) -> None:
    created = await gateway.create(name="ci", owner="team-a", rpm=60)
    assert isinstance(created["key"], str)
    assert created["key"].startswith("sk-llmbus-")
    assert created["limits"] == {"rpm": 60, "tpm": 0, "max_tokens": 0, "models": []}
    client = gateway.openai(created["key"])
    answer = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert answer.choices[0].message.content == "hi"
    await gateway.counted()
    usage = await gateway.http.get(
        f"/v1/keys/{created['id']}/usage", headers={"x-management-key": MANAGEMENT_KEY}
    )
    assert usage.status_code == 200
    document = usage.json()
    assert document["total"] == {"requests": 1, "input_tokens": 12, "output_tokens": 3}
    assert document["by_model"] == {"gpt-4o-mini": {"requests": 1, "input_tokens": 12, "output_tokens": 3}}
    assert len(document["by_day"]) == 1


async def test_each_request_leaves_one_record_with_its_request_id_trace_and_hashed_credential(
    gateway: Gateway,
) -> None:
    client = gateway.openai(CONFIG_KEY)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=USER,
        extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=BROKEN_MODEL, messages=USER, stream=True)
    assert failed.value.status_code == 502
    await gateway.counted()
    good, bad = gateway.records
    assert good.request_id == raw.headers["x-request-id"]
    assert good.trace_id == trace_id
    assert (good.provider, good.model, good.upstream_model) == ("mock", "gpt-4o-mini", "gpt-4o-mini-upstream")
    assert good.credential == credential_ref("c1") != "c1"
    assert (good.input_tokens, good.output_tokens, good.cached_tokens, good.reasoning_tokens) == (12, 3, 2, 1)
    assert (good.status, good.error, good.failovers, good.stream, good.api) == (200, "", 1, False, "openai")
    assert good.latency_ms > 0
    assert good.ttft_ms == 0
    assert (bad.status, bad.error, bad.provider, bad.model, bad.stream) == (
        502,
        "upstream_error",
        "mock",
        BROKEN_MODEL,
        True,
    )
    assert bad.request_id != good.request_id


async def test_a_request_the_key_s_limits_refuse_is_recorded_too(gateway: Gateway) -> None:
    created = await gateway.create(name="narrow", models=["gpt-*"])
    client = gateway.openai(str(created["key"]))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.chat.completions.create(model="claude-sonnet", messages=USER)
    await gateway.counted()
    (record,) = gateway.records
    assert record.request_id == refused.value.response.headers["x-request-id"]
    assert (record.key_id, record.model, record.status, record.provider) == (
        created["id"],
        "claude-sonnet",
        403,
        "",
    )
    assert record.error == refused.value.body["code"]  # type: ignore[index]
    assert gateway.routed == []


async def test_the_usage_api_shows_requests_and_errors_per_day_by_each_dimension(gateway: Gateway) -> None:
    client = gateway.openai(CONFIG_KEY)
    await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model=BROKEN_MODEL, messages=USER)
    await gateway.counted()
    manager = {"x-management-key": MANAGEMENT_KEY}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    by_model = await gateway.http.get("/v1/usage", params={"by": "model", "days": "1"}, headers=manager)
    assert by_model.status_code == 200, by_model.text
    assert by_model.json() == {
        "object": "usage",
        "by": "model",
        "days": 1,
        "data": [
            {
                "day": today,
                "group": BROKEN_MODEL,
                "requests": 1,
                "errors": 1,
                "input_tokens": 0,
                "output_tokens": 0,
                "cached_tokens": 0,
                "reasoning_tokens": 0,
            },
            {
                "day": today,
                "group": "gpt-4o-mini",
                "requests": 1,
                "errors": 0,
                "input_tokens": 12,
                "output_tokens": 3,
                "cached_tokens": 2,
                "reasoning_tokens": 1,
            },
        ],
    }
    groups = {}
    for by in ("key", "provider", "credential"):
        response = await gateway.http.get("/v1/usage", params={"by": by}, headers=manager)
        assert response.status_code == 200, response.text
        groups[by] = {row["group"]: (row["requests"], row["errors"]) for row in response.json()["data"]}
    key_id = gateway.records[0].key_id
    assert groups["key"] == {key_id: (2, 1)}
    assert groups["provider"] == {"mock": (2, 1)}
    assert groups["credential"] == {credential_ref("c1"): (1, 0), "": (1, 1)}


@pytest.mark.parametrize(
    ("query", "param"),
    [("by=tenant", "by"), ("days=0", "days"), ("days=abc", "days"), ("days=-3", "days"), ("days=91", "days")],
)
async def test_the_usage_api_refuses_a_bad_query_with_an_openai_error(
    gateway: Gateway, query: str, param: str
) -> None:
    response = await gateway.http.get(f"/v1/usage?{query}", headers={"x-management-key": MANAGEMENT_KEY})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == f"invalid_{param}"
    assert f"`{param}`" in error["message"]


async def test_the_usage_api_needs_the_management_key(gateway: Gateway) -> None:
    response = await gateway.http.get("/v1/usage", headers={"x-management-key": "wrong"})
    assert response.status_code == 403
    assert set(response.json()) == {"error"}


async def test_the_list_shows_ids_and_prefixes_never_a_key(gateway: Gateway) -> None:
    created = await gateway.create(name="listed")
    response = await gateway.http.get("/v1/keys", headers={"x-management-key": MANAGEMENT_KEY})
    assert response.status_code == 200
    by_name = {key["name"]: key for key in response.json()["data"]}
    assert by_name["listed"]["id"] == created["id"]
    assert by_name["listed"]["prefix"] == created["prefix"]
    assert by_name["e2e"]["source"] == "config"
    assert str(created["key"]) not in response.text
    assert CONFIG_KEY not in response.text


async def test_a_revoked_key_is_refused_at_once_although_the_edge_had_cached_it(gateway: Gateway) -> None:
    created = await gateway.create()
    client = gateway.openai(str(created["key"]))
    await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    response = await gateway.http.delete(
        f"/v1/keys/{created['id']}", headers={"x-management-key": MANAGEMENT_KEY}
    )
    assert response.status_code == 200
    assert response.json()["revoked"] is True
    await gateway.bus.settle()
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=USER)


async def test_revoking_a_config_key_is_409_saying_where_it_comes_from(gateway: Gateway) -> None:
    listing = await gateway.http.get("/v1/keys", headers={"x-management-key": MANAGEMENT_KEY})
    config_id = next(k["id"] for k in listing.json()["data"] if k["source"] == "config")
    response = await gateway.http.delete(
        f"/v1/keys/{config_id}", headers={"x-management-key": MANAGEMENT_KEY}
    )
    assert response.status_code == 409
    assert "config file" in response.json()["error"]["message"]


async def test_a_key_may_use_only_its_models(gateway: Gateway) -> None:
    created = await gateway.create(models=["gpt-4o*"])
    client = gateway.openai(str(created["key"]))
    await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await client.chat.completions.create(model="claude-sonnet", messages=USER)
    assert "claude-sonnet" in caught.value.message
    assert [chat.model for chat in gateway.routed] == ["gpt-4o-mini"]


async def test_a_key_caps_max_tokens_and_refuses_more(gateway: Gateway) -> None:
    created = await gateway.create(max_tokens=64)
    client = gateway.openai(str(created["key"]))
    await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=USER, max_tokens=65)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "max_tokens"
    assert [chat.max_tokens for chat in gateway.routed] == [64]


async def test_bad_key_requests_are_400(gateway: Gateway) -> None:
    headers = {"x-management-key": MANAGEMENT_KEY}
    for body in ({"rpm": -1}, {"expires_at": 1.0}, {"expires_in": 60, "expires_at": 4e9}, {"colour": "red"}):
        response = await gateway.http.post("/v1/keys", json=body, headers=headers)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request_error"


async def test_management_calls_need_the_key(gateway: Gateway) -> None:
    missing = await gateway.http.get("/v1/keys")
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_management_key")
    wrong = await gateway.http.get("/v1/keys", headers={"x-management-key": "mk-wrong"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "invalid_management_key")
    client_key = await gateway.http.get("/v1/keys", headers={"Authorization": f"Bearer {CONFIG_KEY}"})
    assert client_key.status_code == 403


async def test_five_wrong_keys_lock_the_source_out_even_with_the_right_key(gateway: Gateway) -> None:
    async with gateway.from_address("198.51.100.20") as attacker, gateway.from_address("127.0.0.1") as local:
        gateway.management.set(MANAGEMENT_KEY, RemoteManagementConfig(allow_remote=True))
        statuses = [
            (await attacker.get("/v1/keys", headers={"x-management-key": "mk-guess"})).status_code
            for _ in range(5)
        ]
        assert statuses == [403, 403, 403, 403, 429]
        locked = await attacker.get("/v1/keys", headers={"x-management-key": MANAGEMENT_KEY})
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "management_locked_out"
        assert 1790 <= int(locked.headers["retry-after"]) <= 1800
        assert MANAGEMENT_KEY not in locked.text
        other = await local.get("/v1/keys", headers={"x-management-key": MANAGEMENT_KEY})
        assert other.status_code == 200


async def test_the_management_api_answers_only_loopback_unless_configured(gateway: Gateway) -> None:
    headers = {"x-management-key": MANAGEMENT_KEY}
    async with gateway.from_address("10.1.2.3") as office, gateway.from_address("::1") as local:
        refused = await office.get("/v1/keys", headers=headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "management_not_local")
        assert (await local.get("/v1/keys", headers=headers)).status_code == 200
        gateway.management.set(
            MANAGEMENT_KEY, RemoteManagementConfig(allow_remote=True, allowed_cidrs=["10.0.0.0/8"])
        )
        assert (await office.get("/v1/keys", headers=headers)).status_code == 200
        async with gateway.from_address("192.0.2.7") as elsewhere:
            assert (await elsewhere.get("/v1/keys", headers=headers)).status_code == 403


# --- the CLI -------------------------------------------------------------------------------


class _AppTransport(httpx2.BaseTransport):
    """The CLI's synchronous client, run in a thread, answered by the in-process app on
    the test's event loop."""

    def __init__(self, http: httpx2.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self._http = http
        self._loop = loop

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        async def send() -> httpx2.Response:
            answer = await self._http.request(
                request.method, str(request.url), headers=dict(request.headers), content=request.read()
            )
            return httpx2.Response(answer.status_code, content=answer.content)

        return asyncio.run_coroutine_threadsafe(send(), self._loop).result(timeout=10)


async def _cli(gateway: Gateway, *argv: str) -> int:
    transport = _AppTransport(gateway.http, asyncio.get_running_loop())
    args = ["--url", "http://edge", "--management-key", MANAGEMENT_KEY, *argv]
    return await asyncio.to_thread(cli, args, transport)


async def test_the_cli_creates_lists_shows_usage_and_revokes_a_key(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _cli(gateway, "keys", "create", "--name", "cli", "--rpm", "5", "--model", "gpt-*") == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line)
    key, key_id = lines["key"].strip(), lines["id"].strip()
    assert key.startswith("sk-llmbus-")
    client = gateway.openai(key)
    await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    await gateway.counted()

    assert await _cli(gateway, "keys", "list") == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["ID", "PREFIX", "NAME", "OWNER", "LIMITS", "EXPIRES", "REVOKED"]
    row = next(line for line in table.splitlines() if line.startswith(key_id))
    assert "rpm=5 models=gpt-*" in row
    assert key not in table

    assert await _cli(gateway, "keys", "usage", key_id, "--days", "7") == 0
    usage = capsys.readouterr().out
    assert "1 requests, 12 input tokens, 3 output tokens" in usage
    assert "gpt-4o-mini" in usage

    assert await _cli(gateway, "keys", "revoke", key_id) == 0
    assert f"revoked {key_id}" in capsys.readouterr().out
    assert await _cli(gateway, "keys", "revoke", "key_missing") == 1
    assert "404" in capsys.readouterr().err
