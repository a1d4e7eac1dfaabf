"""The Anthropic client dialect: request decoding into the normalized request, the stream
writer's exact SSE, the whole-message builder and the error bodies.

Where the format matters to a client, the official `anthropic` SDK is the oracle: the
writer's bytes are served to it through a mock transport and its stream accumulator must
rebuild the message we meant."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest

from llmbus.api import (
    ApiError,
    AuthenticationFailed,
    GatewayTimeout,
    InvalidRequest,
    MessageBuilder,
    MessageStreamWriter,
    NotFound,
    RateLimited,
    Unavailable,
    UpstreamFailed,
    anthropic_error_body,
    decode_count_tokens_request,
    decode_messages_request,
)
from llmbus.proto import (
    ChatRequest,
    Delta,
    Done,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

USER = [{"role": "user", "content": "hello"}]


def decode(**fields: Any) -> ChatRequest:
    body = {"model": "claude-x", "max_tokens": 64, "messages": USER, **fields}
    return decode_messages_request(json.dumps(body).encode())


def refused(**fields: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        decode(**fields)
    return caught.value


# --- decoding ----------------------------------------------------------------------------


def test_a_plain_request_keeps_model_max_tokens_and_sampling() -> None:
    chat = decode(temperature=0.5, top_p=0.9, top_k=40, stop_sequences=["END"], metadata={"user_id": "u-1"})
    assert chat == ChatRequest(
        model="claude-x",
        messages=[Message(role="user", content="hello")],
        max_tokens=64,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop=["END"],
        user="u-1",
    )


def test_a_stream_always_asks_for_usage() -> None:
    chat = decode(stream=True)
    assert chat.stream
    assert chat.include_usage


def test_system_string_and_text_blocks_become_a_leading_system_message() -> None:
    assert decode(system="be brief").messages[0] == Message(role="system", content="be brief")
    blocks = [
        {"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "two"},
    ]
    assert decode(system=blocks).messages[0] == Message(
        role="system", content=[TextPart(text="one"), TextPart(text="two")]
    )


def test_one_text_block_is_sent_as_a_string_and_cache_control_is_ignored() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}
    ]
    assert decode(messages=messages).messages == [Message(role="user", content="hi")]


def test_images_become_data_urls_or_stay_urls() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "what are these?"},
            ],
        }
    ]
    chat = decode(messages=messages)
    assert chat.messages == [
        Message(
            role="user",
            content=[
                ImagePart(url="data:image/png;base64,iVBORw0KGgo="),
                ImagePart(url="https://example.com/cat.jpg"),
                TextPart(text="what are these?"),
            ],
        )
    ]
    assert chat.has_images()


def test_tool_use_and_thinking_blocks_make_one_assistant_message() -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig-abc"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
            ],
        },
    ]
    assert decode(messages=messages).messages[1] == Message(
        role="assistant",
        content="Let me check.",
        tool_calls=[
            ToolCall(id="toolu_1", name="weather", arguments='{"city":"Paris"}'),
            ToolCall(id="toolu_2", name="time", arguments="{}"),
        ],
        reasoning="The user wants weather.",
        reasoning_signature="sig-abc",
    )


def test_tool_results_become_tool_messages_in_block_order() -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
                {"type": "tool_use", "id": "toolu_2", "name": "shot", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C", "is_error": False},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "camera offline"},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/e.png"}},
                    ],
                },
                {"type": "text", "text": "and now?"},
            ],
        },
    ]
    assert decode(messages=messages).messages[2:] == [
        Message(role="tool", tool_call_id="toolu_1", content="18 C"),
        Message(
            role="tool",
            tool_call_id="toolu_2",
            is_error=True,
            content=[TextPart(text="camera offline"), ImagePart(url="https://example.com/e.png")],
        ),
        Message(role="user", content="and now?"),
    ]


def test_a_tool_result_without_content_is_an_empty_tool_message() -> None:
    messages = [*USER, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}]}]
    assert decode(messages=messages).messages[1] == Message(role="tool", tool_call_id="toolu_9", content="")


def test_tools_and_tool_choice_map_to_the_normalized_form() -> None:
    tools = [{"name": "weather", "description": "Weather now", "input_schema": {"type": "object"}}]
    chat = decode(
        tools=tools, tool_choice={"type": "tool", "name": "weather", "disable_parallel_tool_use": True}
    )
    assert chat.tools == [Tool(name="weather", description="Weather now", parameters={"type": "object"})]
    assert chat.tool_choice == NamedToolChoice(name="weather")
    assert chat.parallel_tool_calls is False


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")],
)
def test_tool_choice_modes(choice: dict[str, str], expected: str) -> None:
    chat = decode(tool_choice=choice)
    assert chat.tool_choice == expected
    assert chat.parallel_tool_calls is None


def test_thinking_budget_and_effort_are_carried() -> None:
    assert decode(thinking={"type": "enabled", "budget_tokens": 2048}).thinking_budget == 2048
    assert decode(thinking={"type": "disabled"}).thinking_budget is None
    adaptive = decode(thinking={"type": "adaptive"}, output_config={"effort": "high"})
    assert adaptive.thinking_budget is None
    assert adaptive.reasoning_effort == "high"


def test_structured_output_becomes_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat = decode(output_config={"format": {"type": "json_schema", "schema": schema}})
    assert chat.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_anthropic_headers_and_unknown_fields_do_not_matter() -> None:
    assert decode(service_tier="auto", container=None).model == "claude-x"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 1.5}, "temperature"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": []}]}, "messages[0].content"),
        ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "thinking.budget_tokens"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"model": ""}, "model"),
    ],
)
def test_invalid_fields_are_refused_by_name(fields: dict[str, Any], param: str) -> None:
    error = refused(**fields)
    assert error.status == 400
    assert error.param == param
    assert param in error.message


def test_a_missing_max_tokens_is_named() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_messages_request(json.dumps({"model": "m", "messages": USER}).encode())
    assert caught.value.param == "max_tokens"


def test_malformed_json_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_messages_request(b"{not json")
    assert caught.value.code == "invalid_json"


def test_document_blocks_are_refused_clearly() -> None:
    document = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
    }
    error = refused(messages=[{"role": "user", "content": [document]}])
    assert error.param == "messages[0].content[0].type"
    assert "document" in error.message


def test_file_image_sources_are_refused_clearly() -> None:
    image = {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
    error = refused(messages=[{"role": "user", "content": [image]}])
    assert error.param == "messages[0].content[0].source.type"
    assert "Files API" in error.message


def test_server_tools_are_refused_clearly() -> None:
    error = refused(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}])
    assert error.param == "tools[0].type"
    assert "web_search_20250305" in error.message
    assert "server tool" in error.message


def test_custom_tools_with_a_type_are_accepted() -> None:
    chat = decode(tools=[{"type": "custom", "name": "f", "input_schema": {"type": "object"}}])
    assert chat.tools[0].name == "f"


@pytest.mark.parametrize(
    ("role", "block", "belongs"),
    [
        ("user", {"type": "tool_use", "id": "t", "name": "f", "input": {}}, "assistant"),
        ("user", {"type": "thinking", "thinking": "x", "signature": "s"}, "assistant"),
        ("assistant", {"type": "tool_result", "tool_use_id": "t"}, "user"),
        ("assistant", {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}, "user"),
    ],
)
def test_blocks_in_the_wrong_turn_are_refused(role: str, block: dict[str, Any], belongs: str) -> None:
    error = refused(messages=[{"role": role, "content": [block]}])
    assert error.param == "messages[0].content[0].type"
    assert f"belongs in a{'n' if belongs == 'assistant' else ''} {belongs} message" in error.message


def test_count_tokens_needs_no_max_tokens_but_a_model() -> None:
    chat = decode_count_tokens_request(json.dumps({"model": "m", "messages": USER}).encode())
    assert chat.max_tokens is None
    with pytest.raises(InvalidRequest) as caught:
        decode_count_tokens_request(json.dumps({"messages": USER}).encode())
    assert caught.value.param == "model"


# --- the stream writer -------------------------------------------------------------------


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The SSE frames as (event name, data), checking the framing on the way."""
    out = []
    assert raw.endswith(b"\n\n")
    for frame in raw.decode().split("\n\n")[:-1]:
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ")
        assert data_line.startswith("data: ")
        name, data = name_line[len("event: ") :], json.loads(data_line[len("data: ") :])
        assert data["type"] == name
        out.append((name, data))
    return out


def write(*deltas: Delta, done: Done | None = None, usage: Usage | None = None) -> bytes:
    writer = MessageStreamWriter("msg_req1", "claude-x")
    raw = writer.start() + b"".join(writer.delta(d) for d in deltas)
    return raw + writer.finish(done or Done(seq=0), usage)


def text(value: str) -> Delta:
    return Delta(seq=0, text=value)


def tool(index: int, arguments: str, id: str | None = None, name: str | None = None) -> Delta:
    return Delta(seq=0, tool_calls=[ToolCallDelta(index=index, id=id, name=name, arguments=arguments)])


def test_a_text_stream_is_the_exact_anthropic_event_sequence() -> None:
    usage = Usage(seq=0, prompt_tokens=25, completion_tokens=2)
    assert events(write(text("Hel"), text("lo"), usage=usage)) == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_req1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-x",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "output_tokens": 2,
                    "input_tokens": 25,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_text_is_json_escaped_in_the_pre_encoded_delta() -> None:
    frames = events(write(text('say "hi"\n\\ ünï')))
    assert frames[3][1]["delta"]["text"] == 'say "hi"\n\\ ünï'


def test_thinking_streams_as_a_thinking_block_with_its_signature_sent_whole() -> None:
    deltas = [
        Delta(seq=0, reasoning="Let me "),
        Delta(seq=0, reasoning="think.", reasoning_signature="EqQB"),
        Delta(seq=0, reasoning_signature="Kh8="),
        text("Answer."),
    ]
    assert [
        (name, data.get("index"), data.get("delta") or data.get("content_block"))
        for name, data in events(write(*deltas))
    ][2:8] == [
        ("content_block_start", 0, {"type": "thinking", "thinking": "", "signature": ""}),
        ("content_block_delta", 0, {"type": "thinking_delta", "thinking": "Let me "}),
        ("content_block_delta", 0, {"type": "thinking_delta", "thinking": "think."}),
        ("content_block_delta", 0, {"type": "signature_delta", "signature": "EqQBKh8="}),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, {"type": "text", "text": ""}),
    ]


def test_tool_calls_stream_as_tool_use_blocks_with_input_json_deltas() -> None:
    frames = events(
        write(
            text("Checking."),
            tool(0, "", id="call_1", name="weather"),
            tool(0, '{"city":'),
            tool(0, '"Paris"}'),
            done=Done(seq=0, finish_reason="tool_calls"),
        )
    )
    assert [
        (name, data.get("index"), data.get("delta") or data.get("content_block")) for name, data in frames
    ][2:10] == [
        ("content_block_start", 0, {"type": "text", "text": ""}),
        ("content_block_delta", 0, {"type": "text_delta", "text": "Checking."}),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}}),
        ("content_block_delta", 1, {"type": "input_json_delta", "partial_json": '{"city":'}),
        ("content_block_delta", 1, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
        ("content_block_stop", 1, None),
        ("message_delta", None, {"stop_reason": "tool_use", "stop_sequence": None}),
    ]


def test_parallel_tool_calls_are_consecutive_tool_use_blocks() -> None:
    frames = events(
        write(
            tool(0, '{"a":1}', id="call_a", name="f"),
            tool(1, '{"b":', id="call_b", name="g"),
            tool(1, "2}"),
            done=Done(seq=0, finish_reason="tool_calls"),
        )
    )
    blocks = [
        (data["index"], data["content_block"]["id"]) for name, data in frames if name == "content_block_start"
    ]
    stops = [data["index"] for name, data in frames if name == "content_block_stop"]
    assert blocks == [(0, "call_a"), (1, "call_b")]
    assert stops == [0, 1]


@pytest.mark.parametrize(
    ("done", "reason", "sequence"),
    [
        (Done(seq=0, finish_reason="stop"), "end_turn", None),
        (Done(seq=0, finish_reason="stop", stop_sequence="END"), "stop_sequence", "END"),
        (Done(seq=0, finish_reason="length"), "max_tokens", None),
        (Done(seq=0, finish_reason="tool_calls"), "tool_use", None),
        (Done(seq=0, finish_reason="content_filter"), "refusal", None),
    ],
)
def test_finish_reasons_map_to_stop_reasons(done: Done, reason: str, sequence: str | None) -> None:
    message_delta = events(write(text("x"), done=done))[-2][1]
    assert message_delta["delta"] == {"stop_reason": reason, "stop_sequence": sequence}


def test_a_plain_stop_after_tool_calls_says_tool_use() -> None:
    message_delta = events(write(tool(0, "{}", id="c", name="f")))[-2][1]
    assert message_delta["delta"]["stop_reason"] == "tool_use"


def test_final_usage_excludes_cached_tokens_from_input_tokens() -> None:
    usage = Usage(
        seq=0, prompt_tokens=1000, completion_tokens=50, cached_tokens=700, cache_creation_tokens=200
    )
    assert events(write(text("x"), usage=usage))[-2][1]["usage"] == {
        "output_tokens": 50,
        "input_tokens": 100,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 700,
    }


def test_unknown_usage_reports_only_output_tokens() -> None:
    assert events(write(text("x")))[-2][1]["usage"] == {"output_tokens": 0}


def test_a_failure_mid_stream_is_an_error_event() -> None:
    writer = MessageStreamWriter("msg_req1", "claude-x")
    raw = writer.start() + writer.delta(text("par")) + writer.error(UpstreamFailed("the upstream broke"))
    assert events(raw)[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "the upstream broke"}},
    )


# --- the official SDK as the oracle ------------------------------------------------------


def sdk(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> anthropic.AsyncAnthropic:
    def answer(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            status, content=body, headers={"content-type": "text/event-stream", **(headers or {})}
        )

    return anthropic.AsyncAnthropic(
        api_key="sk-test",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(answer)),
    )


async def accumulate(raw: bytes) -> anthropic.types.Message:
    async with (
        sdk(raw) as client,
        client.messages.stream(model="claude-x", max_tokens=64, messages=[]) as stream,
    ):
        return await stream.get_final_message()


async def test_the_sdk_accumulates_thinking_text_and_parallel_tools_from_the_stream() -> None:
    raw = write(
        Delta(seq=0, reasoning="Two lookups.", reasoning_signature="sig-1"),
        text("On it."),
        tool(0, '{"city":', id="call_a", name="weather"),
        tool(0, '"Paris"}'),
        tool(1, '{"tz":"CET"}', id="call_b", name="time"),
        done=Done(seq=0, finish_reason="tool_calls"),
        usage=Usage(seq=0, prompt_tokens=120, completion_tokens=30, cached_tokens=100),
    )
    message = await accumulate(raw)
    assert message.id == "msg_req1"
    assert message.model == "claude-x"
    assert [block.to_dict() for block in message.content] == [
        {"type": "thinking", "thinking": "Two lookups.", "signature": "sig-1"},
        {"type": "text", "text": "On it."},
        {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "time", "input": {"tz": "CET"}},
    ]
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 20
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.output_tokens == 30


async def test_the_sdk_raises_the_mid_stream_error_event() -> None:
    writer = MessageStreamWriter("msg_req1", "claude-x")
    raw = writer.start() + writer.delta(text("par")) + writer.error(Unavailable("no capacity"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        await accumulate(raw)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "no capacity"},
    }


async def test_the_sdk_parses_the_whole_message() -> None:
    builder = MessageBuilder("msg_req1", "claude-x")
    builder.add(Delta(seq=0, reasoning="hmm", reasoning_signature="s1"))
    builder.add(text("Hi "))
    builder.add(text("there"))
    builder.add(tool(0, '{"q":', id="call_a", name="search"))
    builder.add(tool(1, "{}", id="call_b", name="noop"))
    builder.add(tool(0, '"x"}'))
    raw = builder.build(
        Done(seq=0, finish_reason="tool_calls"), Usage(seq=0, prompt_tokens=10, completion_tokens=5)
    )
    async with sdk(raw, headers={"content-type": "application/json"}) as client:
        message = await client.messages.create(model="claude-x", max_tokens=64, messages=[])
    assert [block.to_dict() for block in message.content] == [
        {"type": "thinking", "thinking": "hmm", "signature": "s1"},
        {"type": "text", "text": "Hi there"},
        {"type": "tool_use", "id": "call_a", "name": "search", "input": {"q": "x"}},
        {"type": "tool_use", "id": "call_b", "name": "noop", "input": {}},
    ]
    assert message.stop_reason == "tool_use"
    assert message.stop_sequence is None
    assert message.usage.input_tokens == 10
    assert message.usage.output_tokens == 5


def test_the_builder_reports_the_stop_sequence_and_survives_cut_tool_arguments() -> None:
    builder = MessageBuilder("msg_req1", "claude-x")
    builder.add(tool(0, '{"q": "unfinish', id="call_a", name="search"))
    cut = json.loads(builder.build(Done(seq=0, finish_reason="length"), None))
    assert cut["content"] == [{"type": "tool_use", "id": "call_a", "name": "search", "input": {}}]
    assert cut["stop_reason"] == "max_tokens"
    assert cut["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    stopped = MessageBuilder("msg_req1", "claude-x")
    stopped.add(text("one two"))
    body = json.loads(stopped.build(Done(seq=0, finish_reason="stop", stop_sequence="three"), None))
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "three")
    assert body["type"] == "message"
    assert body["role"] == "assistant"


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InvalidRequest("bad"), "invalid_request_error"),
        (AuthenticationFailed("who"), "authentication_error"),
        (ApiError("no", status=403), "permission_error"),
        (NotFound("gone"), "not_found_error"),
        (InvalidRequest("big", status=413), "request_too_large"),
        (RateLimited("slow down", retry_after=5), "rate_limit_error"),
        (ApiError("oops"), "api_error"),
        (UpstreamFailed("upstream"), "api_error"),
        (Unavailable("busy"), "overloaded_error"),
        (ApiError("busy", status=529), "overloaded_error"),
        (GatewayTimeout("slow"), "timeout_error"),
        (ApiError("teapot", status=418), "invalid_request_error"),
        (ApiError("odd", status=507), "api_error"),
    ],
)
def test_error_bodies_carry_anthropic_types_by_status(error: ApiError, kind: str) -> None:
    assert json.loads(anthropic_error_body(error)) == {
        "type": "error",
        "error": {"type": kind, "message": error.message},
    }


async def test_the_sdk_raises_the_matching_exception_for_an_error_body() -> None:
    body = anthropic_error_body(RateLimited("slow down", retry_after=5))
    async with sdk(body, status=429, headers={"content-type": "application/json"}) as client:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(model="claude-x", max_tokens=64, messages=[])
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
