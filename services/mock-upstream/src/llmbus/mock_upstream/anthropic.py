"""The Anthropic family: `POST /v1/messages` and `GET /v1/models`, in the Messages API's
wire format (`anthropic-version: 2023-06-01`).

- The key is read from `x-api-key`; like the real API, the mock refuses a request
  without `anthropic-version` or without `max_tokens` (400 `invalid_request_error`).
- Answers: a `message` body, or the event stream `message_start`, per content block
  `content_block_start` / `content_block_delta` / `content_block_stop` (a `ping` after
  the first block starts), `message_delta` (stop reason, output tokens), `message_stop`.
  Tool calls are `tool_use` blocks, one per call, their input streamed as
  `input_json_delta` fragments.
- Errors by scenario, with Anthropic's error types: 400 `invalid_request_error`, 401
  `authentication_error`, 429 `rate_limit_error` (with `retry-after`), 500 `api_error`,
  `error-503` as Anthropic's 529 `overloaded_error`; a mid-stream failure is an
  `event: error` carrying `overloaded_error`.
- `GET /v1/models` is OpenAI's path too: these routes claim only requests that carry
  Anthropic's headers (`x-api-key` or `anthropic-version`), so the app lists this family
  before OpenAI's.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from llmbus.mock_upstream.scenarios import Scenario
from llmbus.mock_upstream.script import Answer, MockCall, Prompt, ToolSpec, split
from llmbus.mock_upstream.serve import MockState, Reply, encode, json_response, serve

__all__ = ["MODELS", "AnthropicDialect", "error_body", "parse_messages", "routes"]

MODELS: tuple[tuple[str, str, str], ...] = (
    # id, display name, release date
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
)

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

_request_ids = itertools.count(1)


def _request_id() -> str:
    return f"req_mock{next(_request_ids):016d}"


def error_body(type: str, message: str) -> dict[str, Any]:
    """Anthropic's error body: the same shape for every status."""
    return {"type": "error", "error": {"type": type, "message": message}, "request_id": _request_id()}


def _invalid(message: str) -> Reply:
    return Reply(400, error_body("invalid_request_error", message))


def _text_of(content: object) -> str:
    """The text of a string content or of the text blocks of a block list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _image_name(block: dict[str, Any]) -> str:
    """What the script reports for an image: its media type, or its URL."""
    source = block.get("source") or {}
    if source.get("type") == "url":
        return str(source.get("url", ""))
    return str(source.get("media_type", ""))


def _tool_choice(choice: object) -> str:
    if not isinstance(choice, dict):
        return "auto"
    kind = choice.get("type")
    if kind == "tool":
        return str(choice.get("name", "auto"))
    return {"any": "required", "none": "none"}.get(str(kind), "auto")


def parse_messages(body: Any, request: Request) -> Prompt:
    """A Messages API body as a `Prompt`; refuses what the real API refuses first."""
    if "anthropic-version" not in request.headers:
        raise _invalid("anthropic-version: header is required")
    if not isinstance(body, dict):
        raise _invalid("Input should be a valid dictionary")
    if not isinstance(body.get("model"), str):
        raise _invalid("model: Field required")
    if not isinstance(body.get("max_tokens"), int):
        raise _invalid("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise _invalid("messages: Field required")
    last = messages[-1]
    results = _blocks(last, "tool_result") if last.get("role") == "user" else []
    turn: Literal["user", "assistant", "tool"] = (
        "tool" if results else "user" if last.get("role") == "user" else "assistant"
    )
    last_user: dict[str, Any] = next(
        (m for m in reversed(messages) if m.get("role") == "user" and _text_of(m.get("content"))), {}
    )
    system = _text_of(body.get("system"))
    return Prompt(
        model=body["model"],
        last_user_text=_text_of(last_user.get("content")),
        prompt_text=" ".join([system, *(_text_of(m.get("content")) for m in messages)]).strip(),
        images=[_image_name(b) for b in _blocks(last, "image")] if turn == "user" else [],
        tools=[
            ToolSpec(name=str(t.get("name", "tool")), parameters=t.get("input_schema") or {})
            for t in body.get("tools") or []
            if isinstance(t, dict)
        ],
        tool_choice=_tool_choice(body.get("tool_choice")),
        last_turn=turn,
        tool_result=_text_of(results[-1].get("content")) if results else "",
        max_tokens=body["max_tokens"],
        stream=bool(body.get("stream")),
    )


def _tool_id(call: MockCall) -> str:
    return "toolu_" + call.id.removeprefix("call_")


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + encode(payload) + b"\n\n"


class AnthropicDialect:
    family = "anthropic"
    stream_media_type = "text/event-stream"

    def key(self, request: Request) -> str:
        return request.headers.get("x-api-key", "").strip()

    def missing_key(self) -> Reply:
        return Reply(401, error_body("authentication_error", "x-api-key header is required"))

    def bad_json(self) -> Reply:
        return _invalid("There was an error parsing the body of your request: it is not valid JSON.")

    def parse(self, body: Any, request: Request) -> Prompt:
        return parse_messages(body, request)

    def error(self, scenario: Scenario, prompt: Prompt, key: str, retry_after: int) -> Reply:
        if scenario is Scenario.ERROR_400:
            return _invalid("messages: the mock upstream rejects this request")
        if scenario is Scenario.ERROR_401:
            return Reply(401, error_body("authentication_error", "invalid x-api-key"))
        if scenario is Scenario.ERROR_429:
            return Reply(
                429,
                error_body(
                    "rate_limit_error",
                    "This request would exceed the rate limit for your organization (mock-org) of 50 "
                    "requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
                ),
                {
                    "retry-after": str(retry_after),
                    "anthropic-ratelimit-requests-limit": "50",
                    "anthropic-ratelimit-requests-remaining": "0",
                },
            )
        if scenario is Scenario.ERROR_500:
            return Reply(500, error_body("api_error", "Internal server error"))
        return Reply(529, error_body("overloaded_error", "Overloaded"))

    def whole(self, answer: Answer, prompt: Prompt) -> object:
        content: list[dict[str, Any]] = [
            {"type": "tool_use", "id": _tool_id(c), "name": c.name, "input": c.input} for c in answer.calls
        ] or [{"type": "text", "text": answer.text}]
        return {
            "id": f"msg_mock{answer.id}",
            "type": "message",
            "role": "assistant",
            "model": prompt.model,
            "content": content,
            "stop_reason": STOP_REASONS[answer.finish],
            "stop_sequence": None,
            "usage": _usage(answer.prompt_tokens, answer.completion_tokens),
        }

    def frames(self, answer: Answer, prompt: Prompt, parts: int) -> list[bytes]:
        message: dict[str, Any] = {
            "id": f"msg_mock{answer.id}",
            "type": "message",
            "role": "assistant",
            "model": prompt.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(answer.prompt_tokens, 1),
        }
        frames = [_event("message_start", {"type": "message_start", "message": message})]
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if answer.calls:
            for call in answer.calls:
                head = {"type": "tool_use", "id": _tool_id(call), "name": call.name, "input": {}}
                # Anthropic opens every tool block with an empty fragment.
                fragments = ["", *split(call.arguments, max(1, parts // len(answer.calls)))]
                blocks.append((head, [{"type": "input_json_delta", "partial_json": f} for f in fragments]))
        else:
            pieces = split(answer.text, parts)
            blocks.append(({"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in pieces]))
        for index, (head, deltas) in enumerate(blocks):
            frames.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": head},
                )
            )
            if index == 0:
                frames.append(_event("ping", {"type": "ping"}))
            frames += [
                _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                for delta in deltas
            ]
            frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        frames.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": STOP_REASONS[answer.finish], "stop_sequence": None},
                    "usage": {"output_tokens": answer.completion_tokens},
                },
            )
        )
        frames.append(_event("message_stop", {"type": "message_stop"}))
        return frames

    def midstream_error(self) -> bytes:
        return _event(
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )

    def malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": \n\n'


class _AnthropicRoute(Route):
    """A route that claims only requests carrying Anthropic's headers."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        headers = Headers(scope=scope)
        if "x-api-key" not in headers and "anthropic-version" not in headers:
            return Match.NONE, {}
        return super().matches(scope)


def _model(model_id: str, display_name: str, created_at: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": display_name, "created_at": created_at}


def _check_headers(request: Request) -> Response | None:
    """The checks of the real models API: a key, then the version header."""
    if not request.headers.get("x-api-key"):
        return json_response(error_body("authentication_error", "x-api-key header is required"), 401)
    if "anthropic-version" not in request.headers:
        return json_response(
            error_body("invalid_request_error", "anthropic-version: header is required"), 400
        )
    return None


def routes(state: MockState) -> list[Route]:
    dialect = AnthropicDialect()

    async def messages(request: Request) -> Response:
        return await serve(state, dialect, request)

    async def models(request: Request) -> Response:
        if (refused := _check_headers(request)) is not None:
            return refused
        data = [_model(*entry) for entry in MODELS]
        return json_response(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )

    async def model(request: Request) -> Response:
        if (refused := _check_headers(request)) is not None:
            return refused
        name = request.path_params["model"]
        for entry in MODELS:
            if entry[0] == name:
                return json_response(_model(*entry))
        return json_response(error_body("not_found_error", f"model: {name}"), 404)

    return [
        Route("/v1/messages", messages, methods=["POST"]),
        _AnthropicRoute("/v1/models", models, methods=["GET"]),
        _AnthropicRoute("/v1/models/{model:path}", model, methods=["GET"]),
    ]
