"""Crafted bodies get a clear 400 in the client's dialect, never an exception that
would become a 500: bytes that are not UTF-8, numbers too large for any hop to encode."""

from __future__ import annotations

import pytest

from llmbus.api import InvalidRequest, decode_chat_request
from llmbus.api.anthropic import decode_count_tokens_request, decode_messages_request

NOT_UTF8 = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"\xff\xfe"}]}'
HUGE = 10**30


@pytest.mark.parametrize(
    "decode", [decode_chat_request, decode_messages_request, decode_count_tokens_request]
)
def test_a_body_that_is_not_utf8_is_a_400(decode: object) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode(NOT_UTF8)  # type: ignore[operator]
    assert raised.value.status == 400
    assert "UTF-8" in raised.value.message


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens", "seed"])
def test_openai_numbers_beyond_any_encoding_are_a_400_naming_the_field(field: str) -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"x"}],"%s":%d}' % (field.encode(), HUGE)
    with pytest.raises(InvalidRequest) as raised:
        decode_chat_request(body)
    assert raised.value.param == field


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (b'"max_tokens":%d' % HUGE, "max_tokens"),
        (b'"max_tokens":5,"top_k":%d' % HUGE, "top_k"),
        (
            b'"max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":%d}' % HUGE,
            "thinking.budget_tokens",
        ),
    ],
)
def test_anthropic_numbers_beyond_any_encoding_are_a_400_naming_the_field(extra: bytes, param: str) -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"x"}],' + extra + b"}"
    with pytest.raises(InvalidRequest) as raised:
        decode_messages_request(body)
    assert raised.value.param == param
