"""Failover and deadlines in the worker and the router's plan: what is left of a plan
after a failure (`next_steps`), the first-byte and total bounds of one upstream call, the
retry budget, model pools and fallback models. The worker runs over the in-memory bus
twin and an httpx2 mock transport: no sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx2
import msgspec
import pytest

from llmbus.api import GatewayTimeout, InvalidRequest
from llmbus.bus import Delivery, Inbox
from llmbus.config import ConfigError, parse_config
from llmbus.edge.calls import DEADLINE_GRACE, SDK_TIMEOUT_MARGIN, Call, client_timeouts
from llmbus.proto import (
    EVENTS,
    EXEC,
    ROUTE,
    AnyEvent,
    Client,
    Cooldown,
    Delta,
    Done,
    Error,
    ExecRequest,
    Heartbeat,
    Needs,
    RouteRequest,
    Started,
    Target,
    chat_codec,
    frames_of,
)
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.adapters import OpenAICompatible
from llmbus.providers.errors import (
    CredentialUnavailable,
    Unsupported,
    UpstreamStatus,
    UpstreamTimeout,
)
from llmbus.providers.http import HttpClient
from llmbus.router.handlers import Router
from llmbus.routing import Catalog, LiveState, RateLimited, Selector, plan
from llmbus.testing import InMemoryBus
from llmbus.worker.handlers import MIN_ATTEMPT_SECONDS, Worker, next_steps
from tests.unit.test_worker_handlers import CHAT, HELLO, Upstream, _chunk, _error

CONFIG = """
providers:
  alpha:
    endpoint: http://alpha/v1
    api_key: ka
    timeouts: {first_byte_seconds: 0.3}
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
ALPHA = Target(provider="alpha", credential="key-1", upstream_model="shared")
BETA = Target(provider="beta", credential="key-1", upstream_model="shared")
NOW = 1_700_000_000.0


def step(provider: str, credential: str = "key-1", model: str = "m") -> Target:
    return Target(provider=provider, credential=credential, upstream_model=model)


def exec_request(
    target: Target,
    plan_: list[Target],
    *,
    deadline: float = NOW + 60,
    first_byte: float = 0.0,
) -> ExecRequest:
    return ExecRequest(
        request_id="req-1",
        model="m",
        reply="inbox",
        deadline=int(deadline * 1000),
        first_byte_deadline=int(first_byte * 1000),
        client=Client(id="c"),
        body=msgspec.Raw(chat_codec.encode(CHAT)),
        target=target,
        plan=plan_,
    )


# --- what is left of a plan after a failure ----------------------------------------------


def test_a_credential_its_token_service_refuses_is_skipped_for_every_model() -> None:
    request = exec_request(step("a"), [step("a", model="other"), step("a", "key-2"), step("b")])
    steps = next_steps(request, CredentialUnavailable("refused", upstream_status=401), NOW)
    assert steps == [step("a", "key-2"), step("b")]


def test_an_upstream_401_is_not_retried_here_it_is_a_502_naming_the_credential() -> None:
    request = exec_request(step("a"), [step("a", "key-2")])
    assert next_steps(request, UpstreamStatus(401, "no"), NOW) == []


def test_a_token_that_cannot_be_had_skips_the_credential_like_a_401() -> None:
    request = exec_request(step("a"), [step("a", model="other"), step("b")])
    assert next_steps(request, CredentialUnavailable("down"), NOW) == [step("b")]


def test_a_429_skips_only_that_credential_for_that_model() -> None:
    request = exec_request(step("a"), [step("a"), step("a", model="other"), step("a", "key-2")])
    steps = next_steps(request, UpstreamStatus(429, "slow down"), NOW)
    assert steps == [step("a", model="other"), step("a", "key-2")]


def test_a_500_or_a_timeout_moves_on_to_the_rest_of_the_plan() -> None:
    rest = [step("a", "key-2"), step("b")]
    request = exec_request(step("a"), rest)
    assert next_steps(request, UpstreamStatus(500, "boom"), NOW) == rest
    assert next_steps(request, UpstreamTimeout("silent"), NOW) == rest


def test_a_400_or_an_unsupported_request_does_not_fail_over() -> None:
    request = exec_request(step("a"), [step("b")])
    assert next_steps(request, UpstreamStatus(400, "bad"), NOW) == []
    assert next_steps(request, Unsupported("no images"), NOW) == []


def test_no_failover_once_the_deadline_is_nearly_spent() -> None:
    request = exec_request(step("a"), [step("b")], deadline=NOW + MIN_ATTEMPT_SECONDS / 2)
    assert next_steps(request, UpstreamStatus(500, "boom"), NOW) == []
    early = exec_request(step("a"), [step("b")], first_byte=NOW + MIN_ATTEMPT_SECONDS / 2)
    assert next_steps(early, UpstreamStatus(500, "boom"), NOW) == [], "the first-byte deadline too"
    roomy = exec_request(step("a"), [step("b")], deadline=NOW + 2 * MIN_ATTEMPT_SECONDS)
    assert next_steps(roomy, UpstreamStatus(500, "boom"), NOW) == [step("b")]


# --- the worker's bounds on one call -------------------------------------------------------


class _Rig:
    def __init__(self, answers: dict[str, object]) -> None:
        self.bus = InMemoryBus()
        self.upstream = Upstream(answers)  # type: ignore[arg-type]
        self.worker = Worker(
            self.bus.peer(),
            HttpClient(transport=httpx2.MockTransport(self.upstream)),
            dict(PROVIDERS),
            {"openai": OpenAICompatible()},
            heartbeat_interval=0.2,
        )
        self.inbox = self.bus.new_inbox()
        self.frames: list[Delivery] = []
        self.execs: list[ExecRequest] = []
        self.ended = asyncio.Event()

    async def start(self) -> None:
        await self.worker.start()

        async def frame(delivery: Delivery) -> None:
            self.frames.append(delivery)
            if isinstance(frames_of(delivery.data)[-1], Done | Error):
                self.ended.set()

        async def retried(message: ExecRequest, _: Delivery) -> None:
            self.execs.append(message)

        await self.bus.subscribe_raw(self.inbox, frame)
        await self.bus.subscribe(EXEC, retried)

    async def send(self, target: Target, plan_: tuple[Target, ...] = (), *, deadline: float = 30) -> None:
        now = time.time()
        request = ExecRequest(
            request_id="req-1",
            model="shared",
            reply=self.inbox,
            deadline=int((now + deadline) * 1000),
            first_byte_deadline=int((now + deadline) * 1000),
            client=Client(id="client-1"),
            body=msgspec.Raw(chat_codec.encode(CHAT)),
            target=target,
            plan=list(plan_),
        )
        await self.bus.publish(EXEC, request, reply=self.inbox, provider=target.provider)

    def answer(self) -> list[AnyEvent]:
        events = [event for frame in self.frames for event in frames_of(frame.data)]
        return [e for e in events if not isinstance(e, Heartbeat)]

    async def close(self) -> None:
        await self.worker.bus.drain()
        await self.worker.http.aclose()
        await self.bus.drain()


@pytest.fixture
async def made() -> AsyncIterator[list[_Rig]]:
    rigs: list[_Rig] = []
    yield rigs
    for rig in rigs:
        await rig.close()


async def _hang(_: httpx2.Request) -> httpx2.Response:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def test_an_upstream_silent_past_its_first_byte_timeout_fails_over(made: list[_Rig]) -> None:
    rig = _Rig({"alpha": _hang, "beta": lambda _: httpx2.Response(200, content=HELLO)})
    made.append(rig)
    await rig.start()
    began = time.monotonic()
    await rig.send(ALPHA, (BETA,))
    async with asyncio.timeout(5):
        await rig.ended.wait()
    assert time.monotonic() - began < 5, "alpha's 0.3 s first-byte timeout, not the read timeout"
    assert rig.upstream.hosts() == ["alpha", "beta"]
    answer = rig.answer()
    assert isinstance(answer[0], Started)
    assert answer[0].provider == "beta"
    assert isinstance(answer[-1], Done)
    assert rig.worker.in_flight == 0


async def test_an_upstream_silent_with_nothing_left_ends_in_a_504(made: list[_Rig]) -> None:
    rig = _Rig({"alpha": _hang})
    made.append(rig)
    await rig.start()
    await rig.send(ALPHA)
    async with asyncio.timeout(5):
        await rig.ended.wait()
    [error] = rig.answer()
    assert isinstance(error, Error)
    assert (error.status, error.code, error.provider) == (504, "upstream_timeout", "alpha")


async def test_the_request_deadline_bounds_a_call_with_no_timeout_of_its_own(made: list[_Rig]) -> None:
    """beta has no first-byte timeout of its own under 120 s: the request's deadline ends it."""
    rig = _Rig({"beta": _hang})
    made.append(rig)
    await rig.start()
    await rig.send(BETA, deadline=0.5)
    async with asyncio.timeout(5):
        await rig.ended.wait()
    [error] = rig.answer()
    assert isinstance(error, Error)
    assert error.status == 504


async def test_a_trickling_stream_ends_at_the_deadline_with_an_error_event(made: list[_Rig]) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        while True:
            yield f"data: {json.dumps(_chunk({'content': '.'}))}\n\n".encode()
            await asyncio.sleep(0.1)

    rig = _Rig({"beta": lambda _: httpx2.Response(200, content=trickle())})
    made.append(rig)
    await rig.start()
    await rig.send(BETA, deadline=0.8)
    async with asyncio.timeout(5):
        await rig.ended.wait()
    answer = rig.answer()
    assert isinstance(answer[0], Started)
    assert any(isinstance(e, Delta) for e in answer), "the stream had started"
    error = answer[-1]
    assert isinstance(error, Error)
    assert (error.status, error.code) == (504, "deadline_exceeded")
    assert rig.worker.in_flight == 0


async def test_no_failover_is_started_when_the_deadline_is_nearly_spent(made: list[_Rig]) -> None:
    rig = _Rig(
        {"alpha": lambda _: _error(500, "boom"), "beta": lambda _: httpx2.Response(200, content=HELLO)}
    )
    made.append(rig)
    await rig.start()
    await rig.send(ALPHA, (BETA,), deadline=MIN_ATTEMPT_SECONDS / 2)
    async with asyncio.timeout(5):
        await rig.ended.wait()
    assert rig.upstream.hosts() == ["alpha"]
    [error] = rig.answer()
    assert isinstance(error, Error)
    assert error.status == 502


async def test_a_429_fails_over_past_the_same_credential_to_the_next_provider(made: list[_Rig]) -> None:
    rig = _Rig(
        {
            "alpha": lambda _: _error(429, "slow down", {"retry-after": "30"}),
            "beta": lambda _: httpx2.Response(200, content=HELLO),
        }
    )
    made.append(rig)
    await rig.start()
    await rig.send(ALPHA, (ALPHA, BETA))  # the plan names alpha twice: once is enough
    async with asyncio.timeout(5):
        await rig.ended.wait()
    assert rig.upstream.hosts() == ["alpha", "beta"]
    assert [(e.target, e.attempt) for e in rig.execs] == [(ALPHA, 1), (BETA, 2)]
    assert isinstance(rig.answer()[-1], Done)


async def test_a_step_that_rests_since_the_plan_was_made_is_skipped(made: list[_Rig]) -> None:
    """Another worker's 401 on beta was announced after the router made this plan."""
    rig = _Rig(
        {"alpha": lambda _: _error(500, "boom"), "beta": lambda _: httpx2.Response(200, content=HELLO)}
    )
    made.append(rig)
    await rig.start()
    rig.worker.rests.note(
        Cooldown(provider="beta", credential="key-1", until=time.time() + 60, reason="refused", status=401)
    )
    await rig.send(ALPHA, (BETA,))
    async with asyncio.timeout(5):
        await rig.ended.wait()
    assert rig.upstream.hosts() == ["alpha"], "beta rests: not tried"
    [error] = rig.answer()
    assert isinstance(error, Error)
    assert error.status == 502


# --- the plan: pools, fallbacks, the retry budget ------------------------------------------

POOLS = """
routing:
  max_attempts: {attempts}
  fallback_models: {{"*": [cheap]}}
providers:
  alpha:
    endpoint: http://alpha/v1
    api_keys: [ka1, ka2]
    models:
      - {{name: big-a, alias: smart, fallback: medium}}
      - medium
  beta:
    endpoint: http://beta/v1
    api_key: kb
    models:
      - {{name: big-b, alias: smart}}
      - {{name: cheap, upstream: cheap-up}}
"""


def planner(attempts: int = 8) -> Catalog:
    config = parse_config(POOLS.format(attempts=attempts), "cfg.yaml", environ={})
    return Catalog(configured_providers(config), routing=config.routing)


def test_an_alias_over_several_models_of_several_providers_is_one_pool() -> None:
    targets = plan(planner(), Selector("fill-first"), "smart", Needs(), LiveState(), 8)
    assert [(t.provider, t.credential, t.upstream_model) for t in targets] == [
        ("alpha", "key-1", "big-a"),
        ("alpha", "key-2", "big-a"),
        ("beta", "key-1", "big-b"),
        ("alpha", "key-1", "medium"),
        ("alpha", "key-2", "medium"),
        ("beta", "key-1", "cheap-up"),
    ], "the pool, then the model's own fallback, then the routing-wide one"


def test_the_retry_budget_keeps_its_last_place_for_a_fallback() -> None:
    targets = plan(planner(), Selector("fill-first"), "smart", Needs(), LiveState(), 3)
    assert [t.upstream_model for t in targets] == ["big-a", "big-a", "medium"]
    [only] = plan(planner(), Selector("fill-first"), "smart", Needs(), LiveState(), 1)
    assert only.upstream_model == "big-a"


def test_a_model_whose_pool_is_resting_is_served_by_its_fallback() -> None:
    state = LiveState()
    for credential in ("key-1", "key-2"):
        state.cool_down("alpha", credential, NOW + 60, "rate limited upstream", "big-a")
    state.cool_down("beta", "key-1", NOW + 60, "rate limited upstream", "big-b")
    targets = plan(planner(), Selector("fill-first"), "smart", Needs(), state, 8, now=NOW)
    assert [t.upstream_model for t in targets] == ["medium", "medium", "cheap-up"]


def test_a_resting_model_without_a_fallback_is_still_a_429() -> None:
    catalog = planner()
    catalog.routing = msgspec.structs.replace(catalog.routing, fallback_models=[])
    state = LiveState()
    state.cool_down("beta", "key-1", NOW + 60, "rate limited upstream", "cheap-up")
    with pytest.raises(RateLimited):
        plan(catalog, Selector(), "cheap", Needs(), state, 8, now=NOW)


def test_fallbacks_are_not_followed_further_and_never_loop() -> None:
    catalog = planner()
    assert catalog.fallbacks("smart") == ["medium", "cheap"]
    assert catalog.fallbacks("medium") == ["cheap"], "medium's own fallbacks, not smart's"
    assert catalog.fallbacks("cheap") == [], "never a model's own fallback"


# --- the config ----------------------------------------------------------------------------


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml", environ={})
    return str(caught.value)


BASE = """
providers:
  alpha:
    endpoint: http://alpha/v1
    api_key: ka
    models:
      - {name: big, fallback: %s}
      - small
"""


def test_a_fallback_that_no_provider_serves_is_refused_with_a_suggestion() -> None:
    text = problem(BASE % "smal")
    assert "providers.alpha.models[0].fallback" in text
    assert "no provider serves `smal`" in text
    assert "did you mean `small`?" in text


def test_a_model_cannot_be_its_own_fallback() -> None:
    assert "`big` cannot be its own fallback" in problem(BASE % "big")


def test_routing_fallbacks_and_budget_are_checked() -> None:
    assert "routing.fallback_models.big" in problem(
        BASE % "small" + "routing: {fallback_models: {big: nope}}"
    )
    assert "`max_attempts` must be from 1 to 16" in problem(BASE % "small" + "routing: {max_attempts: 0}")
    assert "`first_byte_seconds` must be a number of seconds above 0" in problem(
        BASE % "small" + "routing: {timeouts: {first_byte_seconds: 0}}"
    )


def test_fallbacks_to_a_provider_that_serves_its_built_in_list_are_left_to_the_router() -> None:
    """claude lists no models (it serves its built-in list, which the config cannot see):
    the loader lets the names through, the router's catalog tells the unknown ones."""
    for fallback, unknown in (("claude-sonnet-4-5", []), ("claude-sonet-9", ["claude-sonet-9"])):
        text = BASE % fallback + "  claude:\n    api_key: kc\n"
        config = parse_config(text, "cfg.yaml", environ={})
        catalog = Catalog(configured_providers(config), routing=config.routing)
        assert catalog.unknown_fallbacks() == unknown


def test_timeouts_come_from_the_provider_then_the_routing_defaults_then_the_built_in() -> None:
    config = parse_config(
        """
routing: {timeouts: {total_seconds: 90}}
providers:
  alpha: {endpoint: http://alpha/v1, api_key: ka, models: [m], timeouts: {first_byte_seconds: 5}}
  beta: {endpoint: http://beta/v1, api_key: kb, models: [m]}
""",
        "cfg.yaml",
        environ={},
    )
    providers: dict[str, ConfiguredProvider] = configured_providers(config)
    alpha, beta = providers["alpha"].timeouts, providers["beta"].timeouts
    assert (alpha.first_byte_seconds, alpha.total_seconds) == (5, 90)
    assert (beta.first_byte_seconds, beta.total_seconds) == (120, 90)


def test_the_guide_form_takes_a_fallback_too() -> None:
    config = parse_config(
        """
openai-compatibility:
  - name: local
    base-url: http://local/v1
    api-key-entries: [{api-key: kl}]
    models:
      - {name: llama-70b, alias: big, fallback: small}
      - {name: llama-8b, alias: small}
""",
        "cfg.yaml",
        environ={},
    )
    catalog = Catalog(configured_providers(config), routing=config.routing)
    assert catalog.fallbacks("big") == ["small"]


# --- the client's own timeouts at the edge ---------------------------------------------------


def test_a_client_header_shortens_the_deadline_and_never_lengthens_it() -> None:
    assert client_timeouts({"x-llmbus-timeout": "5"}, True, 600, 300) == (5, 5)
    assert client_timeouts({"x-llmbus-timeout": "900"}, True, 600, 300) == (600, 300)
    assert client_timeouts({}, True, 600, 300) == (600, 300)


def test_the_timeout_an_sdk_announces_bounds_the_first_byte_and_a_whole_answer() -> None:
    margin = SDK_TIMEOUT_MARGIN
    streamed = client_timeouts({"x-stainless-read-timeout": "20"}, True, 600, 300)
    assert streamed == (600, 20 + margin), "a stream may run past the SDK's read timeout"
    whole = client_timeouts({"x-stainless-timeout": "20.0"}, False, 600, 300)
    assert whole == (20 + margin, 20 + margin), "a whole answer is one read for the SDK"
    assert client_timeouts({"x-stainless-timeout": "nan"}, False, 600, 300) == (600, 300)


@pytest.mark.parametrize("value", ["soon", "0", "-3", "inf", ""])
def test_a_timeout_header_that_is_not_seconds_is_a_400(value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        client_timeouts({"x-llmbus-timeout": value}, True, 600, 300)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_timeout"


# --- the router's exec request ---------------------------------------------------------------

ROUTER_CONFIG = """
routing: {max_attempts: 2}
providers:
  alpha:
    endpoint: http://alpha/v1
    api_keys: [ka1, ka2, ka3]
    models: [{name: shared, fallback: spare}]
  beta:
    endpoint: http://beta/v1
    api_key: kb
    models: [spare]
"""


async def test_the_router_sends_a_plan_within_the_budget_with_the_deadlines_and_the_estimate() -> None:
    bus = InMemoryBus()
    router_bus, worker_bus = bus.peer(), bus.peer()
    router = Router(router_bus, parse_config(ROUTER_CONFIG, "cfg.yaml", environ={}))
    await router_bus.subscribe(ROUTE, router.on_route, queue=ROUTE.queue)
    received: list[ExecRequest] = []

    async def on_exec(request: ExecRequest, _: Delivery) -> None:
        received.append(request)

    await worker_bus.subscribe(EXEC, on_exec, subject=EXEC.subject(provider="alpha"))
    now = int(time.time() * 1000)
    route = RouteRequest(
        request_id="r1",
        model="shared",
        reply=bus.new_inbox(),
        deadline=now + 30_000,
        first_byte_deadline=now + 10_000,
        client=Client(id="c"),
        body=msgspec.Raw(chat_codec.encode(CHAT)),
        tokens=1234,
    )
    try:
        await bus.publish(ROUTE, route)
        await bus.settle()
        [request] = received
        steps = [request.target, *request.plan]
        assert [(t.provider, t.upstream_model) for t in steps] == [("alpha", "shared"), ("beta", "spare")], (
            "two attempts: one of alpha's three keys, then the fallback's last place"
        )
        assert (request.deadline, request.first_byte_deadline) == (now + 30_000, now + 10_000)
        assert request.tokens == 1234, "the estimate reaches the worker's TPM limits"
    finally:
        await router_bus.drain()
        await worker_bus.drain()


# --- the edge's own backstop -------------------------------------------------------------------


async def test_the_edge_ends_a_request_whose_answer_never_starts_at_its_first_byte_deadline() -> None:
    """A worker that has the request (heartbeats) but never starts the answer: the edge
    answers 504 shortly after the first-byte deadline, long before the total."""
    bus = InMemoryBus()
    edge_bus, worker_bus = bus.peer(), bus.peer()
    beating: list[asyncio.Task[None]] = []

    async def on_route(request: RouteRequest, _: Delivery) -> None:
        async def beat() -> None:
            seq = 0
            while True:
                await worker_bus.publish_raw(request.reply, EVENTS.encode(Heartbeat(seq=seq)))
                seq += 1
                await asyncio.sleep(0.05)

        beating.append(asyncio.create_task(beat()))

    await worker_bus.subscribe(ROUTE, on_route)
    inbox = Inbox(edge_bus)
    await inbox.start()
    call = Call(
        edge_bus,
        inbox,
        CHAT,
        Client(id="c"),
        accept_timeout=1,
        idle_timeout=1,
        request_timeout=30,
        first_byte_timeout=0.3,
    )
    began = time.monotonic()
    try:
        await call.start()
        with pytest.raises(GatewayTimeout) as caught:
            await call.next()
        assert caught.value.code == "first_byte_timeout"
        assert time.monotonic() - began < 0.3 + DEADLINE_GRACE + 1
    finally:
        for task in beating:
            task.cancel()
        await call.close()
        await edge_bus.drain()
        await worker_bus.drain()
