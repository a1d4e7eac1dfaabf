"""The Gemini family: the Gemini API (`v1beta`) as Google serves it.

- `POST /v1beta/models/{model}:generateContent` answers one `GenerateContentResponse`;
  `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` streams them as
  `data: <response>` events with no end marker (the stream ends at EOF); without
  `alt=sse` it answers Google's default for that method, one JSON array of the chunks.
- `GET /v1beta/models` (and `/v1beta/models/{model}`) in Google's list format.
- The key comes in `x-goog-api-key` or `?key=`. Without one Google answers **403**
  `PERMISSION_DENIED`; a bad key (the `error-401` scenario) gets what Google really
  answers, **400** `INVALID_ARGUMENT` with an `ErrorInfo` of reason `API_KEY_INVALID`.
- Errors are `google.rpc.Status` bodies, pretty-printed as Google prints them: 400
  `INVALID_ARGUMENT`, 429 `RESOURCE_EXHAUSTED` with `QuotaFailure` and `RetryInfo`
  details, 500 `INTERNAL`, 503 `UNAVAILABLE`. A failure mid-stream is an
  `{"error": {...}}` object in place of the next chunk (the shape the google-genai SDK
  checks every streamed chunk for).
- Stream events use Google's compact JSON (`": "` after keys, no space after commas);
  the model's calls carry a `thoughtSignature` on the first call of a step, as Gemini 3
  does, and no `id`, as Gemini 2.5 does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmbus.mock_upstream import embeddings
from llmbus.mock_upstream.scenarios import Scenario
from llmbus.mock_upstream.script import Answer, Prompt, ToolSpec, split, tokens
from llmbus.mock_upstream.serve import MockState, Reply, json_response, serve

__all__ = ["MODELS", "SIGNATURE", "GeminiDialect", "GeminiPrompt", "routes", "status_body"]

MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-3-pro-preview")

SIGNATURE = "Cj4BcsjafMockThoughtSignatureOfTheLlmbusMockUpstream0000000000000000000000000000AA=="
"""The opaque thought signature the mock puts on a step's first function call; base64,
as Google's are (Gemini clients decode it as bytes)."""

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_HELP = "https://ai.google.dev/gemini-api/docs/rate-limits"


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ": "), ensure_ascii=False).encode()


def _pretty(value: object) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"


def status_body(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    """A `google.rpc.Status` error body, as Google prints it."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return _pretty({"error": error})


def _invalid(message: str) -> Reply:
    return Reply(400, status_body(400, "INVALID_ARGUMENT", message))


def _bad_key() -> Reply:
    message = "API key not valid. Please pass a valid API key."
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
    ]
    return Reply(400, status_body(400, "INVALID_ARGUMENT", message, details))


def _no_key() -> Reply:
    return Reply(
        403,
        status_body(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        ),
    )


@dataclass
class GeminiPrompt(Prompt):
    """A prompt read from `streamGenerateContent` without `alt=sse`: answered whole, as
    a JSON array of the chunks."""

    json_array: bool = False


def _texts(parts: list[Any]) -> list[str]:
    return [str(p["text"]) for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _images(parts: list[Any]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(inline := part.get("inlineData"), dict):
            out.append(str(inline.get("mimeType", "")))
        elif isinstance(file := part.get("fileData"), dict):
            out.append(str(file.get("fileUri", "")))
    return out


def _result(parts: list[Any]) -> str:
    """The text of the tool results in a user turn ('' when it holds none)."""
    results = []
    for part in parts:
        response = part.get("functionResponse") if isinstance(part, dict) else None
        if isinstance(response, dict):
            value = response.get("response")
            if isinstance(value, dict) and set(value) == {"result"}:
                results.append(str(value["result"]))
            else:
                results.append(json.dumps(value, separators=(",", ":")))
    return " ".join(results)


def _contents(body: dict[str, Any]) -> list[dict[str, Any]]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _invalid("* GenerateContentRequest.contents: contents is not specified\n")
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise _invalid(f"Invalid value at 'contents[{i}]', expected a Content object.")
        if content.get("role", "user") not in ("user", "model"):
            raise _invalid("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise _invalid(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )
    return contents


def _tool_choice(body: dict[str, Any]) -> str:
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = str(config.get("mode", "AUTO")).upper()
    allowed = config.get("allowedFunctionNames") or []
    if mode == "NONE":
        return "none"
    if mode == "ANY":
        return str(allowed[0]) if len(allowed) == 1 else "required"
    return "auto"


def parse_request(body: Any, model: str, *, stream: bool, json_array: bool) -> GeminiPrompt:
    if not isinstance(body, dict):
        raise _invalid("Invalid JSON payload received. Expected an object.")
    contents = _contents(body)
    last = contents[-1]
    last_parts: list[Any] = last["parts"]
    tool_result = _result(last_parts) if last.get("role", "user") == "user" else ""
    user_turns = [c for c in contents if c.get("role", "user") == "user" and _texts(c["parts"])]
    last_user: list[Any] = user_turns[-1]["parts"] if user_turns else []
    system = body.get("systemInstruction") or {}
    texts = _texts(system.get("parts") or []) + [t for c in contents for t in _texts(c["parts"])]
    tools = [
        ToolSpec(
            name=str(declaration.get("name", "tool")),
            parameters=declaration.get("parametersJsonSchema") or declaration.get("parameters") or {},
        )
        for tool in body.get("tools") or []
        for declaration in (tool.get("functionDeclarations") or [] if isinstance(tool, dict) else [])
        if isinstance(declaration, dict)
    ]
    generation = body.get("generationConfig") or {}
    turn: Literal["user", "assistant", "tool"]
    if last.get("role") == "model":
        turn = "assistant"
    else:
        turn = "tool" if tool_result else "user"
    return GeminiPrompt(
        model=model,
        last_user_text=" ".join(_texts(last_user)),
        prompt_text=" ".join(texts),
        images=_images(last_parts) if turn == "user" else [],
        tools=tools,
        tool_choice=_tool_choice(body),
        last_turn=turn,
        tool_result=tool_result,
        max_tokens=generation.get("maxOutputTokens"),
        stream=stream,
        json_array=json_array,
    )


class GeminiDialect:
    family = "gemini"
    stream_media_type = "text/event-stream"

    def __init__(self, model: str = "", method: str = "generateContent") -> None:
        self.model = model
        self.method = method

    def key(self, request: Request) -> str:
        return request.headers.get("x-goog-api-key") or request.query_params.get("key", "")

    def missing_key(self) -> Reply:
        return _no_key()

    def bad_json(self) -> Reply:
        return _invalid("Invalid JSON payload received. Unexpected token.")

    def parse(self, body: Any, request: Request) -> Prompt:
        streaming = self.method == "streamGenerateContent"
        sse = streaming and request.query_params.get("alt") == "sse"
        return parse_request(body, self.model, stream=sse, json_array=streaming and not sse)

    def error(self, scenario: Scenario, prompt: Prompt, key: str, retry_after: int) -> Reply:
        if scenario is Scenario.ERROR_400:
            return _invalid("Request contains an invalid argument.")
        if scenario is Scenario.ERROR_401:
            return _bad_key()
        if scenario is Scenario.ERROR_429:
            quota = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
            message = (
                "You exceeded your current quota, please check your plan and billing details. "
                f"For more information on this error, head to: {_HELP}. "
                f"\n* Quota exceeded for metric: {quota}, limit: 10, model: {prompt.model}"
                f"\nPlease retry in {retry_after}s."
            )
            details: list[dict[str, Any]] = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": quota,
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            "quotaDimensions": {"location": "global", "model": prompt.model},
                            "quotaValue": "10",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [{"description": "Learn more about Gemini API quotas", "url": _HELP}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"},
            ]
            return Reply(429, status_body(429, "RESOURCE_EXHAUSTED", message, details))
        if scenario is Scenario.ERROR_500:
            return Reply(
                500,
                status_body(
                    500,
                    "INTERNAL",
                    "An internal error has occurred. Please retry or report in "
                    "https://developers.generativeai.google/guide/troubleshooting",
                ),
            )
        return Reply(503, status_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later."))

    def whole(self, answer: Answer, prompt: Prompt) -> object:
        if isinstance(prompt, GeminiPrompt) and prompt.json_array:
            return _pretty(self._chunks(answer, prompt, parts=1))
        body = self._response(answer, prompt, self._parts(answer), finish=True, completion=None)
        return _pretty(body)

    def frames(self, answer: Answer, prompt: Prompt, parts: int) -> list[bytes]:
        return [b"data: " + _compact(chunk) + b"\n\n" for chunk in self._chunks(answer, prompt, parts)]

    def midstream_error(self) -> bytes:
        error = {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
        return b"data: " + _compact({"error": error}) + b"\n\n"

    def malformed(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": \n\n'

    def _chunks(self, answer: Answer, prompt: Prompt, parts: int) -> list[dict[str, Any]]:
        if answer.calls:
            steps = [[part] for part in self._parts(answer)]
        else:
            steps = [[{"text": piece}] for piece in split(answer.text, parts)] or [[{"text": ""}]]
        chunks: list[dict[str, Any]] = []
        produced = ""
        for i, step in enumerate(steps):
            produced += "".join(str(p.get("text", "")) for p in step)
            last = i == len(steps) - 1
            completion = answer.completion_tokens if last else tokens(produced)
            chunks.append(self._response(answer, prompt, step, finish=last, completion=completion))
        return chunks

    @staticmethod
    def _parts(answer: Answer) -> list[dict[str, Any]]:
        if not answer.calls:
            return [{"text": answer.text}]
        parts: list[dict[str, Any]] = []
        for i, call in enumerate(answer.calls):
            part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.input}}
            if i == 0:
                part["thoughtSignature"] = SIGNATURE
            parts.append(part)
        return parts

    @staticmethod
    def _response(
        answer: Answer, prompt: Prompt, parts: list[dict[str, Any]], *, finish: bool, completion: int | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            candidate["finishReason"] = _FINISH[answer.finish]
        candidate["index"] = 0
        produced = answer.completion_tokens if completion is None else completion
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": answer.prompt_tokens,
                "candidatesTokenCount": produced,
                "totalTokenCount": answer.prompt_tokens + produced,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": answer.prompt_tokens}],
            },
            "modelVersion": prompt.model,
            "responseId": f"mock{answer.id}",
        }


def _model(name: str) -> dict[str, Any]:
    pro = "pro" in name
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name.replace("-", " ").title(),
        "description": f"{name}, served by the llmbus mock upstream",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": [
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent",
        ],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": pro or "2.5" in name or "3" in name,
    }


def _listing_refusal(request: Request) -> Response | None:
    key = GeminiDialect().key(request)
    reply = _no_key() if not key else _bad_key() if Scenario.ERROR_401.value in key else None
    return json_response(reply.body, reply.status) if reply else None


def routes(state: MockState) -> list[Route]:
    async def generate(request: Request) -> Response:
        model, _, method = str(request.path_params["call"]).rpartition(":")
        if method in ("embedContent", "batchEmbedContents") and model:
            return await embeddings.gemini_embed(state, request, model, method)
        if method not in ("generateContent", "streamGenerateContent") or not model:
            return json_response(
                status_body(404, "NOT_FOUND", f"Method not found: {method or request.url.path}."), 404
            )
        return await serve(state, GeminiDialect(model, method), request)

    async def models(request: Request) -> Response:
        refusal = _listing_refusal(request)
        return refusal or json_response(_pretty({"models": [_model(name) for name in MODELS]}))

    async def model(request: Request) -> Response:
        refusal = _listing_refusal(request)
        if refusal:
            return refusal
        name = str(request.path_params["model"])
        if name not in MODELS:
            return json_response(
                status_body(404, "NOT_FOUND", f"models/{name} is not found for API version v1beta."), 404
            )
        return json_response(_pretty(_model(name)))

    return [
        Route("/v1beta/models", models, methods=["GET"]),
        Route("/v1beta/models/{call}", generate, methods=["POST"]),
        Route("/v1beta/models/{model}", model, methods=["GET"]),
    ]
