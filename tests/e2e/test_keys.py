"""Client keys at run time, end to end: a key created through the management API serves
requests through the openai SDK, its usage is counted, and once revoked it is refused by
every edge within a second; the management API refuses calls without the right key.

(The lockout after five wrong keys is tested in-process, in
tests/integration/test_keys_api.py: here it would lock the shared stack's tests out.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx2 as httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmbus.testing import Stack, free_port
from tests.e2e.conftest import MANAGEMENT_KEY

pytestmark = pytest.mark.e2e

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
MANAGED = {"x-management-key": MANAGEMENT_KEY}


@pytest.fixture(scope="module")
def second_edge(stack: Stack) -> Iterator[str]:
    """Another edge on the same stack: a revocation must reach it too."""
    port = free_port()
    process = stack.start_service("edge-2", "edge", {"LLMBUS_PORT": str(port), "LLMBUS_HOST": "127.0.0.1"})
    try:
        stack.wait_ready("edge-2")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
        stack.processes.pop("edge-2", None)


@pytest.fixture
async def management(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, headers=MANAGED, timeout=10) as client:
        yield client


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> float:
    """Seconds until `check()` holds; fails after `timeout`."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


def _sdk(base_url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=20)


async def test_a_created_key_works_is_counted_and_once_revoked_every_edge_refuses_it_within_a_second(
    stack: Stack, second_edge: str, management: httpx.AsyncClient
) -> None:
    created = (await management.post("/v1/keys", json={"name": "e2e-runtime", "max_tokens": 256})).json()
    key, key_id = created["key"], created["id"]
    edges = [_sdk(stack.base_url, key), _sdk(second_edge, key)]
    for edge in edges:
        answer = await edge.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert answer.choices[0].message.content

    async def counted() -> bool:
        usage = (await management.get(f"/v1/keys/{key_id}/usage")).json()
        return bool(usage["total"]["requests"] == 2 and usage["by_model"]["gpt-4o-mini"]["input_tokens"] > 0)

    await _eventually(counted, timeout=5)

    revoked = await management.delete(f"/v1/keys/{key_id}")
    assert revoked.status_code == 200
    for edge in edges:

        async def refused(edge: openai.AsyncOpenAI = edge) -> bool:
            try:
                await edge.models.list()
            except openai.AuthenticationError:
                return True
            return False

        assert await _eventually(refused, timeout=1.0) < 1.0
    for edge in edges:
        await edge.close()


async def test_the_list_never_shows_a_key(management: httpx.AsyncClient) -> None:
    created = (await management.post("/v1/keys", json={"name": "listed"})).json()
    listing = await management.get("/v1/keys")
    assert created["id"] in {k["id"] for k in listing.json()["data"]}
    assert created["key"] not in listing.text
    assert "sk-test-client" not in listing.text


async def test_management_calls_are_refused_without_the_right_key(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        missing = await http.post("/v1/keys", json={})
        assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_management_key")
        with_client_key = await http.get("/v1/keys", headers={"Authorization": "Bearer sk-test-client"})
        assert (with_client_key.status_code, with_client_key.json()["error"]["code"]) == (
            403,
            "invalid_management_key",
        )
        # One wrong key, then the right one: the right key resets this source's count, so
        # the other tests on the shared stack are not pushed towards a lockout.
        assert (await http.get("/v1/keys", headers=MANAGED)).status_code == 200


async def test_a_stream_that_ends_at_its_finish_is_still_counted_with_its_tokens(
    stack: Stack, management: httpx.AsyncClient
) -> None:
    """Without `include_usage` the client's stream ends at the finish reason; the edge
    still reads the upstream's usage that follows, and counts it."""
    created = (await management.post("/v1/keys", json={"name": "e2e-stream-usage"})).json()
    async with _sdk(stack.base_url, created["key"]) as client:
        chunks = await client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    assert text == "Mock answer to: hello"

    async def counted() -> bool:
        usage = (await management.get(f"/v1/keys/{created['id']}/usage")).json()
        model = usage["by_model"].get("gpt-4o-mini", {})
        return bool(model.get("requests") == 1 and model.get("output_tokens", 0) > 0)

    await _eventually(counted, timeout=5)
    await management.delete(f"/v1/keys/{created['id']}")
