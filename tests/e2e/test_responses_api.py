"""The OpenAI Responses API (`/v1/responses`) through the whole running gateway, with the
official openai SDK's `client.responses`, over every adapter family, whole and streamed:
text, a function call and its output sent back with `previous_response_id`, images,
`max_output_tokens` (an incomplete response), usage, stored responses (read, deleted,
another key's unknown), the store switched off, and errors in OpenAI's format.

The mock upstream answers from one shared script (see `tests/e2e/test_families.py`)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from openai.types.responses import Response

from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY
from tests.e2e.test_deadlines import _all_aborted
from tests.e2e.test_failover import MockRecords
from tests.e2e.test_families import MODELS, PNG, WEATHER, _mock_tokens

pytestmark = pytest.mark.e2e

FAMILY = pytest.mark.parametrize("family", list(MODELS))
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
SECOND_KEY = "sk-test-second"
"""The config's other client key (tests/e2e/config.yaml)."""
TOOL: Any = {"type": "function", "strict": None, **WEATHER}


@dataclass
class Seen:
    """A response as the client got it, and (streamed) the events' types in order."""

    response: Response
    events: list[str] = field(default_factory=list)
    text_deltas: str = ""
    argument_deltas: str = ""


async def _create(client: openai.AsyncOpenAI, stream: bool, **kwargs: Any) -> Seen:
    if not stream:
        return Seen(await client.responses.create(**kwargs))
    events = await client.responses.create(stream=True, **kwargs)
    seen: list[Any] = [event async for event in events]
    numbers = [event.sequence_number for event in seen]
    assert numbers == list(range(len(seen))), "sequence numbers count up from 0"
    types = [event.type for event in seen]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert seen[0].response.status == "in_progress"
    last = seen[-1]
    assert last.type in ("response.completed", "response.incomplete", "response.failed")
    result = Seen(last.response, types)
    for event in seen:
        if event.type == "response.output_text.delta":
            result.text_deltas += event.delta
        elif event.type == "response.function_call_arguments.delta":
            result.argument_deltas += event.delta
    return result


def _check_usage(response: Response, family: str) -> None:
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens >= 0
    assert usage.output_tokens_details.reasoning_tokens >= 0
    if family != "kiro" and response.output_text:  # Kiro reports no counts: estimated
        assert usage.output_tokens == _mock_tokens(response.output_text)


@FAMILY
@STREAM
async def test_text_with_instructions(client: openai.AsyncOpenAI, family: str, stream: bool) -> None:
    seen = await _create(client, stream, model=MODELS[family], instructions="Be brief.", input="Hello there")
    response = seen.response
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.incomplete_details is None
    assert response.model == MODELS[family]
    assert response.instructions == "Be brief."
    expected = (
        "Mock answer to: Be brief.\n\nHello there" if family == "kiro" else "Mock answer to: Hello there"
    )
    assert response.output_text == expected
    [message] = response.output
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.status == "completed"
    assert message.id.startswith("msg_")
    _check_usage(response, family)
    if stream:
        assert seen.text_deltas == expected
        assert seen.events[2:4] == ["response.output_item.added", "response.content_part.added"]
        assert seen.events[-5:] == [
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]


@FAMILY
@STREAM
async def test_function_call_round_trip_with_previous_response_id(
    client: openai.AsyncOpenAI, family: str, stream: bool
) -> None:
    first = await _create(client, stream, model=MODELS[family], input="Weather in Paris?", tools=[TOOL])
    response = first.response
    assert response.status == "completed"
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "mock"})]
    call = calls[0]
    assert call.call_id
    assert call.id
    assert call.id.startswith("fc_")
    assert response.tools[0].type == "function"
    _check_usage(response, family)
    if stream:
        assert json.loads(first.argument_deltas) == {"city": "mock"}
        assert "response.function_call_arguments.done" in first.events

    second = await _create(
        client,
        stream,
        model=MODELS[family],
        previous_response_id=response.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}],
        tools=[TOOL],
    )
    assert second.response.previous_response_id == response.id
    assert second.response.output_text == "Tool said: sunny, 21C"
    assert second.response.status == "completed"
    _check_usage(second.response, family)


@FAMILY
async def test_function_call_output_in_full_input(client: openai.AsyncOpenAI, family: str) -> None:
    """Without the store (`store: false`), as Codex CLI sends it: the whole conversation."""
    first = await client.responses.create(
        model=MODELS[family], input="Weather in Paris?", tools=[TOOL], store=False
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    second = await client.responses.create(
        model=MODELS[family],
        store=False,
        tools=[TOOL],
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ],
    )
    assert second.output_text == "Tool said: rain"
    assert second.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)


@FAMILY
@STREAM
async def test_image_input(client: openai.AsyncOpenAI, family: str, stream: bool) -> None:
    content: Any = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
    ]
    seen = await _create(client, stream, model=MODELS[family], input=[{"role": "user", "content": content}])
    assert seen.response.output_text == "Mock answer to: What is this? [images: image/png]"
    _check_usage(seen.response, family)


@FAMILY
@STREAM
async def test_max_output_tokens_makes_an_incomplete_response(
    client: openai.AsyncOpenAI, family: str, stream: bool
) -> None:
    seen = await _create(
        client, stream, model=MODELS[family], input="Tell me a long story please", max_output_tokens=2
    )
    response = seen.response
    full = "Mock answer to: Tell me a long story please"
    if family == "kiro":
        # Kiro's API has no output limit: the gateway leaves it out, the answer is whole.
        assert response.status == "completed"
        assert response.output_text == full
        return
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 2
    assert full.startswith(response.output_text)
    assert len(response.output_text) < len(full)
    if stream:
        assert seen.events[-1] == "response.incomplete"


async def test_codex_fields_are_accepted(client: openai.AsyncOpenAI) -> None:
    """What Codex CLI sends besides the conversation is taken, never refused."""
    response = await client.responses.create(
        model=MODELS["openai"],
        instructions="You are a coding agent.",
        input=[
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "Be terse."}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]},
        ],
        tools=[TOOL, {"type": "web_search"}],
        tool_choice="auto",
        parallel_tool_calls=False,
        reasoning={"summary": "auto"},
        store=False,
        include=["reasoning.encrypted_content"],
        prompt_cache_key="session-1",
        service_tier="auto",
        truncation="disabled",
        metadata={"session": "1"},
        user="someone",
        safety_identifier="someone-hashed",
        text={"verbosity": "low"},
    )
    assert response.status == "completed"
    [call] = [item for item in response.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert response.parallel_tool_calls is False
    assert response.reasoning is not None
    assert response.reasoning.summary == "auto"
    assert response.metadata == {"session": "1"}
    assert response.prompt_cache_key == "session-1"


async def test_structured_output_format_is_echoed(client: openai.AsyncOpenAI) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    text: Any = {"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}}
    response = await client.responses.create(
        model=MODELS["openai"],
        input="Hello there",
        text=text,
    )
    assert response.status == "completed"
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"


async def test_stored_response_is_read_and_deleted(client: openai.AsyncOpenAI, stack: Stack) -> None:
    created = await client.responses.create(model=MODELS["openai"], input="Hello there")
    read = await client.responses.retrieve(created.id)
    assert read.id == created.id
    assert read.output_text == "Mock answer to: Hello there"
    assert read.usage == created.usage

    # Another client key does not see it.
    async with openai.AsyncOpenAI(
        base_url=f"{stack.base_url}/v1", api_key=SECOND_KEY, max_retries=0
    ) as stranger:
        with pytest.raises(openai.NotFoundError):
            await stranger.responses.retrieve(created.id)
        with pytest.raises(openai.BadRequestError) as refused:
            await stranger.responses.create(
                model=MODELS["openai"], input="again", previous_response_id=created.id
            )
        assert refused.value.code == "previous_response_not_found"

    await client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as gone:
        await client.responses.retrieve(created.id)
    assert gone.value.code == "response_not_found"


async def test_unknown_previous_response_id_is_a_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(model=MODELS["openai"], input="hi", previous_response_id="resp_nope")
    assert refused.value.code == "previous_response_not_found"
    assert refused.value.param == "previous_response_id"
    assert "resp_nope" in refused.value.message


async def test_errors_are_in_openais_format(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        await client.responses.create(model="no-such-model", input="hi")
    assert isinstance(unknown.value.body, dict)
    assert unknown.value.body.get("message")
    with pytest.raises(openai.BadRequestError) as bad:
        await client.responses.create(
            model=MODELS["openai"], input=[{"type": "item_reference", "id": "msg_1"}]
        )
    assert bad.value.param == "input[0].type"
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model=MODELS["openai"], input=[])


async def test_a_failure_mid_stream_ends_with_response_failed(client: openai.AsyncOpenAI) -> None:
    """The mock's `midstream-error` scenario model breaks the stream after its first bytes."""
    events = await client.responses.create(model="midstream-error", input="hello", stream=True)
    seen = [event async for event in events]
    assert seen[0].type == "response.created"
    assert seen[-1].type == "response.failed"
    assert seen[-1].response.status == "failed"
    assert seen[-1].response.error is not None
    assert seen[-1].response.error.message


async def test_store_switched_off(client: openai.AsyncOpenAI, stack: Stack, config_file: Path) -> None:
    original = _read(config_file)
    created = await client.responses.create(model=MODELS["openai"], input="Hello there")
    try:
        _write(config_file, original + "\nresponses:\n  store: false\n")
        _reload_auth(stack)

        async def refused() -> bool:
            try:
                await client.responses.create(
                    model=MODELS["openai"], input="again", previous_response_id=created.id
                )
            except openai.BadRequestError as exc:
                return exc.code == "response_store_disabled"
            return False

        await _eventually(refused, timeout=5)
        # Answers go on; nothing is kept.
        answer = await client.responses.create(model=MODELS["openai"], input="Hello there")
        assert answer.output_text == "Mock answer to: Hello there"
        with pytest.raises(openai.BadRequestError) as off:
            await client.responses.retrieve(answer.id)
        assert off.value.code == "response_store_disabled"
    finally:
        _write(config_file, original)
        _reload_auth(stack)

    async def back() -> bool:
        try:
            await client.responses.retrieve(created.id)
        except openai.BadRequestError:
            return False
        return True

    await _eventually(back, timeout=5)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.2)


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, text: str) -> None:
    path.write_text(text)


@pytest.mark.parametrize("family", ["claude", "gemini"])
async def test_reasoning_effort_reaches_a_target_that_thinks(client: openai.AsyncOpenAI, family: str) -> None:
    response = await client.responses.create(
        model=MODELS[family], input="Hello there", reasoning={"effort": "low", "summary": "auto"}
    )
    assert response.status == "completed"
    assert response.output_text == "Mock answer to: Hello there"
    assert response.reasoning is not None
    assert response.reasoning.effort == "low"


@FAMILY
@STREAM
async def test_custom_tool_round_trip(client: openai.AsyncOpenAI, family: str, stream: bool) -> None:
    """Codex CLI's `apply_patch` is a custom tool: free-form input, no JSON schema."""
    patch: Any = {
        "type": "custom",
        "name": "apply_patch",
        "description": "Applies a patch",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
    }
    first = await _create(client, stream, model=MODELS[family], input="Patch the file", tools=[patch])
    [call] = first.response.output
    assert call.type == "custom_tool_call"
    assert call.name == "apply_patch"
    assert call.input == "mock"
    if stream:
        assert "response.custom_tool_call_input.done" in first.events
    second = await _create(
        client,
        stream,
        model=MODELS[family],
        previous_response_id=first.response.id,
        input=[{"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"}],
        tools=[patch],
    )
    assert second.response.output_text == "Tool said: Done!"


N = 6


@pytest.fixture
async def mock(stack: Stack) -> MockRecords:
    records = MockRecords(stack)
    await records.reset()
    return records


async def test_clients_that_give_up_before_the_first_byte_cancel_their_upstream_calls(
    stack: Stack, mock: MockRecords
) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{stack.base_url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=0.5
    ) as impatient:

        async def ask() -> str:
            try:
                await impatient.responses.create(model="dl-hang-open", input="hello")
            except openai.APITimeoutError:
                return "timed out"
            return "answered"

        outcomes = await asyncio.gather(*(ask() for _ in range(N)))
    assert outcomes == ["timed out"] * N
    await _all_aborted(mock, "hang", N, within=1.5)


async def test_clients_that_go_away_mid_stream_cancel_their_upstream_calls(
    stack: Stack, mock: MockRecords
) -> None:
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=10
    ) as http:

        async def read_then_leave() -> None:
            body = {"model": "dl-trickle", "input": "hello", "stream": True}
            async with http.stream("POST", "/v1/responses", json=body) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line == "event: response.output_text.delta":
                        return  # the answer is under way; leave

        await asyncio.gather(*(read_then_leave() for _ in range(N)))
    assert len(await mock.sent(model="trickle")) == N
    await _all_aborted(mock, "trickle", N, within=1.5)


def _reload_auth(stack: Stack) -> None:
    """Every auth replica reads the config again."""
    for name, process in stack.processes.items():
        if name == "auth" or name.startswith("auth-"):
            process.signal(signal.SIGHUP)
