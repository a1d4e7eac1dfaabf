"""The Gemini-native client API (`llmbus.api.gemini`): requests in Google's documented
`generateContent` format decode to the normalized request, reply-stream events encode
as Google's responses and stream chunks, errors as `google.rpc.Status`.

Cases live in `tests/contract/fixtures/inbound/gemini/<case>/`, written from Google's
REST reference and examples:

- `case.json`: `model` and `method` of the path, `alt` (`sse`) and `thoughts`
  (`includeThoughts`) where they matter;
- a request case: `request.json` (the client's body) and `chat.json` (the normalized
  request it must become) or `error.json` (`param`, `code`, `message_contains` of the
  400 it must be);
- an answer case: `events.json` (the reply stream) and `response.json` (the whole
  answer, or Google's streamed JSON array) or `response.sse` (the SSE stream).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from llmbus.api import ApiError, InvalidRequest, error_from_status
from llmbus.api.gemini import (
    ResponseBuilder,
    ResponseStreamWriter,
    decode_count_tokens,
    decode_generate_content,
    gemini_error_body,
    gemini_model,
    gemini_models,
    json_schema,
)
from llmbus.edge.routes.gemini import dialect_for
from llmbus.proto import ChatRequest, Delta, Done, Error, ToolCallDelta, Usage

CASES = Path(__file__).parents[1] / "contract" / "fixtures" / "inbound" / "gemini"
RESPONSE_ID = "resp-1"
_chat = msgspec.json.Decoder(ChatRequest)
_events = msgspec.json.Decoder(list[Delta | Usage | Done | Error])


def _cases(kind: str) -> list[Path]:
    return sorted(p for p in CASES.iterdir() if (p / kind).is_file())


def _meta(case: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((case / "case.json").read_text())
    return meta


@pytest.mark.parametrize("case", _cases("request.json"), ids=lambda p: p.name)
def test_request_decodes_to_the_normalized_request(case: Path) -> None:
    meta = _meta(case)
    body = (case / "request.json").read_bytes()
    stream = meta["method"] == "streamGenerateContent"
    if (case / "error.json").is_file():
        expected = json.loads((case / "error.json").read_text())
        with pytest.raises(InvalidRequest) as caught:
            decode_generate_content(body, meta["model"], stream)
        assert caught.value.status == 400
        assert caught.value.param == expected["param"]
        assert caught.value.code == expected["code"]
        assert expected["message_contains"] in caught.value.message
        return
    decoded = decode_generate_content(body, meta["model"], stream)
    assert decoded.chat == _chat.decode((case / "chat.json").read_bytes())


def _play(case: Path) -> bytes:
    """The case's events through the dialect's writer or builder, as the relay feeds them."""
    meta = _meta(case)
    events = _events.decode((case / "events.json").read_bytes())
    thoughts = bool(meta.get("thoughts"))
    usage: Usage | None = None
    if meta["method"] == "generateContent":
        builder = ResponseBuilder(RESPONSE_ID, meta["model"], thoughts=thoughts)
        for event in events:
            if isinstance(event, Delta):
                builder.add(event)
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Done):
                return builder.build(event, usage)
        raise AssertionError("a whole answer's events end with Done")
    writer = ResponseStreamWriter(RESPONSE_ID, meta["model"], thoughts=thoughts, sse=meta.get("alt") == "sse")
    assert not writer.ends_at_finish
    out = [writer.start()]
    for event in events:
        match event:
            case Delta():
                out.append(writer.delta(event))
            case Usage():
                usage = event
                out.append(writer.usage(event))
            case Done():
                out.append(writer.finish(event, usage))
            case Error():
                out.append(
                    writer.error(
                        error_from_status(event.status, event.message, event.code, event.retry_after)
                    )
                )
    return b"".join(out)


@pytest.mark.parametrize("case", _cases("events.json"), ids=lambda p: p.name)
def test_answer_encodes_as_google_writes_it(case: Path) -> None:
    written = _play(case)
    if (case / "response.sse").is_file():
        expected = (case / "response.sse").read_bytes()
        assert written.endswith(b"\r\n\r\n")
        frames = [frame for frame in written.split(b"\r\n\r\n") if frame]
        assert all(frame.startswith(b"data: ") for frame in frames)
        assert [json.loads(f[6:]) for f in frames] == [
            json.loads(f[6:]) for f in expected.split(b"\r\n\r\n") if f
        ]
    else:
        assert json.loads(written) == json.loads((case / "response.json").read_bytes())


def test_every_fixture_case_is_read() -> None:
    cases = [p for p in CASES.iterdir() if p.is_dir()]
    assert len(cases) == len(_cases("request.json")) + len(_cases("events.json"))
    for case in cases:
        kinds = {p.name for p in case.iterdir()}
        assert kinds in (
            {"case.json", "request.json", "chat.json"},
            {"case.json", "request.json", "error.json"},
            {"case.json", "events.json", "response.json"},
            {"case.json", "events.json", "response.sse"},
        ), case.name


# --- schemas -----------------------------------------------------------------------------


def test_openapi_schema_becomes_json_schema() -> None:
    schema = {
        "type": "OBJECT",
        "title": "Order",
        "properties": {
            "id": {"type": "INTEGER", "format": "int64", "minimum": 1},
            "note": {"type": "STRING", "nullable": True, "maxLength": "200"},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER", "nullable": True}]},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "1"},
            "free": {"type": "TYPE_UNSPECIFIED", "description": "anything"},
        },
        "required": ["id"],
        "propertyOrdering": ["id", "note"],
    }
    assert json_schema(schema) == {
        "type": "object",
        "title": "Order",
        "properties": {
            "id": {"type": "integer", "format": "int64", "minimum": 1},
            "note": {"type": ["string", "null"], "maxLength": 200},
            "either": {"anyOf": [{"type": "string"}, {"type": ["number", "null"]}]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "free": {"description": "anything"},
        },
        "required": ["id"],
    }


def test_snake_case_keys_inside_arguments_and_schemas_are_kept() -> None:
    body = json.dumps(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [{"function_call": {"name": "f", "args": {"zip_code": "1"}}}]},
                {
                    "role": "user",
                    "parts": [{"function_response": {"name": "f", "response": {"open_now": True}}}],
                },
            ],
            "tools": [
                {
                    "function_declarations": [
                        {
                            "name": "f",
                            "parameters": {"type": "OBJECT", "properties": {"zip_code": {"type": "STRING"}}},
                        }
                    ]
                }
            ],
        }
    ).encode()
    chat = decode_generate_content(body, "m", False).chat
    assert chat.messages[1].tool_calls[0].arguments == '{"zip_code":"1"}'
    assert chat.messages[2].content == '{"open_now":true}'
    assert chat.tools[0].parameters == {"type": "object", "properties": {"zip_code": {"type": "string"}}}


def test_a_function_with_both_schemas_is_refused() -> None:
    body = json.dumps(
        {
            "contents": [{"parts": [{"text": "Hi"}]}],
            "tools": [
                {"functionDeclarations": [{"name": "f", "parameters": {}, "parametersJsonSchema": {}}]}
            ],
        }
    ).encode()
    with pytest.raises(InvalidRequest) as caught:
        decode_generate_content(body, "m", False)
    assert caught.value.param == "tools[0].functionDeclarations[0]"


def test_thinking_budget_and_level_together_are_refused() -> None:
    body = json.dumps(
        {
            "contents": [{"parts": [{"text": "Hi"}]}],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 100, "thinkingLevel": "HIGH"}},
        }
    ).encode()
    with pytest.raises(InvalidRequest) as caught:
        decode_generate_content(body, "m", False)
    assert caught.value.param == "generationConfig.thinkingConfig"


def test_include_thoughts_is_remembered_for_the_answer() -> None:
    body = json.dumps(
        {
            "contents": [{"parts": [{"text": "Hi"}]}],
            "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
        }
    ).encode()
    assert decode_generate_content(body, "m", False).thoughts
    assert not decode_generate_content(b'{"contents": [{"parts": [{"text": "Hi"}]}]}', "m", False).thoughts


def test_invalid_json_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_generate_content(b'{"contents": [', "m", False)
    assert caught.value.code == "invalid_json"


# --- countTokens ---------------------------------------------------------------------------


def test_count_tokens_reads_contents_or_a_whole_request() -> None:
    contents = [{"parts": [{"text": "The quick brown fox jumps over the lazy dog."}]}]
    plain = decode_count_tokens(json.dumps({"contents": contents}).encode(), "gemini-2.5-flash")
    assert plain.model == "gemini-2.5-flash"
    assert plain.messages[0].content == "The quick brown fox jumps over the lazy dog."
    whole = decode_count_tokens(
        json.dumps(
            {
                "generateContentRequest": {
                    "model": "models/gemini-2.5-flash",
                    "contents": contents,
                    "systemInstruction": {"parts": [{"text": "You are a cat."}]},
                    "tools": [{"functionDeclarations": [{"name": "meow"}]}],
                }
            }
        ).encode(),
        "gemini-2.5-flash",
    )
    assert [m.role for m in whole.messages] == ["system", "user"]
    assert [t.name for t in whole.tools] == ["meow"]
    with pytest.raises(InvalidRequest):
        decode_count_tokens(
            json.dumps({"contents": contents, "generateContentRequest": {"contents": contents}}).encode(), "m"
        )
    with pytest.raises(InvalidRequest):
        decode_count_tokens(b"{}", "m")


# --- models --------------------------------------------------------------------------------

_ROUTER_LIST = {
    "object": "list",
    "data": [
        {
            "id": f"model-{i}",
            "object": "model",
            "aliases": ["short"] if i == 0 else [],
            "providers": ["openai"],
        }
        for i in range(5)
    ],
}


def test_models_list_pages_through_every_model() -> None:
    answer = json.dumps(_ROUTER_LIST).encode()
    first = json.loads(gemini_models(answer, 2, ""))
    assert [m["name"] for m in first["models"]] == ["models/model-0", "models/model-1"]
    assert first["models"][0]["baseModelId"] == "model-0"
    assert first["models"][0]["supportedGenerationMethods"] == [
        "generateContent",
        "streamGenerateContent",
        "countTokens",
    ]
    assert "short" in first["models"][0]["description"]
    names = [m["name"] for m in first["models"]]
    token = first["nextPageToken"]
    while token:
        page = json.loads(gemini_models(answer, 2, token))
        names += [m["name"] for m in page["models"]]
        token = page.get("nextPageToken")
    assert names == [f"models/model-{i}" for i in range(5)]
    everything = json.loads(gemini_models(answer, None, ""))
    assert len(everything["models"]) == 5
    assert "nextPageToken" not in everything
    with pytest.raises(InvalidRequest):
        gemini_models(answer, 2, "not-a-token")


def test_one_model_names_its_output_limit() -> None:
    answer = json.dumps(
        {
            "id": "mini",
            "aliases": [],
            "providers": ["openai", "spare"],
            "offers": [
                {"provider": "openai", "max_tokens": 16384},
                {"provider": "spare", "max_tokens": None},
            ],
        }
    ).encode()
    model = json.loads(gemini_model(answer))
    assert model["name"] == "models/mini"
    assert model["outputTokenLimit"] == 16384
    assert "openai, spare" in model["description"]


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (413, "INVALID_ARGUMENT"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (502, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ],
)
def test_error_body_is_a_google_rpc_status(status: int, name: str) -> None:
    error = error_from_status(status, "what went wrong", "some_code")
    body = json.loads(gemini_error_body(error))
    assert list(body) == ["error"]
    assert body["error"]["code"] == status
    assert body["error"]["message"] == "what went wrong"
    assert body["error"]["status"] == name
    assert body["error"]["details"][0] == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "SOME_CODE",
        "domain": "llmbus",
    }


def test_error_body_says_when_to_retry() -> None:
    error = ApiError("slow down", status=429, code="rate_limit_exceeded", retry_after=4.2)
    details = json.loads(gemini_error_body(error))["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "5s"} in details


# --- paths ---------------------------------------------------------------------------------


def _scope(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "query_string": query, "headers": headers or []}


def test_paths_name_the_model_and_the_method() -> None:
    whole = dialect_for(_scope("/v1beta/models/gemini-2.5-flash:generateContent"))
    assert whole is not None
    assert (whole.model, whole.stream) == ("gemini-2.5-flash", False)
    stream = dialect_for(_scope("/v1beta/models/claude/claude-sonnet-4-5:streamGenerateContent", b"alt=sse"))
    assert stream is not None
    assert (stream.model, stream.stream, stream.sse) == (
        "claude/claude-sonnet-4-5",
        True,
        True,
    )
    array = dialect_for(_scope("/v1beta/models/ollama/llama3:8b:streamGenerateContent"))
    assert array is not None
    assert (array.model, array.sse) == ("ollama/llama3:8b", False)
    for other in (
        "/v1beta/models/gemini-2.5-flash:countTokens",
        "/v1beta/models/gemini-2.5-flash",
        "/v1beta/models/:generateContent",
        "/v1/chat/completions",
        "/v1beta/tunedModels/x:generateContent",
    ):
        assert dialect_for(_scope(other)) is None, other


def test_a_query_key_joins_the_headers_unless_a_header_has_one() -> None:
    scope = _scope("/v1beta/models/m:generateContent", b"key=sk-query%2B1&alt=sse")
    assert dialect_for(scope) is not None
    assert scope["headers"] == [(b"x-goog-api-key", b"sk-query+1")]
    sent = [(b"x-goog-api-key", b"sk-header")]
    scope = _scope("/v1beta/models/m:generateContent", b"key=sk-query", list(sent))
    assert dialect_for(scope) is not None
    assert scope["headers"] == sent


def test_a_signature_that_is_not_base64_is_left_out() -> None:
    """Gemini clients decode `thoughtSignature` as bytes: one they cannot decode would
    fail the whole answer."""
    builder = ResponseBuilder(RESPONSE_ID, "m")
    builder.add(
        Delta(
            seq=1, tool_calls=[ToolCallDelta(index=0, id="a", name="f", arguments="{}", signature="no*b64")]
        )
    )
    builder.add(
        Delta(seq=2, tool_calls=[ToolCallDelta(index=1, id="b", name="f", arguments="{}", signature="c2ln")])
    )
    parts = json.loads(builder.build(Done(seq=3), None))["candidates"][0]["content"]["parts"]
    assert [part.get("thoughtSignature") for part in parts] == [None, "c2ln"]


def test_an_embedding_model_offers_no_generation_method() -> None:
    answer = json.dumps(
        {
            "id": "text-embedding-3-small",
            "providers": ["openai"],
            "offers": [{"provider": "openai", "features": {"streaming": False, "embeddings": True}}],
        }
    ).encode()
    model = json.loads(gemini_model(answer))
    assert model.get("supportedGenerationMethods", []) == []
    assert "/v1/embeddings" in model["description"]
