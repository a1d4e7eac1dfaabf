"""Both client APIs over every adapter family, through the whole running gateway.

{openai SDK, anthropic SDK} x {openai, claude, gemini, copilot, kiro} x {whole, stream} x
{text, tool call round trip, image}: each case checks the content, the finish reason and
the usage the client sees, not only a 200. Every family has its own worker and its own
mock upstream, which answers in the family's wire format from one shared script: the
text echoes the last user message, a tool is called when tools are offered, a tool result
is echoed back, and the images seen are listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest

pytestmark = pytest.mark.e2e

MODELS = {
    "openai": "gpt-4o-mini",
    "claude": "claude/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
    "copilot": "copilot/gpt-4.1",
    "kiro": "kiro/claude-sonnet-4-5",
}
# A 1x1 PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _mock_tokens(text: str) -> int:
    """The mock upstream's token count (see its script)."""
    return max(1, (len(text) + 3) // 4)


@dataclass
class Seen:
    """What a client saw of one answer, in neutral terms."""

    text: str = ""
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """(id, name, arguments) of each tool call."""
    finish: str = ""
    """OpenAI's vocabulary; the Anthropic client's stop reasons are mapped to it."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


_ANTHROPIC_STOP = {
    "end_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


async def _ask_openai(client: openai.AsyncOpenAI, model: str, stream: bool, **kwargs: Any) -> Seen:
    seen = Seen()
    if not stream:
        completion = await client.chat.completions.create(model=model, **kwargs)
        choice = completion.choices[0]
        seen.text = choice.message.content or ""
        for call in choice.message.tool_calls or []:
            assert call.type == "function"
            seen.calls.append((call.id, call.function.name, json.loads(call.function.arguments)))
        seen.finish = choice.finish_reason
        assert completion.usage is not None
        seen.prompt_tokens = completion.usage.prompt_tokens
        seen.completion_tokens = completion.usage.completion_tokens
        return seen
    chunks = await client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True}, **kwargs
    )
    calls: dict[int, list[str]] = {}
    async for chunk in chunks:
        if chunk.usage is not None:
            seen.prompt_tokens = chunk.usage.prompt_tokens
            seen.completion_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            seen.text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, ["", "", ""])
                entry[0] = call.id or entry[0]
                if call.function is not None:
                    entry[1] = call.function.name or entry[1]
                    entry[2] += call.function.arguments or ""
            seen.finish = choice.finish_reason or seen.finish
    seen.calls = [(i, n, json.loads(a)) for i, n, a in (calls[k] for k in sorted(calls))]
    return seen


async def _ask_anthropic(client: anthropic.AsyncAnthropic, model: str, stream: bool, **kwargs: Any) -> Seen:
    if stream:
        async with client.messages.stream(model=model, max_tokens=256, **kwargs) as events:
            message = await events.get_final_message()
    else:
        message = await client.messages.create(model=model, max_tokens=256, **kwargs)
    seen = Seen()
    for block in message.content:
        if block.type == "text":
            seen.text += block.text
        elif block.type == "tool_use":
            assert isinstance(block.input, dict)
            seen.calls.append((block.id, block.name, block.input))
    seen.finish = _ANTHROPIC_STOP[message.stop_reason or ""]
    usage = message.usage
    seen.prompt_tokens = usage.input_tokens + (usage.cache_read_input_tokens or 0)
    seen.completion_tokens = usage.output_tokens
    return seen


def _check_system_and_text(seen: Seen, family: str) -> None:
    if family == "kiro":
        # Kiro has no system field: the system prompt leads the first user turn.
        assert seen.text == "Mock answer to: Be brief.\n\nHello there"
    else:
        assert seen.text == "Mock answer to: Hello there"


def _check_usage(seen: Seen, family: str) -> None:
    assert seen.prompt_tokens > 0
    if family == "kiro":
        # Kiro reports no token counts: the gateway estimates them.
        assert seen.completion_tokens > 0
    else:
        expected = _mock_tokens(seen.text) if seen.text else None
        if expected is not None:
            assert seen.completion_tokens == expected
        else:
            assert seen.completion_tokens > 0


FAMILY_IDS = list(MODELS)
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
FAMILY = pytest.mark.parametrize("family", FAMILY_IDS)


@FAMILY
@STREAM
async def test_openai_client_gets_text(client: openai.AsyncOpenAI, family: str, stream: bool) -> None:
    seen = await _ask_openai(
        client,
        MODELS[family],
        stream,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
    )
    _check_system_and_text(seen, family)
    assert seen.finish == "stop"
    assert seen.calls == []
    _check_usage(seen, family)


@FAMILY
@STREAM
async def test_anthropic_client_gets_text(
    claude_client: anthropic.AsyncAnthropic, family: str, stream: bool
) -> None:
    seen = await _ask_anthropic(
        claude_client,
        MODELS[family],
        stream,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello there"}],
    )
    _check_system_and_text(seen, family)
    assert seen.finish == "stop"
    _check_usage(seen, family)


@FAMILY
@STREAM
async def test_openai_client_round_trips_a_tool_call(
    client: openai.AsyncOpenAI, family: str, stream: bool
) -> None:
    tools: Any = [{"type": "function", "function": WEATHER}]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await _ask_openai(client, MODELS[family], stream, messages=messages, tools=tools)
    assert first.finish == "tool_calls"
    assert [(name, args) for _, name, args in first.calls] == [("get_weather", {"city": "mock"})]
    call_id = first.calls[0][0]
    assert call_id
    _check_usage(first, family)
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps(first.calls[0][2])},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"},
    ]
    second = await _ask_openai(client, MODELS[family], stream, messages=messages, tools=tools)
    assert second.text == "Tool said: sunny, 21C"
    assert second.finish == "stop"
    _check_usage(second, family)


@FAMILY
@STREAM
async def test_anthropic_client_round_trips_a_tool_call(
    claude_client: anthropic.AsyncAnthropic, family: str, stream: bool
) -> None:
    tools: Any = [
        {
            "name": WEATHER["name"],
            "description": WEATHER["description"],
            "input_schema": WEATHER["parameters"],
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await _ask_anthropic(claude_client, MODELS[family], stream, messages=messages, tools=tools)
    assert first.finish == "tool_calls"
    assert [(name, args) for _, name, args in first.calls] == [("get_weather", {"city": "mock"})]
    call_id = first.calls[0][0]
    messages += [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call_id, "name": "get_weather", "input": first.calls[0][2]}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny, 21C"}],
        },
    ]
    second = await _ask_anthropic(claude_client, MODELS[family], stream, messages=messages, tools=tools)
    assert second.text == "Tool said: sunny, 21C"
    assert second.finish == "stop"
    _check_usage(second, family)


@FAMILY
@STREAM
async def test_openai_client_sends_an_image(client: openai.AsyncOpenAI, family: str, stream: bool) -> None:
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    seen = await _ask_openai(client, MODELS[family], stream, messages=[{"role": "user", "content": content}])
    assert seen.text == "Mock answer to: What is this? [images: image/png]"
    assert seen.finish == "stop"
    _check_usage(seen, family)


@FAMILY
@STREAM
async def test_anthropic_client_sends_an_image(
    claude_client: anthropic.AsyncAnthropic, family: str, stream: bool
) -> None:
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]
    seen = await _ask_anthropic(
        claude_client, MODELS[family], stream, messages=[{"role": "user", "content": content}]
    )
    assert seen.text == "Mock answer to: What is this? [images: image/png]"
    assert seen.finish == "stop"
    _check_usage(seen, family)
