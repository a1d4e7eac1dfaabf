"""OpenAI's legacy completions (`POST /v1/completions`) with the official openai SDK's
`client.completions.create`, through the whole gateway to every adapter family (the
mock upstreams answer "Mock answer to: <prompt>"), whole and streamed: the text, the
finish reason and the usage the client sees; and what the gateway refuses, in OpenAI's
error format."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.e2e.test_families import MODELS, _mock_tokens

pytestmark = pytest.mark.e2e

FAMILY = pytest.mark.parametrize("family", list(MODELS))


async def _complete(client: openai.AsyncOpenAI, model: str, stream: bool, **kwargs: Any) -> dict[str, Any]:
    """What the client saw: text, finish reason, usage, and the answer's id and object."""
    if not stream:
        answer = await client.completions.create(model=model, **kwargs)
        assert answer.object == "text_completion"
        assert len(answer.choices) == 1
        choice = answer.choices[0]
        assert choice.index == 0
        assert answer.usage is not None
        return {
            "id": answer.id,
            "text": choice.text,
            "finish": choice.finish_reason,
            "usage": (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens),
        }
    seen: dict[str, Any] = {"text": "", "finish": None, "usage": None, "ids": set(), "chunks": 0}
    chunks = await client.completions.create(
        model=model, stream=True, stream_options={"include_usage": True}, **kwargs
    )
    async for chunk in chunks:
        assert chunk.object == "text_completion"
        seen["ids"].add(chunk.id)
        seen["chunks"] += 1
        if chunk.usage is not None:
            assert chunk.choices == []
            seen["usage"] = (
                chunk.usage.prompt_tokens,
                chunk.usage.completion_tokens,
                chunk.usage.total_tokens,
            )
        for choice in chunk.choices:
            assert choice.index == 0
            seen["text"] += choice.text
            seen["finish"] = choice.finish_reason or seen["finish"]
    return seen


def _expected_text(family: str, prompt: str) -> str:
    return f"Mock answer to: {prompt}"


@FAMILY
async def test_a_whole_completion_from_every_family(client: openai.AsyncOpenAI, family: str) -> None:
    seen = await _complete(client, MODELS[family], False, prompt="Say hello", max_tokens=64)
    assert seen["id"].startswith("cmpl-")
    assert seen["text"] == _expected_text(family, "Say hello")
    assert seen["finish"] == "stop"
    prompt_tokens, completion_tokens, total = seen["usage"]
    assert prompt_tokens > 0
    assert completion_tokens > 0
    if family != "kiro":  # Kiro reports no counts: the gateway estimates them
        assert completion_tokens == _mock_tokens(seen["text"])
    assert total == prompt_tokens + completion_tokens


@FAMILY
async def test_a_streamed_completion_from_every_family(client: openai.AsyncOpenAI, family: str) -> None:
    seen = await _complete(client, MODELS[family], True, prompt=["Stream this"], temperature=0.2)
    assert seen["text"] == _expected_text(family, "Stream this")
    assert seen["chunks"] > 2  # the text comes in pieces (the mock sends several chunks)
    assert len(seen["ids"]) == 1
    assert seen["finish"] == "stop"
    assert seen["usage"] is not None
    prompt_tokens, completion_tokens, total = seen["usage"]
    assert prompt_tokens > 0
    assert completion_tokens > 0
    assert total == prompt_tokens + completion_tokens


async def test_a_stream_without_usage_ends_at_the_finish_reason(client: openai.AsyncOpenAI) -> None:
    chunks = await client.completions.create(model=MODELS["openai"], prompt="Hi", stream=True)
    texts, finishes, usages = [], [], []
    async for chunk in chunks:
        usages.append(chunk.usage)
        for choice in chunk.choices:
            texts.append(choice.text)
            finishes.append(choice.finish_reason)
    assert "".join(texts) == "Mock answer to: Hi"
    assert finishes[-1] == "stop"
    assert all(f is None for f in finishes[:-1])
    assert all(u is None for u in usages)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("suffix", "tail"),
        ("echo", True),
        ("logprobs", 2),
        ("n", 2),
        ("best_of", 3),
        ("prompt", [1, 2, 3]),
        ("prompt", [f"p{i}" for i in range(17)]),
    ],
)
async def test_what_a_chat_model_cannot_do_is_a_clear_400(
    client: openai.AsyncOpenAI, field: str, value: Any
) -> None:
    body: dict[str, Any] = {"model": MODELS["openai"], "prompt": "Hi", field: value}
    model, prompt = body.pop("model"), body.pop("prompt")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.completions.create(model=model, prompt=prompt, **body)
    error = caught.value
    assert error.status_code == 400
    assert isinstance(error.body, dict)
    assert error.body["param"] == field
    assert error.body["code"] == "unsupported_parameter"
    assert error.body["type"] == "invalid_request_error"


async def test_an_unknown_model_is_a_404_in_openai_format(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.completions.create(model="no-such-model", prompt="Hi")
    assert isinstance(caught.value.body, dict)
    assert "no-such-model" in caught.value.body["message"]


@pytest.mark.parametrize("family", ["openai", "gemini", "kiro"])
async def test_a_list_of_prompts_is_answered_one_choice_per_prompt(
    client: openai.AsyncOpenAI, family: str
) -> None:
    prompts = ["First", "Second one", "Third"]
    answer = await client.completions.create(model=MODELS[family], prompt=prompts)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert [c.text for c in answer.choices] == [_expected_text(family, p) for p in prompts]
    assert [c.finish_reason for c in answer.choices] == ["stop"] * 3
    assert answer.usage is not None
    single = await client.completions.create(model=MODELS[family], prompt="Second one")
    assert single.usage is not None
    assert answer.usage.completion_tokens > single.usage.completion_tokens
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


@pytest.mark.parametrize("family", ["openai", "claude"])
async def test_a_streamed_list_of_prompts_interleaves_its_choices(
    client: openai.AsyncOpenAI, family: str
) -> None:
    prompts = ["Alpha", "Beta"]
    chunks = await client.completions.create(
        model=MODELS[family], prompt=prompts, stream=True, stream_options={"include_usage": True}
    )
    texts = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    usages = []
    async for chunk in chunks:
        assert chunk.object == "text_completion"
        if chunk.usage is not None:
            usages.append(chunk.usage)
        for choice in chunk.choices:
            assert choice.index not in finishes  # nothing after a choice's finish reason
            texts[choice.index] += choice.text
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: "Mock answer to: Alpha", 1: "Mock answer to: Beta"}
    assert finishes == {0: "stop", 1: "stop"}
    assert len(usages) == 1
    assert usages[0].completion_tokens > 0
    assert usages[0].total_tokens == usages[0].prompt_tokens + usages[0].completion_tokens


async def test_one_failing_prompt_fails_the_request_in_openai_format(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.completions.create(model="no-such-model", prompt=["a", "b"])
