"""The worker's exec handler over the in-memory bus twin and an httpx2 mock transport:
the reply stream it sends the edge, failover before the first byte, cooldowns announced
for every router, cancellation, and credentials that cannot be had. No sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx2
import msgspec
import pytest

from llmbus.bus import Delivery
from llmbus.config import CredentialEntry, parse_config
from llmbus.proto import (
    AUTH_COOLDOWN_EVENTS,
    CANCEL,
    EXEC,
    AnyEvent,
    CancelRequest,
    ChatRequest,
    Client,
    Cooldown,
    Delta,
    Done,
    Error,
    ExecRequest,
    Heartbeat,
    Message,
    Started,
    Target,
    Usage,
    chat_codec,
    frames_of,
)
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.adapters import Credential, CredentialSource, OpenAICompatible, StaticKeys
from llmbus.providers.errors import CredentialUnavailable
from llmbus.providers.http import HttpClient
from llmbus.testing import InMemoryBus
from llmbus.worker.handlers import FIRST_HEARTBEAT, Worker

CONFIG = """
providers:
  alpha:
    endpoint: http://alpha/v1
    api_key: ka
    models: [shared]
  beta:
    endpoint: http://beta/v1
    api_key: kb
    models: [shared]
"""
PROVIDERS = {
    name: p
    for name, p in configured_providers(parse_config(CONFIG, "cfg.yaml", environ={})).items()
    if name in ("alpha", "beta")
}
CHAT = ChatRequest(model="shared", messages=[Message(role="user", content="hi")], stream=True)
ALPHA = Target(provider="alpha", credential="key-1", upstream_model="up-alpha")
BETA = Target(provider="beta", credential="key-1", upstream_model="up-beta")


def _sse(*chunks: dict[str, object]) -> bytes:
    frames = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return "".join([*frames, "data: [DONE]\n\n"]).encode()


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


HELLO = _sse(
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Hel"}),
    _chunk({"content": "lo"}),
    _chunk({}, finish="stop"),
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    },
)

Answer = Callable[[httpx2.Request], httpx2.Response]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    body = {"error": {"message": message, "type": "x", "param": None, "code": None}}
    return httpx2.Response(status, json=body, headers=headers or {})


@dataclass
class Upstream:
    """The upstream hosts: an answer per host, and every request they got."""

    answers: dict[str, Answer]
    calls: list[httpx2.Request] = field(default_factory=list)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.calls.append(request)
        return self.answers[request.url.host](request)

    def hosts(self) -> list[str]:
        return [call.url.host for call in self.calls]


@dataclass
class Rig:
    bus: InMemoryBus
    worker: Worker
    upstream: Upstream
    frames: list[Delivery] = field(default_factory=list)
    cooldowns: list[Cooldown] = field(default_factory=list)
    execs: list[ExecRequest] = field(default_factory=list)
    inbox: str = ""

    async def send(self, target: Target = ALPHA, plan: tuple[Target, ...] = (), settle: bool = True) -> None:
        request = ExecRequest(
            request_id="req-1",
            model="shared",
            reply=self.inbox,
            deadline=int(time.time() * 1000) + 30_000,
            client=Client(id="client-1"),
            body=msgspec.Raw(chat_codec.encode(CHAT)),
            target=target,
            plan=list(plan),
        )
        await self.bus.publish(EXEC, request, reply=self.inbox, provider=target.provider)
        if settle:
            await self.bus.settle()

    def events(self) -> list[AnyEvent]:
        return [event for frame in self.frames for event in frames_of(frame.data)]

    def answer(self) -> list[AnyEvent]:
        """The events after the heartbeats that tell the edge a worker has the request."""
        return [e for e in self.events() if not isinstance(e, Heartbeat)]


class FailingFor:
    """Static keys, except for one provider whose token cannot be minted."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.keys = StaticKeys()

    async def get(self, provider: ConfiguredProvider, entry: CredentialEntry) -> Credential:
        if provider.name == self.provider:
            raise CredentialUnavailable("the token service did not answer")
        return await self.keys.get(provider, entry)

    def invalidate(self, provider: ConfiguredProvider, entry: CredentialEntry) -> None:
        return None


async def _rig(
    answers: dict[str, Answer], source: CredentialSource | None = None, *, spy: bool = True
) -> Rig:
    bus = InMemoryBus()
    upstream = Upstream(answers)
    worker = Worker(
        bus.peer(),
        HttpClient(transport=httpx2.MockTransport(upstream)),
        dict(PROVIDERS),
        {"openai": OpenAICompatible()},
        heartbeat_interval=60,
        sources={"openai": source} if source else None,
    )
    await worker.start()
    rig = Rig(bus, worker, upstream, inbox=bus.new_inbox())

    async def frame(delivery: Delivery) -> None:
        rig.frames.append(delivery)

    async def cooldown(message: Cooldown, _: Delivery) -> None:
        rig.cooldowns.append(message)

    async def retried(message: ExecRequest, _: Delivery) -> None:
        rig.execs.append(message)

    await bus.subscribe_raw(rig.inbox, frame)
    await bus.subscribe(AUTH_COOLDOWN_EVENTS, cooldown)
    if spy:
        await bus.subscribe(EXEC, retried)  # no queue group: sees every exec request
    return rig


@pytest.fixture
async def rigs() -> AsyncIterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        await rig.worker.bus.drain()
        await rig.worker.http.aclose()
        await rig.bus.drain()


async def test_a_stream_is_started_deltas_usage_done_with_consecutive_seq(rigs: list[Rig]) -> None:
    rig = await _rig({"alpha": lambda _: httpx2.Response(200, content=HELLO)})
    rigs.append(rig)

    await rig.send()

    events = rig.events()
    assert [e.seq for e in events] == list(range(len(events)))
    assert not any(isinstance(e, Heartbeat) for e in events), "a quick answer needs no heartbeat"
    assert rig.answer() == [
        Started(seq=0, provider="alpha", model="up-alpha", credential="key-1", attempt=1),
        Delta(seq=1, text="Hel"),
        Delta(seq=2, text="lo"),
        Delta(seq=3, finish_reason="stop"),
        Usage(seq=4, prompt_tokens=5, completion_tokens=2),
        Done(seq=5, finish_reason="stop"),
    ]
    [call] = rig.upstream.calls
    assert call.headers["Authorization"] == "Bearer ka"
    assert json.loads(call.content)["model"] == "up-alpha"
    assert rig.worker.in_flight == 0


async def test_an_upstream_500_before_the_first_byte_moves_to_the_next_target(rigs: list[Rig]) -> None:
    rig = await _rig(
        {
            "alpha": lambda _: _error(500, "boom"),
            "beta": lambda _: httpx2.Response(200, content=HELLO),
        }
    )
    rigs.append(rig)

    await rig.send(plan=(BETA,))

    assert rig.upstream.hosts() == ["alpha", "beta"]
    retry = rig.execs[-1]
    assert (retry.target, retry.plan, retry.attempt) == (BETA, [], 2)
    events = rig.events()
    assert [e.seq for e in events] == list(range(len(events))), "seq carries on across failover"
    answer = rig.answer()
    assert answer[0] == Started(
        seq=answer[0].seq, provider="beta", model="up-beta", credential="key-1", attempt=2
    )
    assert isinstance(answer[-1], Done)
    assert not any(isinstance(e, Error) for e in answer), "the client never sees the failed attempt"
    assert rig.cooldowns == [], "a 500 is the upstream's fault, not the credential's"


async def test_an_upstream_500_with_no_plan_left_ends_the_stream_with_a_502(rigs: list[Rig]) -> None:
    rig = await _rig({"alpha": lambda _: _error(500, "boom")})
    rigs.append(rig)

    await rig.send()

    [error] = rig.answer()
    assert isinstance(error, Error)
    assert (error.status, error.retryable, error.provider) == (502, True, "alpha")
    assert error.message == "boom"


async def test_an_upstream_429_announces_a_cooldown_for_that_credential(rigs: list[Rig]) -> None:
    rig = await _rig({"alpha": lambda _: _error(429, "slow down", {"retry-after": "20"})})
    rigs.append(rig)

    before = time.time()
    await rig.send()

    [cooldown] = rig.cooldowns
    assert (cooldown.provider, cooldown.credential, cooldown.status) == ("alpha", "key-1", 429)
    assert before + 20 <= cooldown.until <= time.time() + 20
    [error] = rig.answer()
    assert isinstance(error, Error)
    assert (error.status, error.retryable) == (429, True)


async def test_an_upstream_401_rests_the_credential_for_the_auth_failure_time(rigs: list[Rig]) -> None:
    rig = await _rig(
        {"alpha": lambda _: _error(401, "bad key"), "beta": lambda _: httpx2.Response(200, content=HELLO)}
    )
    rigs.append(rig)

    await rig.send(plan=(BETA,))

    [cooldown] = rig.cooldowns
    assert cooldown.status == 401
    assert cooldown.until == pytest.approx(time.time() + 300, abs=5)
    assert isinstance(rig.answer()[-1], Error), "a 401 is not retryable: no failover"


async def test_a_failure_after_the_first_byte_ends_the_stream_with_an_error_not_a_failover(
    rigs: list[Rig],
) -> None:
    broken = (
        f"data: {json.dumps(_chunk({'content': 'Hel'}))}\n\n"
        'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    ).encode()
    rig = await _rig(
        {"alpha": lambda _: httpx2.Response(200, content=broken), "beta": lambda _: httpx2.Response(200)}
    )
    rigs.append(rig)

    await rig.send(plan=(BETA,))

    assert rig.upstream.hosts() == ["alpha"]
    answer = rig.answer()
    assert [type(e) for e in answer] == [Started, Delta, Error]
    assert isinstance(answer[-1], Error)
    assert answer[-1].message == "overloaded"


async def test_cancel_aborts_the_upstream_call(rigs: list[Rig]) -> None:
    streaming = asyncio.Event()
    aborted = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield f"data: {json.dumps(_chunk({'content': 'Hel'}))}\n\n".encode()
            streaming.set()
            await asyncio.Event().wait()
        finally:
            aborted.set()

    rig = await _rig({"alpha": lambda _: httpx2.Response(200, content=endless())})
    rigs.append(rig)
    await rig.send(settle=False)
    async with asyncio.timeout(2):
        await streaming.wait()
    assert rig.worker.in_flight == 1

    await rig.bus.publish(CANCEL, CancelRequest(request_id="req-1"), request_id="req-1")
    await rig.bus.settle()

    assert aborted.is_set()
    assert rig.worker.in_flight == 0
    assert not any(isinstance(e, Done | Error) for e in rig.events())


async def test_a_stream_whose_edge_is_gone_is_aborted(rigs: list[Rig]) -> None:
    aborted = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield f"data: {json.dumps(_chunk({'content': 'Hel'}))}\n\n".encode()
            while True:
                await asyncio.sleep(0.01)
                yield f"data: {json.dumps(_chunk({'content': '.'}))}\n\n".encode()
        finally:
            aborted.set()

    rig = await _rig({"alpha": lambda _: httpx2.Response(200, content=endless())})
    rigs.append(rig)
    rig.inbox = rig.bus.new_inbox()  # nobody listens there: frames come back as 503s

    await rig.send(settle=False)
    async with asyncio.timeout(2):
        await aborted.wait()
    await rig.bus.settle()

    assert rig.worker.in_flight == 0


async def test_a_credential_that_cannot_be_had_fails_over_to_the_next_target(rigs: list[Rig]) -> None:
    rig = await _rig({"beta": lambda _: httpx2.Response(200, content=HELLO)}, source=FailingFor("alpha"))
    rigs.append(rig)

    await rig.send(plan=(BETA,))

    assert rig.upstream.hosts() == ["beta"], "no call goes out without a credential"
    answer = rig.answer()
    assert isinstance(answer[0], Started)
    assert answer[0].provider == "beta"
    assert isinstance(answer[-1], Done)
    assert rig.cooldowns == [], "an unreachable token service says nothing about the credential"


async def test_a_credential_that_cannot_be_had_with_no_plan_left_is_a_503(rigs: list[Rig]) -> None:
    rig = await _rig({}, source=FailingFor("alpha"))
    rigs.append(rig)

    await rig.send()

    [error] = rig.answer()
    assert isinstance(error, Error)
    assert (error.status, error.code) == (503, "credential_unavailable")
    assert rig.upstream.calls == []


async def test_a_provider_dropped_on_reload_leaves_its_queue_group(rigs: list[Rig]) -> None:
    rig = await _rig({}, spy=False)
    rigs.append(rig)
    await rig.worker.serve({"alpha": PROVIDERS["alpha"]})

    await rig.send(target=BETA)

    [frame] = rig.frames
    assert (frame.data, frame.headers) == (b"", {"Status": "503"}), "the edge hears at once: no worker"


class _SlowKeys(StaticKeys):
    """Keys that take a while to get (as a token being minted does)."""

    async def get(self, provider: ConfiguredProvider, entry: CredentialEntry) -> Credential:
        await asyncio.sleep(FIRST_HEARTBEAT + 0.3)
        return await super().get(provider, entry)


async def test_a_worker_slow_to_start_sends_a_heartbeat_before_anything_else(rigs: list[Rig]) -> None:
    """The edge must learn within its accept timeout that a worker has the request."""
    rig = await _rig({"alpha": lambda _: httpx2.Response(200, content=HELLO)}, _SlowKeys())
    rigs.append(rig)
    await rig.send()
    events = rig.events()
    assert isinstance(events[0], Heartbeat)
    assert isinstance(events[1], Started)


async def test_an_upstream_refusing_the_gateways_key_is_a_502_that_quotes_no_key(rigs: list[Rig]) -> None:
    """The client must not read it as a verdict on its own key, nor see part of ours."""
    leaky = "Incorrect API key provided: sk-proj-***abcd. You can find your API key at ..."
    rig = await _rig({"alpha": lambda _: _error(401, leaky)})
    rigs.append(rig)
    await rig.send()
    error = rig.answer()[-1]
    assert isinstance(error, Error)
    assert error.status == 502
    assert error.code == "upstream_credential_refused"
    assert "sk-" not in error.message
    assert "key-1" in error.message, "names the credential, for the operator"
