"""Independent scaling, on a stack of its own: three worker processes of one family, two
routers and two edges. The workers share the load; a worker added or taken away while
requests are running loses none of them; a router that dies costs at most the requests it
held (the edge routes those again), never a hang, and the survivors serve everything."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmbus.devstack.upstreams import mock_environment
from llmbus.testing import Stack, StackPorts, free_port
from tests.e2e.conftest import CLIENT_KEY, TOKEN_KEY

pytestmark = pytest.mark.e2e

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "share this"}]
_SERVED = re.compile(r'^llmbus_worker_requests_total\{outcome="ok",provider="openai"\} (\S+)$', re.M)


@dataclass
class Scaled:
    stack: Stack
    edges: list[str]


@dataclass
class Outcomes:
    """What the clients saw, counted: a request either succeeded, ended with a clean
    error (an API error the SDK could read), or hung (no answer within its timeout)."""

    counts: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    """The same, for requests sent after `mark` was called."""
    marked: float = 0.0

    def add(self, outcome: str, sent: float) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self.marked and sent >= self.marked:
            self.after[outcome] = self.after.get(outcome, 0) + 1

    def mark(self) -> None:
        self.marked = time.monotonic()


@pytest.fixture(scope="module")
def scaled(logs_dir: Path, config_file: Path) -> Iterator[Scaled]:
    ports = StackPorts.pick(prefer_defaults=False)
    stack = Stack(
        config=config_file,
        log_dir=logs_dir / "scaling",
        ports=ports,
        env={
            **mock_environment(f"http://127.0.0.1:{ports.mock}", logs_dir / "scaling-state", {}),
            "LLMBUS_PROVIDERS": "openai",
            "LLMBUS_ACCEPT_TIMEOUT": "2",
            "LLMBUS_TOKEN_KEY": TOKEN_KEY,
            "LLMBUS_DRAIN_SECONDS": "20",
            "LLMBUS_IDLE_TIMEOUT": "3",
            "LLMBUS_HEARTBEAT_INTERVAL": "0.5",
        },
        workers={"openai": 3},
        replicas=2,
    )
    stack.start()
    try:
        port = free_port()
        stack.start_service("edge-2", "edge", {"LLMBUS_PORT": str(port), "LLMBUS_HOST": "127.0.0.1"})
        stack.wait_ready("edge-2")
        yield Scaled(stack, [stack.base_url, f"http://127.0.0.1:{port}"])
    finally:
        stack.stop()


@pytest.fixture
async def clients(scaled: Scaled) -> AsyncIterator[list[openai.AsyncOpenAI]]:
    made = [
        openai.AsyncOpenAI(base_url=f"{edge}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)
        for edge in scaled.edges
    ]
    try:
        yield made
    finally:
        for client in made:
            await client.close()


async def _served(stack: Stack, worker: str) -> float:
    """Requests a worker process has answered, from its own metrics."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(stack.metrics_url(worker))).text
    found = _SERVED.search(text)
    return float(found.group(1)) if found else 0.0


async def _one(client: openai.AsyncOpenAI, model: str, stream: bool) -> str:
    try:
        if stream:
            text = ""
            async with await client.chat.completions.create(
                model=model, messages=USER, stream=True
            ) as chunks:
                async for chunk in chunks:
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
        else:
            answer = await client.chat.completions.create(model=model, messages=USER)
            text = answer.choices[0].message.content or ""
    except openai.APITimeoutError:
        return "hung"
    except openai.APIStatusError as exc:
        return f"error {exc.status_code}" + (f" {exc.message}" if exc.status_code == 502 else "")
    except openai.APIError as exc:
        return f"error mid-stream: {exc.message}"
    return "ok" if "share this" in text else "wrong answer"


async def _load(
    clients: list[openai.AsyncOpenAI], until: asyncio.Event, outcomes: Outcomes, *, slow: bool
) -> None:
    """One client after another request until told to stop: streams and whole answers,
    through both edges; with `slow`, streams that take seconds (in flight when a worker
    is told to stop)."""
    turn = 0
    while not until.is_set():
        turn += 1
        sent = time.monotonic()
        model = "slow" if slow else "gpt-4o-mini"
        outcomes.add(await _one(clients[turn % 2], model, stream=slow or turn % 3 == 0), sent)


async def test_three_workers_of_one_family_share_the_load(
    scaled: Scaled, clients: list[openai.AsyncOpenAI]
) -> None:
    workers = ["worker-openai", "worker-openai-2", "worker-openai-3"]
    before = [await _served(scaled.stack, worker) for worker in workers]
    results = await asyncio.gather(
        *(_one(clients[i % 2], "gpt-4o-mini", stream=i % 2 == 0) for i in range(90))
    )
    assert results == ["ok"] * 90
    shares = [await _served(scaled.stack, worker) - was for worker, was in zip(workers, before, strict=True)]
    assert sum(shares) == 90, shares
    assert all(share > 0 for share in shares), f"every worker takes a share of the load: {shares}"


async def test_a_worker_added_and_one_taken_away_under_load_lose_no_request(
    scaled: Scaled, clients: list[openai.AsyncOpenAI]
) -> None:
    stack = scaled.stack
    until, outcomes = asyncio.Event(), Outcomes()
    load = [asyncio.create_task(_load(clients, until, outcomes, slow=i < 4)) for i in range(12)]
    await asyncio.sleep(1)
    stack.start_service("worker-openai-4", "worker", {"LLMBUS_FAMILY": "openai"})
    await asyncio.to_thread(stack.wait_ready, "worker-openai-4")
    await asyncio.sleep(1.5)
    # Taken away the way an orchestrator does it: SIGTERM, while slow streams run on it.
    leaving = stack.processes["worker-openai"]
    leaving.signal(signal.SIGTERM)
    outcomes.mark()
    await asyncio.sleep(2)
    until.set()
    await asyncio.gather(*load)
    assert leaving.popen is not None
    assert await asyncio.to_thread(leaving.popen.wait, 25) == 0, "the worker drained and exited cleanly"
    assert set(outcomes.counts) == {"ok"}, outcomes.counts
    assert outcomes.after.get("ok", 0) > 10, outcomes.after
    assert await _served(stack, "worker-openai-4") > 0, "the added worker took work"
    stack.processes.pop("worker-openai").stop()


async def test_a_router_killed_under_load_loses_no_request(
    scaled: Scaled, clients: list[openai.AsyncOpenAI]
) -> None:
    until, outcomes = asyncio.Event(), Outcomes()
    load = [asyncio.create_task(_load(clients, until, outcomes, slow=False)) for _ in range(12)]
    await asyncio.sleep(1)
    scaled.stack.processes["router-2"].signal(signal.SIGKILL)
    # The requests it held when it died are routed again by the edge once the accept
    # timeout passes; whatever is sent once NATS has seen it go reaches the router alive.
    await asyncio.sleep(2.5)
    outcomes.mark()
    await asyncio.sleep(2)
    until.set()
    await asyncio.gather(*load)
    assert set(outcomes.counts) == {"ok"}, outcomes.counts
    assert set(outcomes.after) == {"ok"}, outcomes.after
    assert outcomes.after["ok"] > 10, outcomes.after


async def test_a_worker_killed_under_load_ends_its_streams_cleanly_and_the_others_serve_on(
    scaled: Scaled, clients: list[openai.AsyncOpenAI]
) -> None:
    until, outcomes = asyncio.Event(), Outcomes()
    load = [asyncio.create_task(_load(clients, until, outcomes, slow=i < 6)) for i in range(12)]
    await asyncio.sleep(1.5)
    scaled.stack.processes["worker-openai-2"].signal(signal.SIGKILL)
    # Its streams end with an error event once the edge has heard nothing for its idle
    # timeout; whatever is sent after that goes to the workers still alive.
    await asyncio.sleep(0.5)
    outcomes.mark()
    await asyncio.sleep(3)
    until.set()
    await asyncio.gather(*load)
    # The requests it held: a stream ends with an error event, a whole answer with a 504;
    # one handed to it as it died (never taken) is routed again by the edge.
    cut = {o for o in outcomes.counts if o.startswith(("error mid-stream", "error 504"))}
    assert set(outcomes.counts) - cut == {"ok"}, outcomes.counts
    assert set(outcomes.after) == {"ok"}, outcomes.after
    assert outcomes.after["ok"] > 10, outcomes.after


async def _trickled(client: openai.AsyncOpenAI, started: asyncio.Event) -> str:
    """A stream that takes half a minute: what it ended with."""
    try:
        async with await client.chat.completions.create(
            model="trickle", messages=USER, stream=True
        ) as chunks:
            async for _ in chunks:
                started.set()
    except openai.APIError as exc:
        return f"error event: {exc.message}"
    return "finished"


async def test_an_edge_told_to_stop_finishes_short_answers_and_ends_long_streams_with_an_error(
    scaled: Scaled,
) -> None:
    stack = scaled.stack
    port = free_port()
    edge = stack.start_service(
        "edge-3", "edge", {"LLMBUS_PORT": str(port), "LLMBUS_HOST": "127.0.0.1", "LLMBUS_DRAIN_SECONDS": "4"}
    )
    try:
        await asyncio.to_thread(stack.wait_ready, "edge-3")
        async with openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30
        ) as client:
            started = [asyncio.Event() for _ in range(4)]
            long = [asyncio.create_task(_trickled(client, event)) for event in started]
            for event in started:
                await asyncio.wait_for(event.wait(), 10)
            short = [asyncio.create_task(_one(client, "slow-start", stream=i % 2 == 0)) for i in range(4)]
            await asyncio.sleep(0.3)
            edge.signal(signal.SIGTERM)
            told = time.monotonic()
            assert await asyncio.gather(*short) == ["ok"] * 4, "answers that fit in the drain time finish"
            ended = await asyncio.gather(*long)
            assert all("restarting" in outcome for outcome in ended), ended
            assert time.monotonic() - told < 8, "the long streams end at the drain time, not later"
        assert edge.popen is not None
        # uvicorn ends by re-raising the signal it caught, as a process without handlers would.
        assert await asyncio.to_thread(edge.popen.wait, 10) in (0, -signal.SIGTERM)
        assert "Traceback" not in edge.log_text()
    finally:
        edge.stop()
        stack.processes.pop("edge-3", None)
