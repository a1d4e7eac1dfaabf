"""The OpenAI Responses API as a client dialect: inbound fixtures (written from OpenAI's
documented request formats, and a Codex CLI turn) decode to the expected normalized
request or to the expected 400; the Response object and every stream event validate
against the openai SDK's own types, in the documented order, with sequence numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from llmbus.api import ApiError, InvalidRequest, UpstreamFailed
from llmbus.api.responses import (
    ResponseBuilder,
    ResponseEventStream,
    ResponseOutput,
    decode_responses_request,
    to_chat_request,
)
from llmbus.proto import ChatRequest, Delta, Done, Message, ToolCall, ToolCallDelta, Usage

FIXTURES = Path(__file__).resolve().parents[1] / "contract" / "fixtures" / "inbound" / "responses"
CASES = sorted(p for p in FIXTURES.iterdir() if p.is_dir())
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
USAGE = Usage(seq=9, prompt_tokens=12, completion_tokens=5, cached_tokens=4, reasoning_tokens=2)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_inbound_fixture(case: Path) -> None:
    body = (case / "request.json").read_bytes()
    if (case / "error.json").exists():
        expected = json.loads((case / "error.json").read_text())
        with pytest.raises(InvalidRequest) as caught:
            to_chat_request(decode_responses_request(body))
        assert caught.value.param == expected["param"]
        assert caught.value.code == expected["code"]
        assert caught.value.status == expected["status"]
        return
    chat = to_chat_request(decode_responses_request(body)).chat
    assert chat == msgspec.json.decode((case / "chat.json").read_bytes(), type=ChatRequest)


def _turn(**body: Any) -> Any:
    return to_chat_request(decode_responses_request(json.dumps({"model": "m", **body}).encode()))


def test_previous_conversation_goes_first_and_instructions_are_not_carried_over() -> None:
    history = [
        Message(role="user", content="Weather?"),
        Message(role="assistant", tool_calls=[ToolCall(id="call_1", name="w", arguments="{}")]),
    ]
    turn = to_chat_request(
        decode_responses_request(
            json.dumps(
                {
                    "model": "m",
                    "instructions": "Be brief.",
                    "previous_response_id": "resp_1",
                    "input": [{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}],
                }
            ).encode()
        ),
        history,
    )
    assert [m.role for m in turn.chat.messages] == ["system", "user", "assistant", "tool"]
    assert turn.chat.messages[0].content == "Be brief."
    # What is stored: the conversation without the instructions.
    assert [m.role for m in turn.conversation] == ["user", "assistant", "tool"]


def test_fields_codex_sends_are_accepted() -> None:
    turn = _turn(
        input="hi",
        include=["reasoning.encrypted_content"],
        prompt_cache_key="k",
        parallel_tool_calls=True,
        reasoning={"summary": "detailed"},
        store=False,
        service_tier="flex",
        truncation="auto",
        metadata={"a": "b"},
        user="u",
        safety_identifier="s",
        stream_options={"include_obfuscation": False},
    )
    assert turn.chat.reasoning_effort is None
    assert turn.chat.metadata == {"a": "b"}
    assert not turn.store


def test_hosted_tools_are_left_out_and_named_choice_kept() -> None:
    turn = _turn(
        input="hi",
        tools=[{"type": "web_search"}, {"type": "function", "name": "f", "parameters": {}}],
        tool_choice={"type": "function", "name": "f"},
    )
    assert [t.name for t in turn.chat.tools] == ["f"]
    assert turn.chat.tool_choice is not None
    assert not isinstance(turn.chat.tool_choice, str)
    assert turn.chat.tool_choice.name == "f"


def test_json_schema_format_needs_a_schema() -> None:
    with pytest.raises(InvalidRequest) as caught:
        _turn(input="hi", text={"format": {"type": "json_schema", "name": "x"}})
    assert caught.value.param == "text.format"


# --- the answer ------------------------------------------------------------------------


def _events(raw: bytes) -> list[dict[str, Any]]:
    """SSE as `(event name, data)`: every `event:` line names its data's `type`."""
    out: list[dict[str, Any]] = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {data['type']}"
        EVENT.validate_python(data)  # the openai SDK's own event types
        out.append(data)
    return out


def _stream(deltas: list[Delta], finish: str = "stop", **body: Any) -> list[dict[str, Any]]:
    output = ResponseOutput("resp_1", _turn(input="hi", **body))
    stream = ResponseEventStream(output)
    raw = stream.start()
    for delta in deltas:
        raw += stream.delta(delta)
    raw += stream.usage(USAGE)
    raw += stream.finish(Done(seq=10, finish_reason=finish), USAGE)
    events = _events(raw)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_text_stream_has_the_documented_event_sequence() -> None:
    events = _stream([Delta(seq=1, text="Hel"), Delta(seq=2, text="lo")])
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress"
    assert events[6]["text"] == "Hello"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "completed"
    assert final.output_text == "Hello"
    assert final.usage is not None
    assert final.usage.input_tokens == 12
    assert final.usage.output_tokens == 5
    assert final.usage.total_tokens == 17
    assert final.usage.input_tokens_details.cached_tokens == 4
    assert final.usage.output_tokens_details.reasoning_tokens == 2


def test_reasoning_then_text_then_tool_calls() -> None:
    events = _stream(
        [
            Delta(seq=1, reasoning="Think"),
            Delta(seq=2, reasoning="ing", reasoning_signature="sig"),
            Delta(seq=3, text="Calling."),
            Delta(seq=4, tool_calls=[ToolCallDelta(index=0, id="call_a", name="f", arguments='{"a":')]),
            Delta(seq=5, tool_calls=[ToolCallDelta(index=0, arguments="1}")]),
            Delta(seq=6, tool_calls=[ToolCallDelta(index=1, id="call_b", name="g", arguments="{}")]),
        ],
        finish="tool_calls",
        include=["reasoning.encrypted_content"],
    )
    types = [e["type"] for e in events]
    assert types.count("response.reasoning_summary_text.delta") == 2
    assert types.count("response.output_item.added") == 4
    assert types.count("response.output_item.done") == 4
    assert types.count("response.function_call_arguments.done") == 2
    # Each item is closed before the next opens.
    opened = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    closed = [e["output_index"] for e in events if e["type"] == "response.output_item.done"]
    assert opened == closed == [0, 1, 2, 3]
    final = Response.model_validate(events[-1]["response"])
    reasoning, message, first, second = final.output
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "Thinking"
    assert reasoning.encrypted_content == "sig"
    assert message.type == "message"
    assert first.type == "function_call"
    assert (first.call_id, first.name, first.arguments) == ("call_a", "f", '{"a":1}')
    assert second.type == "function_call"
    assert (second.call_id, second.name) == ("call_b", "g")


def test_max_tokens_is_an_incomplete_response() -> None:
    events = _stream([Delta(seq=1, text="Hel", finish_reason="length")], finish="length", max_output_tokens=1)
    assert events[-1]["type"] == "response.incomplete"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "incomplete"
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    assert final.max_output_tokens == 1


def test_a_failure_mid_stream_is_response_failed() -> None:
    output = ResponseOutput("resp_1", _turn(input="hi"))
    stream = ResponseEventStream(output)
    raw = stream.start() + stream.delta(Delta(seq=1, text="Hel"))
    raw += stream.error(UpstreamFailed("the upstream broke off", code="upstream_error"))
    events = _events(raw)
    assert events[-1]["type"] == "response.failed"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "failed"
    assert final.error is not None
    assert final.error.code == "server_error"
    assert final.error.message == "the upstream broke off"
    rate = ResponseOutput("resp_2", _turn(input="hi"))
    rate.fail(ApiError("slow down", status=429))
    assert rate.final is not None
    assert rate.final["error"]["code"] == "rate_limit_exceeded"


def test_whole_response_validates_and_keeps_the_assistant_turn() -> None:
    output = ResponseOutput("resp_9", _turn(input="hi", instructions="Be brief.", store=True))
    builder = ResponseBuilder(output)
    builder.add(Delta(seq=1, text="Hello"))
    builder.add(Delta(seq=2, tool_calls=[ToolCallDelta(index=0, id="call_1", name="f", arguments="{}")]))
    body = builder.build(Done(seq=3, finish_reason="tool_calls"), USAGE)
    response = Response.model_validate_json(body)
    assert response.id == "resp_9"
    assert response.instructions == "Be brief."
    assert response.status == "completed"
    assert response.output_text == "Hello"
    assert output.events == []
    assert output.assistant_message() == Message(
        role="assistant", content="Hello", tool_calls=[ToolCall(id="call_1", name="f", arguments="{}")]
    )


# --- custom (free-form) tools, as Codex CLI's apply_patch ----------------------------------

PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Applies a patch",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"},
}


def test_a_custom_tool_is_a_function_with_one_string_input() -> None:
    turn = _turn(
        tools=[PATCH_TOOL],
        input=[
            {"role": "user", "content": "patch it"},
            {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": "*** Begin"},
            {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
        ],
    )
    [tool] = turn.chat.tools
    assert tool.name == "apply_patch"
    assert tool.parameters is not None
    assert tool.parameters["required"] == ["input"]
    assert "start: begin_patch" in tool.parameters["properties"]["input"]["description"]
    assert turn.custom_tools == frozenset({"apply_patch"})
    _, assistant, result = turn.chat.messages
    assert assistant.tool_calls == [
        ToolCall(id="call_p", name="apply_patch", arguments='{"input": "*** Begin"}')
    ]
    assert result.role == "tool"
    assert result.tool_call_id == "call_p"
    assert result.content == "Done!"


def test_a_call_of_a_custom_tool_is_a_custom_tool_call() -> None:
    events = _stream(
        [
            Delta(
                seq=1, tool_calls=[ToolCallDelta(index=0, id="call_p", name="apply_patch", arguments='{"inp')]
            ),
            Delta(seq=2, tool_calls=[ToolCallDelta(index=0, arguments='ut": "*** Begin\\n"}')]),
        ],
        finish="tool_calls",
        tools=[PATCH_TOOL],
    )
    types = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" not in types
    done = next(e for e in events if e["type"] == "response.custom_tool_call_input.done")
    assert done["input"] == "*** Begin\n"
    final = Response.model_validate(events[-1]["response"])
    [call] = final.output
    assert call.type == "custom_tool_call"
    assert (call.call_id, call.name, call.input) == ("call_p", "apply_patch", "*** Begin\n")
    assert final.tools[0].type == "custom"


def test_a_call_signature_is_kept_for_the_stored_conversation() -> None:
    output = ResponseOutput("resp_1", _turn(input="hi", tools=[{"type": "function", "name": "f"}]))
    output.add(
        Delta(seq=1, tool_calls=[ToolCallDelta(index=0, id="c", name="f", arguments="{}", signature="s1")])
    )
    output.finish(Done(seq=2, finish_reason="tool_calls"), None)
    assert output.assistant_message().tool_calls == [
        ToolCall(id="c", name="f", arguments="{}", signature="s1")
    ]
