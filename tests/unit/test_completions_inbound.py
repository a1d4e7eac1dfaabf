"""OpenAI's legacy completions as a client dialect: inbound fixtures (written from
OpenAI's API reference) decode to the expected normalized request or to the expected
400; the text_completion answer and its stream chunks have OpenAI's documented shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from llmbus.api import InvalidRequest
from llmbus.api.completions import (
    TextChunkWriter,
    TextCompletionBuilder,
    decode_completion_prompts,
    decode_completion_request,
)
from llmbus.edge.routes.completions import MAX_PROMPTS, Completions
from llmbus.proto import ChatRequest, Delta, Done, Usage

FIXTURES = Path(__file__).resolve().parents[1] / "contract" / "fixtures" / "inbound" / "completions"
CASES = sorted(p for p in FIXTURES.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_inbound_fixture(case: Path) -> None:
    body = (case / "request.json").read_bytes()
    if (case / "error.json").exists():
        expected = json.loads((case / "error.json").read_text())
        with pytest.raises(InvalidRequest) as caught:
            decode_completion_prompts(body, MAX_PROMPTS)
        assert caught.value.param == expected["param"]
        assert caught.value.code == expected["code"]
        assert caught.value.status == expected["status"]
        return
    chats = decode_completion_prompts(body, MAX_PROMPTS)
    if (case / "chats.json").exists():
        assert chats == msgspec.json.decode((case / "chats.json").read_bytes(), type=list[ChatRequest])
        return
    expected_chat = msgspec.json.decode((case / "chat.json").read_bytes(), type=ChatRequest)
    assert chats == [expected_chat]
    assert decode_completion_request(body) == expected_chat


def test_one_request_decodes_one_prompt_only() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_completion_request(b'{"model": "m", "prompt": ["a", "b"]}')
    assert caught.value.param == "prompt"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": ""}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "", "prompt": "x"}, "model"),
        ({"model": "m", "prompt": "x", "n": 3}, "n"),
        ({"model": "m", "prompt": "x", "logprobs": 0}, "logprobs"),
        ({"model": "m", "prompt": "x", "best_of": 2}, "best_of"),
        ({"model": "m", "prompt": "x", "logit_bias": {"50256": -100}}, "logit_bias"),
        ({"model": "m", "prompt": "x", "temperature": 3}, "temperature"),
        ({"model": "m", "prompt": "x", "max_tokens": -1}, "max_tokens"),
    ],
)
def test_what_is_refused_names_its_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_completion_request(json.dumps(body).encode())
    assert caught.value.param == param
    assert caught.value.status == 400


def test_not_json_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_completion_request(b"{not json")
    assert caught.value.code == "invalid_json"


def test_the_whole_answer_has_openais_documented_shape() -> None:
    builder = TextCompletionBuilder("cmpl-abc", "gpt-3.5-turbo-instruct")
    builder.add(Delta(seq=1, text="\n\nThis is "))
    builder.add(Delta(seq=2, text="indeed a test", reasoning="ignored"))
    builder.finish_reason = "length"
    builder.usage = Usage(seq=3, prompt_tokens=5, completion_tokens=7)
    answer = json.loads(builder.build())
    created = answer.pop("created")
    assert isinstance(created, int)
    assert answer == {
        "id": "cmpl-abc",
        "object": "text_completion",
        "model": "gpt-3.5-turbo-instruct",
        "choices": [
            {"text": "\n\nThis is indeed a test", "index": 0, "logprobs": None, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }


def _events(data: bytes) -> list[Any]:
    out: list[Any] = []
    for frame in data.decode().split("\n\n"):
        if frame:
            assert frame.startswith("data: ")
            payload = frame.removeprefix("data: ")
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


@pytest.mark.parametrize("include_usage", [False, True])
def test_the_stream_is_text_completion_chunks_then_done(include_usage: bool) -> None:
    chat = ChatRequest(model="gpt-4o-mini", messages=[], stream=True, include_usage=include_usage)
    encoder = Completions.encoder("cmpl-1", chat)
    data = encoder.start()
    data += encoder.delta(Delta(seq=1, text="This"))
    data += encoder.delta(Delta(seq=2, text=" is", finish_reason="stop"))
    data += encoder.usage(Usage(seq=3, prompt_tokens=4, completion_tokens=2))
    data += encoder.finish(Done(seq=4), Usage(seq=3, prompt_tokens=4, completion_tokens=2))
    events = _events(data)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["id"] for c in chunks} == {"cmpl-1"}
    assert {c["object"] for c in chunks} == {"text_completion"}
    texts = [c["choices"][0] for c in chunks if c["choices"]]
    assert [t["text"] for t in texts] == ["This", " is", ""]
    assert [t["finish_reason"] for t in texts] == [None, None, "stop"]
    assert all(t["index"] == 0 and t["logprobs"] is None for t in texts)
    usage = [c for c in chunks if "usage" in c]
    if include_usage:
        assert usage == [
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": chunks[0]["created"],
                "model": "gpt-4o-mini",
                "choices": [],
                "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
            }
        ]
    else:
        assert usage == []
    assert encoder.ends_at_finish is not include_usage


def test_chunks_of_a_later_choice_carry_its_index() -> None:
    writer = TextChunkWriter("cmpl-1", "m", include_usage=False, index=3)
    chunk = json.loads(writer.text("hi").removeprefix(b"data: "))
    assert chunk["choices"] == [{"index": 3, "text": "hi", "logprobs": None, "finish_reason": None}]


def test_a_stream_error_is_an_openai_error_event() -> None:
    writer = TextChunkWriter("cmpl-1", "m", include_usage=False)
    assert writer.error(b'{"error":{"message":"x"}}') == b'data: {"error":{"message":"x"}}\n\n'
