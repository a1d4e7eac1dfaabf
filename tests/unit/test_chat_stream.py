"""OpenAI's stream as the edge writes it: the finish and usage chunks go out as soon as
the worker knows them, not held until the end of the stream."""

from __future__ import annotations

import json

from llmbus.api import ChunkWriter
from llmbus.edge.routes.chat import _ChunkStream
from llmbus.proto import Delta, Done, Usage

USAGE = Usage(seq=0, prompt_tokens=3, completion_tokens=2)


def _chunks(data: bytes) -> list[dict[str, object] | str]:
    out: list[dict[str, object] | str] = []
    for line in data.decode().split("\n\n"):
        if line.startswith("data: "):
            body = line.removeprefix("data: ")
            out.append(body if body == "[DONE]" else json.loads(body))
    return out


def test_the_finish_chunk_goes_out_with_the_finish_delta_and_usage_when_it_arrives() -> None:
    stream = _ChunkStream(ChunkWriter("chatcmpl-1", "m", include_usage=True))
    stream.start()
    finish = _chunks(stream.delta(Delta(seq=0, text="hi", finish_reason="stop")))
    assert [c["choices"][0]["finish_reason"] for c in finish if isinstance(c, dict)] == [None, "stop"]  # type: ignore[index]
    usage = _chunks(stream.usage(USAGE))
    assert isinstance(usage[0], dict)
    assert usage[0]["usage"]["completion_tokens"] == 2  # type: ignore[index]
    assert _chunks(stream.finish(Done(seq=0, finish_reason="stop"), USAGE)) == ["[DONE]"]


def test_without_an_early_finish_the_end_writes_finish_usage_and_done() -> None:
    stream = _ChunkStream(ChunkWriter("chatcmpl-1", "m", include_usage=True))
    assert stream.usage(USAGE) == b"", "usage waits for the finish chunk"
    end = _chunks(stream.finish(Done(seq=0, finish_reason="length"), USAGE))
    assert end[-1] == "[DONE]"
    assert isinstance(end[0], dict)
    assert end[0]["choices"][0]["finish_reason"] == "length"  # type: ignore[index]
    assert isinstance(end[1], dict)
    assert "usage" in end[1]


def test_usage_is_left_out_unless_the_client_asked_for_it() -> None:
    stream = _ChunkStream(ChunkWriter("chatcmpl-1", "m", include_usage=False))
    stream.delta(Delta(seq=0, finish_reason="stop"))
    assert stream.usage(USAGE) == b""
    assert _chunks(stream.finish(Done(seq=0), USAGE)) == ["[DONE]"]


def test_a_stream_without_usage_is_complete_at_its_finish() -> None:
    assert _ChunkStream(ChunkWriter("c", "m", include_usage=False)).ends_at_finish
    assert not _ChunkStream(ChunkWriter("c", "m", include_usage=True)).ends_at_finish
