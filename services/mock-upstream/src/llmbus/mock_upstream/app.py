"""An OpenAI-compatible upstream for development, demos and tests.

`POST /v1/chat/completions` answers in OpenAI's exact wire format, streamed or not:
it echoes the last user message back, or calls the first tool when the request offers
tools. Scenarios (see `scenarios.py`) script failures: error statuses with OpenAI's
bodies, hangs, malformed SSE, errors and dropped connections mid-stream.

The admin API under `/__mock__/` lets tests look at what the gateway sent:
`GET requests` (each with its body and its `outcome`: `rejected`, `streaming`,
`completed`, or `aborted` when the caller went away first), `POST reset`, `POST scenario`
(`{"scenario": "error-500"}` or null).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmbus.mock_upstream import wire
from llmbus.mock_upstream.scenarios import Scenario, pick_scenario
from llmbus.mock_upstream.settings import MockSettings

__all__ = ["MockState", "create_app"]

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4-turbo", "gpt-4-turbo-preview", "gpt-3.5-turbo")
_decode = msgspec.json.Decoder().decode
_ids = itertools.count(1)


class _Reply(Exception):
    """An error answer, raised while reading the request."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


class MockState:
    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.forced: Scenario | None = None
        self.requests: deque[dict[str, Any]] = deque(maxlen=1000)


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(wire._encode(body), status, headers=headers, media_type="application/json")


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def _example(schema: object) -> object:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(str(kind), "mock")


def _tool_call(body: dict[str, Any]) -> dict[str, str] | None:
    """The call the mock makes: the named tool, else the first one, when the last message
    is the user's and tool_choice allows it."""
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none" or not messages or messages[-1].get("role") != "user":
        return None
    tool = tools[0]
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        tool = next((t for t in tools if t.get("function", {}).get("name") == wanted), tool)
    function = tool.get("function") or {}
    properties = (function.get("parameters") or {}).get("properties") or {}
    arguments = {name: _example(schema) for name, schema in properties.items()}
    return {"name": str(function.get("name", "tool")), "arguments": wire._encode(arguments).decode()}


def _split(text: str, parts: int) -> list[str]:
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _check_body(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Reply(
            400, wire.error_body("Invalid request body: expected a JSON object.", "invalid_request_error")
        )
    if not isinstance(body.get("model"), str):
        raise _Reply(
            400,
            wire.error_body("you must provide a model parameter", "invalid_request_error", param="model"),
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Reply(
            400,
            wire.error_body(
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                code="missing_required_parameter",
                param="messages",
            ),
        )
    return body


def _scenario_error(scenario: Scenario, model: str, key: str, retry_after: int) -> _Reply | None:
    if scenario is Scenario.ERROR_400:
        return _Reply(
            400,
            wire.error_body(
                "Invalid value for 'messages': the mock upstream rejects this request.",
                "invalid_request_error",
                code="invalid_value",
                param="messages",
            ),
        )
    if scenario is Scenario.ERROR_401:
        hint = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
        return _Reply(
            401,
            wire.error_body(
                f"Incorrect API key provided: {hint}.", "invalid_request_error", "invalid_api_key"
            ),
        )
    if scenario is Scenario.ERROR_429:
        return _Reply(
            429,
            wire.error_body(
                f"Rate limit reached for {model} in organization org-mock on requests per min (RPM): "
                f"Limit 3, Used 3, Requested 1. Please try again in {retry_after}s.",
                "requests",
                "rate_limit_exceeded",
            ),
            {
                "retry-after": str(retry_after),
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{retry_after}s",
            },
        )
    if scenario is Scenario.ERROR_500:
        return _Reply(
            500,
            wire.error_body(
                "The server had an error while processing your request. Sorry about that!", "server_error"
            ),
        )
    if scenario is Scenario.ERROR_503:
        return _Reply(503, wire.error_body("The server is overloaded or not ready yet.", "server_error"))
    return None


def create_app(settings: MockSettings | None = None) -> Starlette:
    state = MockState(settings or MockSettings())

    async def chat_completions(request: Request) -> Response:
        raw = await request.body()
        key = _bearer(request)
        try:
            body = _decode(raw)
        except msgspec.DecodeError:
            body = None
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "headers": {k: v for k, v in request.headers.items() if k != "authorization"},
            "key_fingerprint": _fingerprint(key) if key else None,
            "peer": f"{request.client.host}:{request.client.port}" if request.client else None,
            "body": body,
            "outcome": "pending",
        }
        state.requests.append(record)
        try:
            if not key:
                raise _Reply(
                    401,
                    wire.error_body(
                        "You didn't provide an API key. You need to provide your API key in an "
                        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                        "invalid_request_error",
                    ),
                )
            if body is None:
                raise _Reply(
                    400,
                    wire.error_body(
                        "We could not parse the JSON body of your request. (HINT: This likely means you "
                        "aren't using your HTTP library correctly.)",
                        "invalid_request_error",
                    ),
                )
            body = _check_body(body)
            scenario = pick_scenario(state.forced, body["model"], key)
            failure = _scenario_error(scenario, body["model"], key, state.settings.retry_after_seconds)
            if failure is not None:
                raise failure
        except _Reply as reply:
            record["outcome"] = "rejected"
            return _json(reply.body, reply.status, reply.headers)

        settings = state.settings
        try:
            if settings.latency_ms:
                await asyncio.sleep(settings.latency_ms / 1000)
            if scenario is Scenario.HANG:
                await asyncio.sleep(settings.hang_seconds)
            if scenario is Scenario.SLOW_START:
                await asyncio.sleep(settings.slow_start_seconds)
        except asyncio.CancelledError:
            record["outcome"] = "aborted"
            raise
        answer = _Answer(body, settings)
        if body.get("stream"):
            return StreamingResponse(
                answer.stream(scenario, record),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        record["outcome"] = "completed"
        return _json(answer.whole())

    async def models(request: Request) -> Response:
        return _json({"object": "list", "data": [_model(name) for name in MODELS]})

    async def model(request: Request) -> Response:
        name = request.path_params["model"]
        if name not in MODELS:
            return _json(
                wire.error_body(
                    f"The model '{name}' does not exist", "invalid_request_error", "model_not_found", "model"
                ),
                404,
            )
        return _json(_model(name))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def admin_requests(request: Request) -> Response:
        return _json(list(state.requests))

    async def admin_reset(request: Request) -> Response:
        state.requests.clear()
        state.forced = None
        return _json({"status": "reset"})

    async def admin_scenario(request: Request) -> Response:
        try:
            name = _decode(await request.body()).get("scenario")
            state.forced = None if name is None else Scenario(name)
        except (msgspec.DecodeError, AttributeError, ValueError):
            names = ", ".join(s.value for s in Scenario)
            return _json({"error": f'expected {{"scenario": one of {names} or null}}'}, 400)
        return _json({"scenario": state.forced})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/models", models, methods=["GET"]),
            Route("/v1/models/{model:path}", model, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/__mock__/requests", admin_requests, methods=["GET"]),
            Route("/__mock__/reset", admin_reset, methods=["POST"]),
            Route("/__mock__/scenario", admin_scenario, methods=["POST"]),
        ]
    )
    app.state.mock = state
    return app


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1715367049, "owned_by": "system"}


class _Answer:
    """One answer to one request: the echoed text or a tool call, whole or as chunks."""

    def __init__(self, body: dict[str, Any], settings: MockSettings) -> None:
        self.settings = settings
        self.model = body["model"]
        self.id = f"chatcmpl-mock{next(_ids):012d}"
        self.created = int(time.time())
        messages = body["messages"]
        prompt = " ".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict))
        last_user = next(
            (_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        self.tool = _tool_call(body)
        self.text = f"Mock answer to: {last_user}" if self.tool is None else ""
        completion_text = self.text if self.tool is None else self.tool["name"] + self.tool["arguments"]
        self.usage = wire.usage(_tokens(prompt), _tokens(completion_text))
        options = body.get("stream_options") or {}
        self.include_usage = bool(options.get("include_usage"))
        self.finish = "stop" if self.tool is None else "tool_calls"

    def whole(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None, "refusal": None}
        if self.tool is not None:
            message["tool_calls"] = [{"id": "call_mock0001", "type": "function", "function": self.tool}]
        message["annotations"] = []
        return wire.completion(
            id=self.id,
            created=self.created,
            model=self.model,
            message=message,
            finish_reason=self.finish,
            usage=self.usage,
        )

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None) -> bytes:
        return wire.sse(
            wire.chunk(
                id=self.id,
                created=self.created,
                model=self.model,
                delta=delta,
                finish_reason=finish,
                include_usage=self.include_usage,
                usage=self.usage if delta is None else None,
            )
        )

    def _deltas(self) -> list[dict[str, Any]]:
        parts = self.settings.chunks
        if self.tool is None:
            first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
            return [first] + [{"content": piece} for piece in _split(self.text, parts)]
        call = {
            "index": 0,
            "id": "call_mock0001",
            "type": "function",
            "function": {"name": self.tool["name"], "arguments": ""},
        }
        first = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
        fragments = _split(self.tool["arguments"], parts)
        return [first] + [{"tool_calls": [{"index": 0, "function": {"arguments": f}}]} for f in fragments]

    async def stream(self, scenario: Scenario, record: dict[str, Any]) -> AsyncIterator[bytes]:
        """The SSE stream; `record["outcome"]` says whether it ran to its scripted end."""
        record["outcome"] = "streaming"
        completed = False
        try:
            async for frame in self._frames(scenario):
                yield frame
            completed = True
        finally:
            record["outcome"] = "completed" if completed else "aborted"

    async def _frames(self, scenario: Scenario) -> AsyncIterator[bytes]:
        delay = self.settings.chunk_delay_ms / 1000
        if scenario is Scenario.SLOW:
            delay = max(delay, 0.5)
        deltas = self._deltas()
        failing = scenario in {
            Scenario.HANG_MIDSTREAM,
            Scenario.MALFORMED_SSE,
            Scenario.MIDSTREAM_ERROR,
            Scenario.DROP_MIDSTREAM,
        }
        if failing:
            deltas = deltas[: max(2, len(deltas) // 2)]
        for index, delta in enumerate(deltas):
            if delay and index:
                await asyncio.sleep(delay)
            yield self._chunk(delta)
        if scenario is Scenario.HANG_MIDSTREAM:
            await asyncio.sleep(self.settings.hang_seconds)
            return
        if scenario is Scenario.MALFORMED_SSE:
            yield b'data: {"id": "' + self.id.encode() + b'", "choices": [{"delta": \n\n'
            return
        if scenario is Scenario.MIDSTREAM_ERROR:
            yield wire.sse(
                wire.error_body(
                    "The server had an error while processing your request. Sorry about that!", "server_error"
                )
            )
            return
        if scenario is Scenario.DROP_MIDSTREAM:
            return
        yield self._chunk({}, self.finish)
        if self.include_usage:
            yield self._chunk(None)
        yield wire.DONE
