"""Token estimates without a tokenizer.

DESIGN chose a heuristic over `tiktoken`, which downloads its vocabulary at first use
and so fails offline: one token per four ASCII characters (English text and code come
close to that in every current tokenizer) plus one per non-ASCII character (CJK and
most other scripts take about one token per character or more). It answers
`count_tokens` and sizes quota reservations; the upstream's own usage corrects it.
"""

from __future__ import annotations

from typing import Final

import msgspec

from llmbus.proto import ChatRequest, ImagePart, Message

__all__ = ["IMAGE_TOKENS", "MESSAGE_TOKENS", "estimate_text", "estimate_tokens"]

IMAGE_TOKENS: Final = 1600
"""An image, whatever its size: Anthropic charges about width * height / 750 tokens and
scales images down to about 1.15 megapixels, so a large image costs about 1,600."""

MESSAGE_TOKENS: Final = 3
"""Each message's framing (role and separators), as chat templates add."""

_encode = msgspec.json.Encoder().encode


class _Count:
    """ASCII and non-ASCII characters seen so far, and tokens counted outright."""

    __slots__ = ("ascii", "other", "tokens")

    def __init__(self) -> None:
        self.ascii = 0
        self.other = 0
        self.tokens = 0

    def add(self, text: str | None) -> None:
        if not text:
            return
        if text.isascii():
            self.ascii += len(text)
            return
        ascii_chars = len(text.encode("ascii", "ignore"))
        self.ascii += ascii_chars
        self.other += len(text) - ascii_chars

    def total(self) -> int:
        return self.tokens + -(-self.ascii // 4) + self.other


def estimate_text(text: str) -> int:
    """Tokens in one text: ASCII characters / 4, rounded up, plus non-ASCII characters."""
    count = _Count()
    count.add(text)
    return count.total()


def estimate_tokens(request: ChatRequest) -> int:
    """Input tokens of a request: the text of every message (system included), tool
    calls and results, tool definitions with their schemas, and a fixed cost per image.

    Thinking from earlier assistant turns is left out, as Anthropic strips it before
    counting; only the last assistant turn's thinking is sent back to the model."""
    count = _Count()
    last_assistant = max((i for i, m in enumerate(request.messages) if m.role == "assistant"), default=-1)
    for i, message in enumerate(request.messages):
        count.tokens += MESSAGE_TOKENS
        _add_message(count, message, with_reasoning=i == last_assistant)
    for tool in request.tools:
        count.add(tool.name)
        count.add(tool.description)
        if tool.parameters:
            count.add(_encode(tool.parameters).decode())
    return count.total()


def _add_message(count: _Count, message: Message, *, with_reasoning: bool) -> None:
    if isinstance(message.content, str):
        count.add(message.content)
    elif message.content:
        for part in message.content:
            if isinstance(part, ImagePart):
                count.tokens += IMAGE_TOKENS
            else:
                count.add(part.text)
    for call in message.tool_calls:
        count.add(call.name)
        count.add(call.arguments)
    if with_reasoning:
        count.add(message.reasoning)
