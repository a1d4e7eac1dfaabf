"""The mock upstream speaks the Gemini API's wire format. The google-genai SDK is not
installed here, so the bodies are checked against the documented shapes
(ai.google.dev/api/generate-content, the SDK's `types.py` field names). Driven
in-process over ASGI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.gemini import SIGNATURE
from llmbus.mock_upstream.settings import MockSettings

KEY = {"x-goog-api-key": "AIza-unit"}
HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
WEATHER = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "parametersJsonSchema": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
        {"name": "get_time", "parametersJsonSchema": {"type": "object", "properties": {}}},
    ]
}


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(MockSettings(chunks=4, hang_seconds=0.05, retry_after_seconds=7))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://mock") as client:
        yield client


def _url(model: str, method: str = "generateContent") -> str:
    return f"/v1beta/models/{model}:{method}"


def _events(text: str) -> list[dict[str, Any]]:
    blocks = [block for block in text.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in blocks), blocks
    return [json.loads(block.removeprefix("data: ")) for block in blocks]


async def test_whole_answer_has_the_documented_shape_and_echoes_the_last_user_message(
    http: httpx2.AsyncClient,
) -> None:
    response = await http.post(_url("gemini-2.5-flash"), json=HELLO, headers=KEY)
    assert response.status_code == 200
    body = response.json()
    candidate = body["candidates"][0]
    assert candidate["content"] == {"parts": [{"text": "Mock answer to: hello there"}], "role": "model"}
    assert candidate["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert body["modelVersion"] == "gemini-2.5-flash"
    assert body["responseId"]


async def test_sse_stream_is_compact_data_events_without_an_end_marker(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        _url("gemini-2.5-flash", "streamGenerateContent?alt=sse"), json=HELLO, headers=KEY
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in response.text
    first_line = response.text.split("\n", 1)[0]
    assert first_line.startswith('data: {"candidates": [{"content": {"parts": [{"text": ')
    assert ', "' not in first_line  # Google's compact style: no space after commas
    events = _events(response.text)
    assert len(events) == 4
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    assert text == "Mock answer to: hello there"
    assert [e["candidates"][0].get("finishReason") for e in events] == [None, None, None, "STOP"]
    assert all("usageMetadata" in e for e in events)
    counts = [e["usageMetadata"]["candidatesTokenCount"] for e in events]
    assert counts == sorted(counts)


async def test_stream_method_without_alt_sse_answers_one_json_array(http: httpx2.AsyncClient) -> None:
    response = await http.post(_url("gemini-2.5-flash", "streamGenerateContent"), json=HELLO, headers=KEY)
    assert response.headers["content-type"].startswith("application/json")
    chunks = response.json()
    assert isinstance(chunks, list)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_key_may_come_in_the_query(http: httpx2.AsyncClient) -> None:
    response = await http.post(_url("gemini-2.5-flash") + "?key=AIza-unit", json=HELLO)
    assert response.status_code == 200


async def test_missing_key_is_refused_with_403_permission_denied(http: httpx2.AsyncClient) -> None:
    response = await http.post(_url("gemini-2.5-flash"), json=HELLO)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert "unregistered callers" in error["message"]


async def test_bad_key_gets_400_api_key_invalid_as_google_answers(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        _url("gemini-2.5-flash"), json=HELLO, headers={"x-goog-api-key": "AIza-error-401"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


async def test_rate_limit_carries_retry_info(http: httpx2.AsyncClient) -> None:
    response = await http.post(_url("error-429"), json=HELLO, headers=KEY)
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    retry = [d for d in error["details"] if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]


@pytest.mark.parametrize(
    ("model", "status", "name"),
    [
        ("error-400", 400, "INVALID_ARGUMENT"),
        ("error-500", 500, "INTERNAL"),
        ("error-503", 503, "UNAVAILABLE"),
    ],
)
async def test_error_scenarios_answer_google_status_bodies(
    http: httpx2.AsyncClient, model: str, status: int, name: str
) -> None:
    response = await http.post(_url(model), json=HELLO, headers=KEY)
    assert response.status_code == status
    assert response.json()["error"]["code"] == status
    assert response.json()["error"]["status"] == name


async def test_tool_call_is_a_whole_function_call_part_with_a_signature(http: httpx2.AsyncClient) -> None:
    body = {**HELLO, "tools": [WEATHER]}
    response = await http.post(_url("gemini-2.5-flash"), json=body, headers=KEY)
    candidate = response.json()["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    assert candidate["content"]["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": {"city": "mock", "days": 1}},
            "thoughtSignature": SIGNATURE,
        }
    ]


async def test_parallel_calls_stream_one_part_each_and_only_the_first_is_signed(
    http: httpx2.AsyncClient,
) -> None:
    body = {**HELLO, "tools": [WEATHER]}
    url = _url("parallel-tools", "streamGenerateContent?alt=sse")
    events = _events((await http.post(url, json=body, headers=KEY)).text)
    parts = [e["candidates"][0]["content"]["parts"][0] for e in events]
    assert [p["functionCall"]["name"] for p in parts] == ["get_weather", "get_time"]
    assert [("thoughtSignature" in p) for p in parts] == [True, False]


async def test_forced_function_and_none_mode_are_honoured(http: httpx2.AsyncClient) -> None:
    forced = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}
    body = {**HELLO, "tools": [WEATHER], "toolConfig": forced}
    parts = (await http.post(_url("m"), json=body, headers=KEY)).json()["candidates"][0]["content"]["parts"]
    assert parts[0]["functionCall"]["name"] == "get_time"
    body["toolConfig"] = {"functionCallingConfig": {"mode": "NONE"}}
    parts = (await http.post(_url("m"), json=body, headers=KEY)).json()["candidates"][0]["content"]["parts"]
    assert "text" in parts[0]


async def test_function_response_turn_is_answered_from_the_result(http: httpx2.AsyncClient) -> None:
    body = {
        "contents": [
            HELLO["contents"][0],
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}],
            },
        ],
        "tools": [WEATHER],
    }
    response = await http.post(_url("m"), json=body, headers=KEY)
    assert response.json()["candidates"][0]["content"]["parts"] == [{"text": "Tool said: sunny"}]


async def test_inline_and_file_images_are_reported(http: httpx2.AsyncClient) -> None:
    parts = [
        {"text": "look"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
    ]
    body = {"contents": [{"role": "user", "parts": parts}]}
    response = await http.post(_url("m"), json=body, headers=KEY)
    text = response.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert text == "Mock answer to: look [images: image/png, https://example.com/cat.jpg]"


async def test_max_output_tokens_truncates_with_max_tokens_finish(http: httpx2.AsyncClient) -> None:
    body = {**HELLO, "generationConfig": {"maxOutputTokens": 2}}
    candidate = (await http.post(_url("m"), json=body, headers=KEY)).json()["candidates"][0]
    assert candidate["finishReason"] == "MAX_TOKENS"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role: user, model"),
    ],
)
async def test_invalid_requests_are_refused_like_google(
    http: httpx2.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await http.post(_url("m"), json=body, headers=KEY)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert message in response.json()["error"]["message"]


async def test_unknown_method_is_404(http: httpx2.AsyncClient) -> None:
    response = await http.post(_url("m", "embedContent"), json=HELLO, headers=KEY)
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


async def test_midstream_error_is_an_error_object_in_place_of_a_chunk(http: httpx2.AsyncClient) -> None:
    url = _url("midstream-error", "streamGenerateContent?alt=sse")
    events = _events((await http.post(url, json=HELLO, headers=KEY)).text)
    assert "candidates" in events[0]
    assert events[-1] == {
        "error": {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
    }


async def test_model_list_is_in_google_format_and_needs_a_key(http: httpx2.AsyncClient) -> None:
    listing = (await http.get("/v1beta/models", headers=KEY)).json()
    names = [m["name"] for m in listing["models"]]
    assert "models/gemini-2.5-flash" in names
    model = listing["models"][0]
    assert {"inputTokenLimit", "outputTokenLimit", "supportedGenerationMethods", "displayName"} <= set(model)
    assert (await http.get("/v1beta/models")).status_code == 403
    assert (await http.get("/v1beta/models", headers={"x-goog-api-key": "AIza-error-401"})).status_code == 400
    one = await http.get("/v1beta/models/gemini-2.5-pro", headers=KEY)
    assert one.json()["name"] == "models/gemini-2.5-pro"
    assert (await http.get("/v1beta/models/gpt-4o", headers=KEY)).status_code == 404


async def test_requests_are_recorded_without_the_key(http: httpx2.AsyncClient) -> None:
    await http.post(_url("gemini-2.5-flash"), json=HELLO, headers=KEY)
    record = (await http.get("/__mock__/requests")).json()[-1]
    assert record["family"] == "gemini"
    assert "x-goog-api-key" not in record["headers"]
    assert record["key_fingerprint"]
