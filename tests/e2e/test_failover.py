"""Failover on real processes under concurrent load: a retryable failure before the first
byte (an upstream 5xx, a hang past the provider's first-byte timeout) moves a request to
the next credential, then the next provider, then a fallback model, and the client never
sees it; the trace does. A 400 comes back at once; the retry budget bounds the calls.

Every run counts what each request came to: succeeded, a clean error (an HTTP error in
the client's format, or an error event in a stream), hung (no end within the bound), or
broken (anything else). Hung and broken must be 0."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2 as httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmbus.testing import Stack
from tests.e2e.otlp import CollectedSpan, OtlpReceiver

pytestmark = pytest.mark.e2e

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "fail me over"}]
CONCURRENCY = 16
BOUND = 15.0
"""Seconds after which a request counts as hung."""


@dataclass
class Outcomes:
    succeeded: int = 0
    errors: Counter[int] = field(default_factory=Counter)
    """Clean errors by status (an error event in a stream counts under its status, or 0)."""
    hung: int = 0
    broken: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def clean_errors(self) -> int:
        return sum(self.errors.values())

    def bounded(self) -> None:
        assert self.hung == 0, f"{self.hung} requests hung"
        assert self.broken == [], self.broken


async def _one_openai(
    client: openai.AsyncOpenAI, model: str, stream: bool, headers: dict[str, str] | None
) -> str:
    if stream:
        text = []
        response = await client.chat.completions.create(
            model=model, messages=USER, stream=True, extra_headers=headers
        )
        async with response:
            async for chunk in response:
                if chunk.choices:
                    text.append(chunk.choices[0].delta.content or "")
        return "".join(text)
    completion = await client.chat.completions.create(model=model, messages=USER, extra_headers=headers)
    return completion.choices[0].message.content or ""


async def run_many(
    one: Callable[[bool], Awaitable[str]], n: int = CONCURRENCY, bound: float = BOUND
) -> Outcomes:
    """`n` requests at once, half of them streamed, each counted by what it came to."""
    outcomes = Outcomes()
    loop = asyncio.get_running_loop()

    async def attempt(i: int) -> None:
        began = loop.time()
        try:
            async with asyncio.timeout(bound):
                text = await one(i % 2 == 1)
        except TimeoutError:
            outcomes.hung += 1
            return
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            outcomes.errors[exc.status_code] += 1
        except (openai.APIConnectionError, anthropic.APIConnectionError) as exc:
            outcomes.broken.append(f"{type(exc).__name__}: {exc}")
        except (openai.APIError, anthropic.APIError) as exc:
            # An error event inside a stream that had started.
            body = exc.body if isinstance(exc.body, dict) else {}
            outcomes.errors[int(body.get("status", 0) or 0)] += 1
        except Exception as exc:
            outcomes.broken.append(f"{type(exc).__name__}: {exc}")
        else:
            outcomes.succeeded += 1
            outcomes.texts.append(text)
        outcomes.seconds.append(loop.time() - began)

    await asyncio.gather(*(attempt(i) for i in range(n)))
    return outcomes


def run_openai(
    client: openai.AsyncOpenAI,
    model: str,
    n: int = CONCURRENCY,
    headers: dict[str, str] | None = None,
    bound: float = BOUND,
) -> Awaitable[Outcomes]:
    return run_many(lambda stream: _one_openai(client, model, stream, headers), n, bound)


def fingerprint(key: str) -> str:
    """How the mock upstream names a key in its records."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class MockRecords:
    """What the mock upstream was sent, since the last reset."""

    def __init__(self, stack: Stack) -> None:
        self.url = stack.mock_url

    async def reset(self) -> None:
        async with httpx.AsyncClient(base_url=self.url) as mock:
            await mock.post("/__mock__/reset")

    async def all(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.url) as mock:
            records: list[dict[str, Any]] = (await mock.get("/__mock__/requests")).json()
        return records

    async def sent(self, *, model: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
        """The chat requests for upstream `model` and/or with `key`."""
        return [
            r
            for r in await self.all()
            if isinstance(r["body"], dict)
            and (model is None or r["body"].get("model") == model)
            and (key is None or r["key_fingerprint"] == fingerprint(key))
        ]


@pytest.fixture
async def mock(stack: Stack) -> MockRecords:
    records = MockRecords(stack)
    await records.reset()
    return records


async def test_a_key_the_upstream_fails_is_passed_over_unseen(
    client: openai.AsyncOpenAI, mock: MockRecords
) -> None:
    """fo-keys has two keys and the upstream fails one with 503: every request ends on
    the other one, whichever the plan tried first."""
    outcomes = await run_openai(client, "fo-keys")
    outcomes.bounded()
    assert outcomes.succeeded == CONCURRENCY, outcomes
    assert all("fail me over" in text for text in outcomes.texts)
    failed = await mock.sent(key="sk-error-503-fo-keys")
    answered = await mock.sent(key="sk-fo-keys-good")
    assert len(answered) == CONCURRENCY
    assert failed, "some requests started on the failing key (and moved on)"


async def test_a_provider_that_fails_hands_its_requests_to_the_next_one(
    client: openai.AsyncOpenAI, mock: MockRecords
) -> None:
    outcomes = await run_openai(client, "fo-provider")
    outcomes.bounded()
    assert outcomes.succeeded == CONCURRENCY, outcomes
    assert len(await mock.sent(model="error-500", key="sk-fo-first")) == CONCURRENCY
    assert len(await mock.sent(key="sk-fo-second")) == CONCURRENCY


async def test_an_upstream_that_hangs_fails_over_after_its_first_byte_timeout(
    client: openai.AsyncOpenAI, mock: MockRecords
) -> None:
    """fo-first hangs; its first-byte timeout is 1 s, well under the workers' read timeout
    (4 s here): each request is answered by fo-second after about a second."""
    outcomes = await run_openai(client, "fo-hang", n=8)
    outcomes.bounded()
    assert outcomes.succeeded == 8, outcomes
    assert max(outcomes.seconds) < 3.5, "the first-byte timeout, not the read timeout, moved them"
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        hung = await mock.sent(model="hang", key="sk-fo-first")
        if len(hung) == 8 and all(r["outcome"] == "aborted" for r in hung):
            break
        assert asyncio.get_running_loop().time() < deadline, f"hung upstream calls still held: {hung}"
        await asyncio.sleep(0.1)


async def test_a_400_comes_back_at_once_without_failover(
    client: openai.AsyncOpenAI, mock: MockRecords
) -> None:
    outcomes = await run_openai(client, "fo-bad-request")
    outcomes.bounded()
    assert outcomes.errors == Counter({400: CONCURRENCY}), outcomes
    assert len(await mock.sent(model="error-400")) == CONCURRENCY
    assert await mock.sent(key="sk-fo-second") == [], "a client's mistake is not retried elsewhere"


async def test_an_alias_over_a_pool_of_models_fails_over_inside_the_pool(
    client: openai.AsyncOpenAI, claude_client: anthropic.AsyncAnthropic, mock: MockRecords
) -> None:
    outcomes = await run_openai(client, "fo-pool")
    outcomes.bounded()
    assert outcomes.succeeded == CONCURRENCY, outcomes

    async def one_anthropic(stream: bool) -> str:
        messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "fail me over"}]
        if stream:
            async with claude_client.messages.stream(
                model="fo-pool", max_tokens=64, messages=messages
            ) as events:
                return "".join([text async for text in events.text_stream])
        message = await claude_client.messages.create(model="fo-pool", max_tokens=64, messages=messages)
        return "".join(block.text for block in message.content if block.type == "text")

    in_anthropic = await run_many(one_anthropic)
    in_anthropic.bounded()
    assert in_anthropic.succeeded == CONCURRENCY, in_anthropic
    assert len(await mock.sent(model="error-503", key="sk-fo-first")) == 2 * CONCURRENCY
    assert len(await mock.sent(key="sk-fo-second")) == 2 * CONCURRENCY


async def test_a_fallback_model_answers_when_the_model_cannot(
    client: openai.AsyncOpenAI, mock: MockRecords
) -> None:
    outcomes = await run_openai(client, "fo-fallback")
    outcomes.bounded()
    assert outcomes.succeeded == CONCURRENCY, outcomes
    rescued = await mock.sent(model="gpt-4o-mini", key="sk-fo-second")
    assert len(rescued) == CONCURRENCY, "fo-rescue, the fallback, answered each"


async def test_the_retry_budget_bounds_the_upstream_calls_of_a_request(
    client: openai.AsyncOpenAI, mock: MockRecords
) -> None:
    """fo-budget's five keys all fail: each request makes `routing.max_attempts` (3)
    calls, then ends with a clean 502."""
    outcomes = await run_openai(client, "fo-budget", n=8)
    outcomes.bounded()
    assert outcomes.errors == Counter({502: 8}), outcomes
    assert len(await mock.sent(model="fo-budget")) == 3 * 8


async def _exec_spans(otlp: OtlpReceiver, trace_id: str, providers: set[str]) -> dict[str, CollectedSpan]:
    """The workers' spans of the trace's exec messages, by provider, once there is one for
    each of `providers` (or whatever arrived within 10 s)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        spans = {
            str(s.attributes.get("llmbus.provider")): s
            for s in otlp.trace(trace_id)
            if s.name.startswith("process llm.v1.exec")
        }
        if providers <= set(spans) or asyncio.get_running_loop().time() > deadline:
            return spans
        await asyncio.sleep(0.1)


async def test_failover_is_visible_in_the_trace(client: openai.AsyncOpenAI, otlp: OtlpReceiver) -> None:
    trace_id = secrets.token_hex(16)
    completion = await client.chat.completions.create(
        model="fo-provider",
        messages=USER,
        extra_headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert "fail me over" in (completion.choices[0].message.content or "")
    spans = await _exec_spans(otlp, trace_id, {"fo-first", "fo-second"})
    assert {"fo-first", "fo-second"} <= set(spans), sorted(spans)
    failed, answered = spans["fo-first"], spans["fo-second"]
    assert failed.attributes["llmbus.attempt"] == 1
    assert failed.attributes["llmbus.outcome"] == "failed"
    assert failed.attributes["llmbus.error"], "the upstream's error code"
    [(_name, event)] = [e for e in failed.events if e[0] == "llmbus.failover"]
    assert event["llmbus.next.provider"] == "fo-second"
    assert event["llmbus.next.attempt"] == 2
    assert event["llmbus.error"] == failed.attributes["llmbus.error"]
    assert answered.attributes["llmbus.attempt"] == 2
    assert answered.attributes["llmbus.outcome"] == "answered"
