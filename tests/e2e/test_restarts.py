"""Infrastructure restarts, on a stack of its own: NATS goes away and comes back, Redis
goes away and comes back empty. The gateway answers with clear errors meanwhile and
recovers by itself."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmbus.devstack.upstreams import mock_environment
from llmbus.testing import Stack, StackPorts, start_nats, start_redis
from tests.e2e.conftest import CLIENT_KEY, MANAGEMENT_KEY, TOKEN_KEY

pytestmark = pytest.mark.e2e

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "still there?"}]


@pytest.fixture(scope="module")
def own_stack(logs_dir: Path, config_file: Path) -> Iterator[Stack]:
    ports = StackPorts.pick(prefer_defaults=False)
    stack = Stack(
        config=config_file,
        log_dir=logs_dir / "restarts",
        ports=ports,
        env={
            **mock_environment(f"http://127.0.0.1:{ports.mock}", logs_dir / "restarts-state", {}),
            "LLMBUS_PROVIDERS": "openai",
            "LLMBUS_ACCEPT_TIMEOUT": "2",
            "LLMBUS_IDLE_TIMEOUT": "3",
            "LLMBUS_KEY_SYNC_INTERVAL": "0.5",
            "LLMBUS_TOKEN_KEY": TOKEN_KEY,
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def own_client(own_stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{own_stack.base_url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=10
    ) as client:
        yield client


async def _answers(client: openai.AsyncOpenAI) -> bool:
    try:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    except openai.APIStatusError:
        return False
    return "still there?" in (completion.choices[0].message.content or "")


async def test_the_gateway_recovers_when_nats_comes_back(
    own_stack: Stack, own_client: openai.AsyncOpenAI
) -> None:
    assert await _answers(own_client)
    own_stack.processes["nats"].stop()
    began = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        await own_client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert caught.value.status_code == 503, "no bus: a clear 503, not a hang"
    assert time.monotonic() - began < 5
    own_stack.processes["nats"] = start_nats(
        own_stack.ports.nats, own_stack.log_dir, users=own_stack.bus_users
    )
    back = time.monotonic()
    while not await _answers(own_client):
        assert time.monotonic() - back < 5, "the gateway did not recover within 5 s of NATS coming back"
        await asyncio.sleep(0.1)


async def test_keys_seen_before_keep_working_while_redis_is_down(
    own_stack: Stack, own_client: openai.AsyncOpenAI
) -> None:
    assert await _answers(own_client)  # the edge has this key in its cache now
    own_stack.processes["redis"].stop()
    try:
        assert await _answers(own_client), "a cached key does not need Redis"
        async with openai.AsyncOpenAI(
            base_url=f"{own_stack.base_url}/v1", api_key="sk-never-seen", max_retries=0, timeout=10
        ) as stranger:
            with pytest.raises(openai.APIStatusError) as caught:
                await stranger.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert caught.value.status_code == 503, "an unknown key cannot be checked: 503, not 401"
    finally:
        own_stack.processes["redis"] = start_redis(own_stack.ports.redis, own_stack.log_dir)

    # Redis came back empty: auth writes the config's keys again, and a key that the
    # edge never cached is accepted once more.
    async with openai.AsyncOpenAI(
        base_url=f"{own_stack.base_url}/v1", api_key="sk-test-second", max_retries=0, timeout=10
    ) as second:
        for _ in range(50):
            if await _answers(second):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the config's keys did not come back after Redis restarted empty")


async def _load(key: str, base_url: str, until: asyncio.Event, outcomes: dict[str, int]) -> None:
    """Requests one after another until told to stop, counted by outcome."""
    async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=15) as c:
        while not until.is_set():
            try:
                await c.chat.completions.create(model="gpt-4o-mini", messages=USER)
                outcome = "ok"
            except openai.AuthenticationError:
                outcome = "refused"
            except openai.APIStatusError as exc:
                outcome = f"error {exc.status_code}"
            except openai.APITimeoutError:
                outcome = "hung"
            if outcome != "ok":
                outcome = f"{outcome} ({key[:12]}…)"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome != "ok":
                await asyncio.sleep(0.05)


async def test_no_valid_key_is_ever_refused_when_redis_pauses_or_restarts_empty(own_stack: Stack) -> None:
    management = {"x-management-key": MANAGEMENT_KEY}
    async with httpx.AsyncClient(base_url=own_stack.base_url, headers=management, timeout=10) as admin:
        # The test before restarted Redis: auth's connection to it may still be coming back
        # (a clean 503 meanwhile).
        began = time.monotonic()
        while (created := await admin.post("/v1/keys", json={"name": "made-at-run-time"})).status_code == 503:
            assert time.monotonic() - began < 10, created.text
            await asyncio.sleep(0.2)
        assert created.status_code in (200, 201), created.text
        runtime_key = created.json()["key"]
    until = asyncio.Event()
    outcomes: dict[str, int] = {}
    # The config's own key, from eight clients at once, while Redis freezes for a second,
    # then dies and comes back empty.
    load = [asyncio.create_task(_load(CLIENT_KEY, own_stack.base_url, until, outcomes)) for _ in range(8)]
    redis = own_stack.processes["redis"]
    await asyncio.sleep(0.5)
    assert redis.popen is not None
    redis.popen.send_signal(signal.SIGSTOP)
    await asyncio.sleep(1)
    redis.popen.send_signal(signal.SIGCONT)
    await asyncio.sleep(0.5)
    redis.stop()
    await asyncio.sleep(0.5)
    own_stack.processes["redis"] = start_redis(own_stack.ports.redis, own_stack.log_dir)
    # Then two keys the edge has never checked: another of the config's, and one made at
    # run time, whose record went with Redis's data.
    load += [
        asyncio.create_task(_load(key, own_stack.base_url, until, outcomes))
        for key in ("sk-test-second", runtime_key)
        for _ in range(8)
    ]
    await asyncio.sleep(3)
    until.set()
    await asyncio.gather(*load)
    assert not [o for o in outcomes if o.startswith(("refused", "hung"))], outcomes
    assert outcomes.get("ok", 0) > 50, outcomes
    async with openai.AsyncOpenAI(
        base_url=f"{own_stack.base_url}/v1", api_key=runtime_key, max_retries=0, timeout=10
    ) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert "still there?" in (completion.choices[0].message.content or ""), outcomes
