"""The OpenAI family: `POST /v1/chat/completions` (and `/chat/completions`), `GET
/v1/models`, in OpenAI's exact wire format (see `wire.py`)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmbus.mock_upstream import embeddings, wire
from llmbus.mock_upstream.scenarios import Scenario
from llmbus.mock_upstream.script import Answer, Prompt, ToolSpec, split
from llmbus.mock_upstream.serve import MockState, Reply, json_response, serve

__all__ = ["MODELS", "OpenAIDialect", "bearer", "parse_chat", "routes"]

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4-turbo", "gpt-4-turbo-preview", "gpt-3.5-turbo", "gpt-4.1")


def bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _images_of(content: object) -> list[str]:
    out: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = str((part.get("image_url") or {}).get("url", ""))
                out.append(url.split(";", 1)[0].removeprefix("data:") if url.startswith("data:") else url)
    return out


def parse_chat(body: Any) -> Prompt:
    """An OpenAI chat-completions body as a `Prompt` (Copilot's API takes the same)."""
    if not isinstance(body, dict):
        raise Reply(
            400, wire.error_body("Invalid request body: expected a JSON object.", "invalid_request_error")
        )
    if not isinstance(body.get("model"), str):
        raise Reply(
            400, wire.error_body("you must provide a model parameter", "invalid_request_error", param="model")
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise Reply(
            400,
            wire.error_body(
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                code="missing_required_parameter",
                param="messages",
            ),
        )
    last = messages[-1]
    last_user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        choice = str((choice.get("function") or {}).get("name", "auto"))
    role = last.get("role")
    return Prompt(
        model=body["model"],
        last_user_text=_text_of(last_user.get("content")),
        prompt_text=" ".join(_text_of(m.get("content")) for m in messages),
        images=_images_of(last_user.get("content")) if role == "user" else [],
        tools=[
            ToolSpec(name=str(f.get("name", "tool")), parameters=f.get("parameters") or {})
            for t in body.get("tools") or []
            if isinstance(f := t.get("function"), dict)
        ],
        tool_choice=str(choice),
        last_turn="tool" if role == "tool" else "user" if role == "user" else "assistant",
        tool_result=_text_of(last.get("content")) if role == "tool" else "",
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        stream=bool(body.get("stream")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
    )


class OpenAIDialect:
    family = "openai"
    stream_media_type = "text/event-stream"

    def key(self, request: Request) -> str:
        return bearer(request)

    def missing_key(self) -> Reply:
        return Reply(
            401,
            wire.error_body(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
            ),
        )

    def bad_json(self) -> Reply:
        return Reply(
            400,
            wire.error_body(
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly.)",
                "invalid_request_error",
            ),
        )

    def parse(self, body: Any, request: Request) -> Prompt:
        return parse_chat(body)

    def error(self, scenario: Scenario, prompt: Prompt, key: str, retry_after: int) -> Reply:
        if scenario is Scenario.ERROR_400:
            return Reply(
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
            return Reply(
                401,
                wire.error_body(
                    f"Incorrect API key provided: {hint}.", "invalid_request_error", "invalid_api_key"
                ),
            )
        if scenario is Scenario.ERROR_429:
            return Reply(
                429,
                wire.error_body(
                    f"Rate limit reached for {prompt.model} in organization org-mock on requests per min "
                    f"(RPM): Limit 3, Used 3, Requested 1. Please try again in {retry_after}s.",
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
            return Reply(
                500,
                wire.error_body(
                    "The server had an error while processing your request. Sorry about that!", "server_error"
                ),
            )
        return Reply(503, wire.error_body("The server is overloaded or not ready yet.", "server_error"))

    def whole(self, answer: Answer, prompt: Prompt) -> object:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text or None, "refusal": None}
        if answer.calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in answer.calls
            ]
        message["annotations"] = []
        return wire.completion(
            id=f"chatcmpl-mock{answer.id}",
            created=int(time.time()),
            model=prompt.model,
            message=message,
            finish_reason=answer.finish,
            usage=wire.usage(answer.prompt_tokens, answer.completion_tokens),
        )

    def frames(self, answer: Answer, prompt: Prompt, parts: int) -> list[bytes]:
        include_usage = prompt.include_usage
        created = int(time.time())
        usage = wire.usage(answer.prompt_tokens, answer.completion_tokens)

        def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> bytes:
            return wire.sse(
                wire.chunk(
                    id=f"chatcmpl-mock{answer.id}",
                    created=created,
                    model=prompt.model,
                    delta=delta,
                    finish_reason=finish,
                    include_usage=include_usage,
                    usage=usage if delta is None else None,
                )
            )

        if not answer.calls:
            deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
            deltas += [{"content": piece} for piece in split(answer.text, parts)]
        else:
            deltas = [{"role": "assistant", "content": None, "refusal": None}]
            for index, call in enumerate(answer.calls):
                head = {
                    "index": index,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                deltas.append({"tool_calls": [head]})
            # Argument fragments of parallel calls interleave, as OpenAI's do.
            pieces = [split(call.arguments, max(1, parts // len(answer.calls))) for call in answer.calls]
            for round_ in range(max(len(p) for p in pieces)):
                for index, fragments in enumerate(pieces):
                    if round_ < len(fragments):
                        deltas.append(
                            {"tool_calls": [{"index": index, "function": {"arguments": fragments[round_]}}]}
                        )
        frames = [chunk(delta) for delta in deltas]
        frames.append(chunk({}, answer.finish))
        if include_usage:
            frames.append(chunk(None))
        frames.append(wire.DONE)
        return frames

    def midstream_error(self) -> bytes:
        return wire.sse(
            wire.error_body(
                "The server had an error while processing your request. Sorry about that!", "server_error"
            )
        )

    def malformed(self) -> bytes:
        return b'data: {"id": "chatcmpl-mock", "choices": [{"delta": \n\n'


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1715367049, "owned_by": "system"}


def routes(state: MockState) -> list[Route]:
    dialect = OpenAIDialect()

    async def chat_completions(request: Request) -> Response:
        return await serve(state, dialect, request)

    async def embed(request: Request) -> Response:
        return await embeddings.openai_embeddings(state, request)

    async def models(request: Request) -> Response:
        return json_response({"object": "list", "data": [_model(name) for name in MODELS]})

    async def model(request: Request) -> Response:
        name = request.path_params["model"]
        if name not in MODELS:
            return json_response(
                wire.error_body(
                    f"The model '{name}' does not exist", "invalid_request_error", "model_not_found", "model"
                ),
                404,
            )
        return json_response(_model(name))

    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embed, methods=["POST"]),
        Route("/embeddings", embed, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
    ]
