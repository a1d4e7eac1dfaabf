"""Property-based tests of the edge, in process on the bus twin (`tests.property.twin`):
whatever a client sends, the edge answers a 2xx or a 4xx in the client's own error
format, never a 5xx.

- hypothesis: arbitrary JSON shapes, valid bodies with arbitrary values in their fields,
  and raw bytes, on both chat routes (OpenAI chat completions, Anthropic messages);
- schemathesis: every operation of the edge's own OpenAPI document (the chat routes'
  bodies described from the msgspec types that decode them), valid and invalid cases.

Runs are derandomized (the same examples on every run) and small: a few hundred examples
in all."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmbus.edge.app import create_app
from llmbus.edge.settings import EdgeSettings
from tests.property.twin import KEY, Twin, edge_twin

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
ROUTES = [CHAT, MESSAGES, "/v1/messages/count_tokens"]
LIMITS = {"max_body_bytes": 256 * 1024, "max_messages": 16, "max_tools": 4, "max_json_depth": 8}

FUZZ = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
"""Any JSON value: nested objects and arrays, huge integers, odd strings."""

FIELDS = [
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "stop",
    "stop_sequences",
    "tools",
    "tool_choice",
    "response_format",
    "system",
    "thinking",
    "metadata",
    "seed",
    "top_k",
    "n",
]


def _message_shapes() -> st.SearchStrategy[Any]:
    """Messages that are nearly right: real roles and content shapes, fields arbitrary."""
    part = st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url", "image", "tool_use", "tool_result", "thinking"])},
        optional={"text": json_values, "image_url": json_values, "source": json_values, "input": json_values},
    )
    return st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "x"])},
        optional={
            "content": st.text(max_size=30) | st.lists(part, max_size=3) | json_values,
            "tool_calls": json_values,
            "tool_call_id": json_values,
        },
    )


bodies_near_valid: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["ok", "unknown", ""]) | json_values,
        "messages": st.lists(_message_shapes(), max_size=20) | json_values,
    },
    optional={name: json_values for name in FIELDS[2:]} | {"max_tokens": st.integers(-5, 2**64)},
)


@pytest.fixture(scope="module")
def edge() -> Iterator[tuple[asyncio.Runner, Twin]]:
    """One twin for the module, in a loop of its own (hypothesis calls the tests
    synchronously, once per example)."""
    with asyncio.Runner() as runner:
        context = edge_twin(**LIMITS)
        twin = runner.run(context.__aenter__())
        twin.release.set()  # nothing is held: `hold` answers at once
        try:
            yield runner, twin
        finally:
            runner.run(context.__aexit__(None, None, None))


def _post(edge: tuple[asyncio.Runner, Twin], path: str, content: bytes) -> httpx2.Response:
    runner, twin = edge
    headers = {"authorization": f"Bearer {KEY}", "x-api-key": KEY, "content-type": "application/json"}
    return runner.run(twin.http.post(path, content=content, headers=headers))


def _assert_answered_in_format(path: str, response: httpx2.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        if path.startswith(MESSAGES):
            assert body["type"] == "error", body
            assert isinstance(body["error"]["message"], str)
        else:
            assert isinstance(body["error"]["message"], str), body
            assert "Traceback" not in body["error"]["message"]


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


@FUZZ
@given(path=st.sampled_from(ROUTES), body=json_values)
def test_any_json_shape_is_answered_without_a_server_error(
    edge: tuple[asyncio.Runner, Twin], path: str, body: Any
) -> None:
    _assert_answered_in_format(path, _post(edge, path, _encode(body)))


@FUZZ
@given(path=st.sampled_from(ROUTES), body=bodies_near_valid)
def test_nearly_valid_bodies_are_answered_without_a_server_error(
    edge: tuple[asyncio.Runner, Twin], path: str, body: dict[str, Any]
) -> None:
    _assert_answered_in_format(path, _post(edge, path, _encode(body)))


@FUZZ
@given(path=st.sampled_from(ROUTES), body=st.binary(max_size=200))
def test_raw_bytes_are_answered_without_a_server_error(
    edge: tuple[asyncio.Runner, Twin], path: str, body: bytes
) -> None:
    _assert_answered_in_format(path, _post(edge, path, body))


# --- schemathesis over the edge's OpenAPI ---------------------------------------------------

_document = create_app(EdgeSettings(), None).openapi()  # type: ignore[arg-type]
schema = schemathesis.openapi.from_dict(_document).exclude(path="/readyz")
"""`/readyz` is left out: on the twin no worker reports, so its 503 is its right answer."""


@schema.parametrize()
@settings(
    max_examples=8,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_openapi_document_fuzzed_gives_no_server_error(
    case: schemathesis.Case[Any], edge: tuple[asyncio.Runner, Twin]
) -> None:
    runner, twin = edge
    kwargs = case.as_transport_kwargs(base_url="http://edge", headers={"authorization": f"Bearer {KEY}"})
    request = {k: v for k, v in kwargs.items() if k in ("method", "url", "headers", "params", "json", "data")}
    if "json" in request:
        request["content"] = json.dumps(request.pop("json")).encode()
    if "data" in request:
        request["content"] = request.pop("data")
    response = runner.run(twin.http.request(**request))
    if response.status_code == 503 and _ABSENT.fullmatch(str(response.json()["error"].get("code"))):
        return  # a route whose service the twin does not run: its honest 503 names it
    _assert_answered_in_format(case.formatted_path, response)


_ABSENT = re.compile(r"no_\w+_available")
"""The code of the 503 an edge route answers when nobody on the bus serves what it asks
(`llmbus.edge.bus_errors`): the twin fakes only what the chat routes need."""
