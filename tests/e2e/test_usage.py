"""Usage end to end: requests made with the openai SDK (answered, streamed and refused by
the upstream) each leave one record on the usage stream, carrying the response's
`x-request-id` and the request's trace id, and `GET /v1/usage` shows them by key,
provider, credential and model once auth's replicas have read the stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2 as httpx
import nats
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmbus.proto import USAGE_REQUESTS, USAGE_STREAM, RequestRecord
from llmbus.testing import Stack
from tests.e2e.conftest import MANAGEMENT_KEY

pytestmark = pytest.mark.e2e

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "count my usage"}]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
async def management(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"x-management-key": MANAGEMENT_KEY}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=10) as client:
        yield client


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(0.1)


async def _records(nats_url: str, request_ids: set[str], timeout: float = 15.0) -> dict[str, RequestRecord]:
    """The usage records of `request_ids`, read from the stream itself (the newest
    records first)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    found: dict[str, RequestRecord] = {}
    began = time.monotonic()
    try:
        while True:
            last = (await js.stream_info(USAGE_STREAM)).state.last_seq
            for sequence in range(last, max(0, last - 2000), -1):
                try:
                    message = await js.get_msg(USAGE_STREAM, sequence)
                except nats.js.errors.NotFoundError:
                    continue
                for record in USAGE_REQUESTS.codec.decode(message.data or b"").records:
                    if record.request_id in request_ids:
                        found[record.request_id] = record
            if set(found) == request_ids or time.monotonic() - began > timeout:
                return found
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def test_requests_are_recorded_with_their_ids_and_counted_by_every_dimension(
    stack: Stack, nats_url: str, management: httpx.AsyncClient
) -> None:
    created = (await management.post("/v1/keys", json={"name": "e2e-usage"})).json()
    key_id = created["id"]
    async with openai.AsyncOpenAI(
        base_url=f"{stack.base_url}/v1", api_key=created["key"], max_retries=0
    ) as client:
        answered = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=USER,
            extra_headers={"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"},
        )
        answer = answered.parse()
        streamed = await client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        async for _ in streamed:
            pass
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model="fail-400", messages=USER)
    ok_id = answered.headers["x-request-id"]
    failed_id = refused.value.response.headers["x-request-id"]

    records = await _records(nats_url, {ok_id, failed_id})
    ok, failed = records[ok_id], records[failed_id]
    assert ok.trace_id == TRACE_ID
    assert len(failed.trace_id) == 32
    assert (ok.key_id, ok.model, ok.status, ok.error, ok.api, ok.stream) == (
        key_id,
        "gpt-4o-mini",
        200,
        "",
        "openai",
        False,
    )
    assert answer.usage is not None
    assert (ok.input_tokens, ok.output_tokens) == (answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert ok.provider
    assert ok.upstream_model
    assert len(ok.credential) == 16
    assert ok.latency_ms > 0
    assert (failed.key_id, failed.model, failed.status) == (key_id, "fail-400", 400)
    assert failed.error

    async def rows(by: str) -> dict[str, dict[str, Any]]:
        response = await management.get("/v1/usage", params={"by": by, "days": "1"})
        assert response.status_code == 200, response.text
        document = response.json()
        assert (document["object"], document["by"], document["days"]) == ("usage", by, 1)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        return {row["group"]: row for row in document["data"] if row["day"] == today}

    async def counted() -> bool:
        mine = (await rows("key")).get(key_id)
        return mine is not None and mine["requests"] == 3

    await _eventually(counted)
    by_key = (await rows("key"))[key_id]
    assert by_key["errors"] == 1
    assert by_key["input_tokens"] >= 2 * ok.input_tokens > 0
    by_model = await rows("model")
    assert by_model["gpt-4o-mini"]["requests"] >= 2
    assert by_model["fail-400"]["errors"] >= 1
    assert (await rows("provider"))[ok.provider]["requests"] >= 1
    assert (await rows("credential"))[ok.credential]["requests"] >= 1


async def test_a_usage_query_beyond_the_retention_is_a_400_in_openai_format(
    management: httpx.AsyncClient,
) -> None:
    response = await management.get("/v1/usage", params={"by": "model", "days": "91"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_days")
    assert "1 to 90" in error["message"]
