"""Our SSE parser against httpx-sse's, and the WHATWG framing rules."""

from __future__ import annotations

import pytest
from httpx_sse._decoders import SSEDecoder as ReferenceDecoder

from llmbus.providers.sse import SSEDecoder

STREAM = (
    b": a comment\n"
    b"event: message_start\n"
    b'data: {"a": 1}\n\n'
    b"data: line one\n"
    b"data: line two\n\n"
    b"id: 7\n"
    b"retry: 3000\n"
    b"data:no-space\n\n"
    b"data: [DONE]\n\n"
)


def _reference(stream: bytes) -> list[tuple[str, str, str | None]]:
    decoder = ReferenceDecoder()
    out = []
    for line in stream.decode().splitlines():
        event = decoder.decode(line)
        if event is not None:
            out.append((event.event, event.data, event.id or None))
    return out


def _ours(pieces: list[bytes]) -> list[tuple[str, str, str | None]]:
    decoder = SSEDecoder()
    events = [e for piece in pieces for e in decoder.feed(piece)] + decoder.flush()
    return [(e.event, e.data, e.id) for e in events]


def test_events_match_httpx_sse() -> None:
    assert _ours([STREAM]) == _reference(STREAM)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_events_survive_any_split_of_the_bytes(size: int) -> None:
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert _ours(pieces) == _reference(STREAM)


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_ends_parse_like_lf(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    pieces = [stream[i : i + 5] for i in range(0, len(stream), 5)]
    assert _ours(pieces) == _reference(STREAM)


def test_a_last_event_without_its_blank_line_is_flushed() -> None:
    assert _ours([b"data: tail"]) == [("message", "tail", None)]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert _ours([b"data: a\ndata: b\n\n"]) == [("message", "a\nb", None)]
