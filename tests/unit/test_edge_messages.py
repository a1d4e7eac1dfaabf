"""The edge's `/v1/messages` routes over the in-memory bus twin, driven by the official
`anthropic` SDK: what reaches the bus, streams and whole answers, and every error in
Anthropic's format with its status. The chat route shares the relay, so it is checked
alongside with the `openai` SDK. No sockets: auth, router and worker are fakes on the bus."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, cast

import anthropic
import httpx2
import openai
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY, generate_latest
from starlette.types import Message, Send

from llmbus.api import NotFound, openai_error_body
from llmbus.bus import Delivery, Inbox
from llmbus.edge import calls
from llmbus.edge.app import create_app
from llmbus.edge.context import EdgeContext
from llmbus.edge.keys import KeyCache
from llmbus.edge.management import ManagementKey
from llmbus.edge.registry import RegistryClient
from llmbus.edge.server import CONNECTION_KEY, Connection
from llmbus.edge.settings import EdgeSettings
from llmbus.edge.usage import UsageReporter
from llmbus.proto import (
    AUTH_KEY_VERIFY,
    CONTROL_REGISTRY,
    EVENTS,
    ROUTE,
    AnyEvent,
    ChatRequest,
    Client,
    Delta,
    Done,
    Error,
    KeyVerifyReply,
    KeyVerifyRequest,
    RegistryQuery,
    RegistryReply,
    RouteRequest,
    Started,
    ToolCallDelta,
    Usage,
    chat_codec,
    frames_message,
)
from llmbus.testing import InMemoryBus

KEY = "sk-edge-test"
USER: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hello"}]
MODELS = {"claude-x", "tools", "rate-limited", "breaks"}


def script(model: str) -> list[AnyEvent]:
    """What the fake router and worker answer, by model."""
    started = Started(seq=0, provider="mock", model=model, credential="c1")
    match model:
        case "tools":
            calls = [
                ToolCallDelta(index=0, id="call_a", name="weather", arguments='{"city":"Paris"}'),
                ToolCallDelta(index=1, id="call_b", name="time", arguments="{}"),
            ]
            return [started, Delta(seq=1, tool_calls=calls), Done(seq=2, finish_reason="tool_calls")]
        case "rate-limited":
            return [Error(seq=0, status=429, code="rate_limited", message="slow down", retry_after=5)]
        case "breaks":
            return [
                started,
                Delta(seq=1, text="half"),
                Error(seq=2, status=502, code="upstream", message="gone"),
            ]
        case "claude-x":
            return [
                started,
                Delta(seq=1, text="Hello"),
                Delta(seq=2, text=" there"),
                Usage(seq=3, prompt_tokens=12, completion_tokens=2, cached_tokens=4),
                Done(seq=4),
            ]
    error = NotFound(f"The model `{model}` does not exist or you do not have access to it.")
    return [Error(seq=0, status=404, code="model_not_found", message=error.message)]


@dataclass
class Upstream:
    """Auth, router and worker as the edge sees them on the bus."""

    bus: InMemoryBus
    requests: list[ChatRequest] = field(default_factory=list)

    async def on_verify(self, request: KeyVerifyRequest, delivery: Delivery) -> None:
        valid = request.key_hash == hashlib.sha256(KEY.encode()).hexdigest()
        reply = KeyVerifyReply(valid=valid, client=Client(id="k1", name="test") if valid else None)
        await self.bus.respond(delivery, AUTH_KEY_VERIFY, reply)

    async def on_route(self, request: RouteRequest, _: Delivery) -> None:
        chat = chat_codec.decode(request.body)
        self.requests.append(chat)
        frames = [EVENTS.encode(event) for event in script(chat.model)]
        if chat.stream:
            for frame in frames:
                await self.bus.publish_raw(request.reply, frame)
        else:  # a whole answer in one message, as a worker sends it
            await self.bus.publish_raw(request.reply, frames_message(frames))

    async def on_query(self, query: RegistryQuery, delivery: Delivery) -> None:
        if query.name in MODELS:
            reply = RegistryReply(body=json.dumps({"id": query.name}).encode())
        else:
            reply = RegistryReply(status=404, body=openai_error_body(NotFound("no such model")))
        await self.bus.respond(delivery, CONTROL_REGISTRY, reply)


@dataclass
class Edge:
    app: FastAPI
    upstream: Upstream
    http: httpx2.AsyncClient


@pytest.fixture
async def edge() -> AsyncIterator[Edge]:
    bus = InMemoryBus()
    upstream = Upstream(bus.peer())
    await upstream.bus.subscribe(AUTH_KEY_VERIFY, upstream.on_verify)
    await upstream.bus.subscribe(ROUTE, upstream.on_route)
    await upstream.bus.subscribe(CONTROL_REGISTRY, upstream.on_query)
    settings = EdgeSettings(accept_timeout=1, idle_timeout=1, request_timeout=5, max_body_bytes=10_000)
    inbox = Inbox(bus)
    await inbox.start()

    async def make_context(settings: EdgeSettings, _: AsyncExitStack) -> EdgeContext:
        return EdgeContext(
            settings=settings,
            bus=bus,
            inbox=inbox,
            keys=KeyCache(bus, ttl=30),
            registry=RegistryClient(bus),
            management=ManagementKey(),
            usage=UsageReporter(bus),
        )

    app = create_app(settings, make_context)
    # ASGITransport runs no lifespan: the context is set as the lifespan would set it.
    app.state.context = await make_context(settings, AsyncExitStack())
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://edge") as http:
        yield Edge(app, upstream, http)
    await bus.drain()


@pytest.fixture
def client(edge: Edge) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=KEY, base_url="http://edge", max_retries=0, http_client=edge.http)


async def test_a_whole_message_comes_back_in_anthropic_format(
    client: anthropic.AsyncAnthropic, edge: Edge
) -> None:
    message = await client.messages.create(
        model="claude-x", max_tokens=32, system="be brief", messages=USER, stop_sequences=["END"]
    )
    assert message.id.startswith("msg_")
    assert message.model == "claude-x"
    assert [block.to_dict() for block in message.content] == [{"type": "text", "text": "Hello there"}]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (8, 4)
    assert message.usage.output_tokens == 2
    sent = edge.upstream.requests[0]
    assert [m.role for m in sent.messages] == ["system", "user"]
    assert (sent.max_tokens, sent.stop, sent.stream) == (32, ["END"], False)


async def test_a_stream_is_accumulated_by_the_sdk(client: anthropic.AsyncAnthropic, edge: Edge) -> None:
    async with client.messages.stream(model="claude-x", max_tokens=32, messages=USER) as stream:
        texts = [text async for text in stream.text_stream]
        message = await stream.get_final_message()
    assert texts == ["Hello", " there"]
    assert message.content[0].to_dict() == {"type": "text", "text": "Hello there"}
    assert message.usage.input_tokens == 8
    assert edge.upstream.requests[0].include_usage


async def test_parallel_tool_calls_stream_as_tool_use_blocks(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(model="tools", max_tokens=32, messages=USER) as stream:
        message = await stream.get_final_message()
    assert [block.to_dict() for block in message.content] == [
        {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "time", "input": {}},
    ]
    assert message.stop_reason == "tool_use"


async def test_anthropic_version_and_beta_headers_are_accepted(edge: Edge) -> None:
    response = await edge.http.post(
        "/v1/messages?beta=true",
        json={"model": "claude-x", "max_tokens": 8, "messages": USER},
        headers={
            "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "prompt-caching-2024-07-31",
        },
    )
    assert response.status_code == 200
    assert response.json()["type"] == "message"


async def test_a_failure_mid_stream_ends_with_an_error_event(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(model="breaks", max_tokens=32, messages=USER) as stream:
            await stream.get_final_message()
    assert caught.value.body == {"type": "error", "error": {"type": "api_error", "message": "gone"}}


async def test_a_missing_key_is_401_in_anthropic_format(edge: Edge) -> None:
    response = await edge.http.post(
        "/v1/messages", json={"model": "claude-x", "max_tokens": 8, "messages": USER}
    )
    assert response.status_code == 401
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "authentication_error"


async def test_a_wrong_key_raises_the_sdks_authentication_error(edge: Edge) -> None:
    bad = anthropic.AsyncAnthropic(
        api_key="sk-wrong", base_url="http://edge", max_retries=0, http_client=edge.http
    )
    with pytest.raises(anthropic.AuthenticationError):
        await bad.messages.create(model="claude-x", max_tokens=8, messages=USER)


async def test_an_unknown_model_is_404_not_found_error(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.messages.create(model="no-such-model", max_tokens=8, messages=USER)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in caught.value.message


async def test_a_rate_limit_is_429_with_retry_after(edge: Edge) -> None:
    response = await edge.http.post(
        "/v1/messages",
        json={"model": "rate-limited", "max_tokens": 8, "messages": USER},
        headers={"x-api-key": KEY},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "5"
    assert response.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}


async def test_an_invalid_body_is_400_naming_the_field(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(model="claude-x", max_tokens=0, messages=USER)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in caught.value.body["error"]["message"]


async def test_a_body_over_the_limit_is_413_request_too_large(edge: Edge) -> None:
    body = {"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "x" * 20_000}]}
    response = await edge.http.post("/v1/messages", json=body, headers={"x-api-key": KEY})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


async def test_an_unknown_path_under_messages_answers_in_anthropic_format(edge: Edge) -> None:
    response = await edge.http.post("/v1/messages/batches", json={}, headers={"x-api-key": KEY})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


async def test_count_tokens_answers_an_estimate(client: anthropic.AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(
        model="claude-x", messages=[{"role": "user", "content": "x" * 40}]
    )
    assert counted.input_tokens == 13  # 40 ASCII characters / 4, plus the message's framing


async def test_count_tokens_refuses_an_unknown_model_and_a_bad_body(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.count_tokens(model="no-such-model", messages=USER)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.count_tokens(model="claude-x", messages=[])
    assert "messages" in caught.value.message


async def test_chat_completions_still_answer_in_openai_format(edge: Edge) -> None:
    async with openai.AsyncOpenAI(
        api_key=KEY, base_url="http://edge/v1", max_retries=0, http_client=edge.http
    ) as chat:
        stream = await chat.chat.completions.create(
            model="claude-x",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        with pytest.raises(openai.RateLimitError) as caught:
            await chat.chat.completions.create(
                model="rate-limited", messages=[{"role": "user", "content": "hi"}]
            )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 12
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "rate_limit_error"


async def test_a_model_no_provider_serves_never_becomes_a_metrics_label(
    client: anthropic.AsyncAnthropic,
) -> None:
    """Any name a client sends would otherwise grow /metrics without bound."""
    junk = "junk-model-7f3a9c"
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(model=junk, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    exposition = generate_latest().decode()
    assert junk not in exposition
    assert 'model="_unrouted"' in exposition


@pytest.mark.parametrize("stream", [False, True])
async def test_a_complete_answer_is_flushed_to_the_client_as_its_last_bytes_are_sent(
    edge: Edge, stream: bool
) -> None:
    """The connection's writes wait for the end of the loop's pass; the last body message
    of an answer flushes them at once, and no message before it does."""
    happened: list[str] = []
    body = json.dumps({"model": "claude-x", "max_tokens": 8, "messages": USER, "stream": stream}).encode()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            types.extend(v for k, v in message["headers"] if k == b"content-type")
        more = message.get("more_body", False)
        happened.append(message["type"].removeprefix("http.response.") + (" (more)" if more else ""))

    types: list[bytes] = []
    await _raw_message(edge.app, body, send, **{CONNECTION_KEY: Connection(lambda: happened.append("flush"))})
    assert types == [b"text/event-stream; charset=utf-8" if stream else b"application/json"]
    assert happened[0] == "start"
    assert happened[-2:] == ["body", "flush"]
    assert "flush" not in happened[:-1]


@pytest.mark.parametrize("others", [0, 1])
async def test_a_route_goes_out_at_once_when_it_is_the_edges_only_call(
    client: anthropic.AsyncAnthropic, edge: Edge, others: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    paces: list[str] = []
    bus = edge.app.state.context.bus
    publish = bus.publish

    async def recording(topic: Any, message: Any, **options: Any) -> None:
        if topic is ROUTE:
            paces.append(options.get("pace", "pass"))
        await publish(topic, message, **options)

    monkeypatch.setattr(bus, "publish", recording)
    # Another call in flight on this edge, as the console's live view lists it.
    monkeypatch.setattr(calls, "LIVE", {f"other-{i}": cast(calls.Call, object()) for i in range(others)})
    await client.messages.create(model="claude-x", max_tokens=8, messages=USER)
    assert paces == ["now" if others == 0 else "pass"]


async def test_a_whole_answer_is_sent_before_the_request_is_recorded(edge: Edge) -> None:
    """The client does not wait for the edge's bookkeeping: the answer's body is sent
    before the request is counted (and its usage recorded, its quota settled)."""
    labels = {"model": "claude-x", "status": "200"}

    def counted() -> float:
        return REGISTRY.get_sample_value("llmbus_edge_requests_total", labels) or 0.0

    before = counted()
    at_send: list[float] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            at_send.append(counted())

    body = json.dumps({"model": "claude-x", "max_tokens": 8, "messages": USER}).encode()
    await _raw_message(edge.app, body, send)
    assert at_send == [before]
    assert counted() == before + 1


async def _raw_message(app: FastAPI, body: bytes, send: Send, **scope_extra: object) -> None:
    """`POST /v1/messages` straight into the ASGI app, as uvicorn would call it; the
    client sends `body`, then stays."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-api-key", KEY.encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8317),
        **scope_extra,
    }
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays
        raise AssertionError("unreachable")

    await app(scope, receive, send)
