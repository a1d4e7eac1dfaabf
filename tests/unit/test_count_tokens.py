"""The token estimate behind `/v1/messages/count_tokens`: ASCII characters / 4 plus
non-ASCII characters, over every part of a request that reaches the model."""

from __future__ import annotations

import json
from typing import Any

from llmbus.api import decode_count_tokens_request, estimate_tokens
from llmbus.api.tokens import IMAGE_TOKENS, MESSAGE_TOKENS, estimate_text
from llmbus.proto import ChatRequest, ImagePart, Message, TextPart, Tool, ToolCall


def count(**fields: Any) -> int:
    body = {"model": "claude-x", **fields}
    return estimate_tokens(decode_count_tokens_request(json.dumps(body).encode()))


def test_ascii_text_counts_one_token_per_four_characters_rounded_up() -> None:
    assert estimate_text("") == 0
    assert estimate_text("abcd") == 1
    assert estimate_text("abcde") == 2
    assert estimate_text("x" * 400) == 100


def test_each_non_ascii_character_counts_as_one_token() -> None:
    assert estimate_text("日本語") == 3
    assert estimate_text("abcd日本") == 3
    assert estimate_text("héllo") == 2  # "hllo" is one token, "é" another


def test_ascii_is_pooled_across_the_request_before_rounding() -> None:
    one = ChatRequest(
        model="m", messages=[Message(role="user", content="ab"), Message(role="user", content="cd")]
    )
    assert estimate_tokens(one) == 2 * MESSAGE_TOKENS + 1


def test_system_messages_and_framing_are_counted() -> None:
    assert count(messages=[{"role": "user", "content": "x" * 40}]) == MESSAGE_TOKENS + 10
    assert count(system="y" * 40, messages=[{"role": "user", "content": "x" * 40}]) == 2 * MESSAGE_TOKENS + 20


def test_each_image_has_a_fixed_cost_whatever_its_encoded_size() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000}}
    tokens = count(messages=[{"role": "user", "content": [image, image, {"type": "text", "text": "abcd"}]}])
    assert tokens == MESSAGE_TOKENS + 2 * IMAGE_TOKENS + 1


def test_tool_definitions_count_name_description_and_schema() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    tool = {"name": "weather", "description": "Current weather", "input_schema": schema}
    without = count(messages=[{"role": "user", "content": "hi"}])
    with_tool = count(messages=[{"role": "user", "content": "hi"}], tools=[tool])
    schema_chars = len(json.dumps(schema, separators=(",", ":")))
    ascii_chars = len("hi") + len("weather") + len("Current weather") + schema_chars
    assert without == MESSAGE_TOKENS + 1
    assert with_tool == MESSAGE_TOKENS + -(-ascii_chars // 4)


def test_tool_calls_and_results_are_counted() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="assistant", tool_calls=[ToolCall(id="t", name="abcd", arguments='{"a":1}')]),
            Message(
                role="tool",
                tool_call_id="t",
                content=[TextPart(text="efgh"), ImagePart(url="https://x/y.png")],
            ),
        ],
        tools=[Tool(name="abcd")],
    )
    # "abcd" + '{"a":1}' + "efgh" + "abcd" = 19 ASCII characters → 5 tokens
    assert estimate_tokens(request) == 2 * MESSAGE_TOKENS + IMAGE_TOKENS + 5


def test_only_the_last_assistant_turn_counts_its_thinking() -> None:
    thinking = "t" * 400
    earlier = Message(role="assistant", content="a", reasoning=thinking)
    last = Message(role="assistant", content="b", reasoning=thinking)
    user = Message(role="user", content="q")
    request = ChatRequest(model="m", messages=[user, earlier, user, last])
    # "q" "a" "q" "b" plus the last 400 characters of thinking = 404 ASCII characters
    assert estimate_tokens(request) == 4 * MESSAGE_TOKENS + 101
