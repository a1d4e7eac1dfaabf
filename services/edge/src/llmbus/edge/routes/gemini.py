"""The Gemini-native API, as the google-genai SDK and Gemini CLI call it (`v1beta`):

- `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent` (SSE with
  `?alt=sse`, else Google's streamed JSON array), served by `llmbus.edge.hot` through
  the shared relay like every chat dialect;
- `POST /v1beta/models/{model}:countTokens`, estimated at the edge;
- `GET /v1beta/models` and `GET /v1beta/models/{model}`: the gateway's models (its
  names, aliases and prefixes, from a router) as Gemini `Model` resources.

`{model}` is any name the gateway routes (`gemini-2.5-flash`, `claude/claude-sonnet-4-5`,
an alias). The client key comes as `x-goog-api-key` or `?key=`, as Google takes it, or as
on the other routes (`Authorization: Bearer`, `x-api-key`). Errors on these paths are
Google's `{"error": {"code", "message", "status"}}` (the app picks the body by path)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.types import Scope

from llmbus.api import ApiError, NotFound, error_from_status, estimate_tokens
from llmbus.api.gemini import (
    GEMINI_METHODS,
    ResponseBuilder,
    ResponseStreamWriter,
    decode_count_tokens,
    decode_generate_content,
    gemini_error_body,
    gemini_model,
    gemini_models,
)
from llmbus.api.gemini_wire import CountTokensResponse
from llmbus.edge.deps import Context, api_key_of, authenticate
from llmbus.edge.keys import Caller
from llmbus.edge.limits import read_body
from llmbus.proto import ChatRequest, RegistryQuery

__all__ = ["PREFIX", "GenerateContentDialect", "dialect_for", "router"]

PREFIX = "/v1beta/models/"

router = APIRouter()

_encode = msgspec.json.Encoder().encode
_KEY_HEADER = b"x-goog-api-key"


class GenerateContentDialect:
    """The Gemini dialect of the relay, for one request: the model and the streaming
    mode come from the path, whether the answer shows thoughts from the body."""

    id_prefix = ""
    api = "gemini"
    __slots__ = ("model", "sse", "stream", "thoughts")

    def __init__(self, model: str, stream: bool, sse: bool) -> None:
        self.model = model
        self.stream = stream
        self.sse = sse
        self.thoughts = False

    @staticmethod
    def error_body(error: ApiError) -> bytes:
        return gemini_error_body(error)

    def decode(self, body: bytes) -> ChatRequest:
        decoded = decode_generate_content(body, self.model, self.stream)
        self.thoughts = decoded.thoughts
        return decoded.chat

    def encoder(self, answer_id: str, chat: ChatRequest) -> ResponseStreamWriter:
        return ResponseStreamWriter(answer_id, chat.model, thoughts=self.thoughts, sse=self.sse)

    def builder(self, answer_id: str, chat: ChatRequest) -> ResponseBuilder:
        return ResponseBuilder(answer_id, chat.model, thoughts=self.thoughts)


def _split(target: str) -> tuple[str, str]:
    """`{model}:{method}` → (model, method); the model may hold `/` and `:` itself."""
    model, _, method = target.rpartition(":")
    return model.removeprefix("models/"), method


def dialect_for(scope: Scope) -> GenerateContentDialect | None:
    """The dialect of a `POST` to `…/models/{model}:generateContent` or
    `:streamGenerateContent`, or None for any other path. A key sent as `?key=` (and no
    key header) joins the request's headers as `x-goog-api-key`, where the hot path's
    key check reads it."""
    path: str = scope["path"]
    if not path.startswith(PREFIX):
        return None
    model, method = _split(path[len(PREFIX) :])
    if not model or method not in ("generateContent", "streamGenerateContent"):
        return None
    query = parse_qs(scope["query_string"].decode("latin-1")) if scope["query_string"] else {}
    key = query.get("key")
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    if key and not any(name in (_KEY_HEADER, b"authorization", b"x-api-key") for name, _ in headers):
        scope["headers"] = [*headers, (_KEY_HEADER, key[-1].encode("latin-1"))]
    return GenerateContentDialect(model, method == "streamGenerateContent", query.get("alt") == ["sse"])


async def _caller(request: Request, context: Context) -> Caller:
    """The caller, by the key in a header or in `?key=`."""
    key = request.query_params.get("key")
    if key and not api_key_of(request.headers):
        return await authenticate(context, {"x-goog-api-key": key})
    return await authenticate(context, request.headers)


async def _registry(context: Context, query: RegistryQuery) -> bytes:
    """A router's answer, or its error as an ApiError (written in Gemini's format)."""
    answer = await context.registry.query(query)
    if answer.status_code == 200:
        return bytes(answer.body)
    try:
        detail = _router_error.decode(answer.body).error
    except msgspec.DecodeError:
        detail = _RouterErrorDetail(message="the router could not look the model up")
    raise error_from_status(answer.status_code, detail.message, detail.code or "")


class _RouterErrorDetail(msgspec.Struct):
    message: str = ""
    code: str | None = None


class _RouterError(msgspec.Struct):
    """The router answers a failed registry query in OpenAI's error body."""

    error: _RouterErrorDetail = msgspec.field(default_factory=_RouterErrorDetail)


_router_error = msgspec.json.Decoder(_RouterError)


@router.post("/v1beta/models/{target:path}")
async def model_method(target: str, request: Request, context: Context) -> Response:
    """`:countTokens`: an estimate (see `llmbus.api.tokens`) of the request's input, for
    a model the gateway serves. (`:generateContent` and `:streamGenerateContent` are
    answered before FastAPI, by `llmbus.edge.hot`.)"""
    model, method = _split(target)
    if not model or method != "countTokens":
        known = ", ".join(f":{name}" for name in GEMINI_METHODS)
        raise NotFound(
            f"`{target}` names no method this gateway serves on a model ({known}).", code="unknown_method"
        )
    await _caller(request, context)
    settings = context.settings
    body = await read_body(request.headers, request.receive, settings.max_body_bytes, settings.body_timeout)
    chat = decode_count_tokens(body, model)
    await _registry(context, RegistryQuery(kind="model", name=model))
    counted = _encode(CountTokensResponse(total_tokens=estimate_tokens(chat)))
    return Response(counted, media_type="application/json")


@router.get("/v1beta/models")
async def list_models(
    request: Request,
    context: Context,
    page_size: Annotated[int | None, Query(alias="pageSize")] = None,
    page_token: Annotated[str, Query(alias="pageToken")] = "",
) -> Response:
    """Every model the gateway routes, as Gemini `Model` resources, a page at a time."""
    await _caller(request, context)
    answer = await _registry(context, RegistryQuery(kind="models"))
    return Response(gemini_models(answer, page_size, page_token), media_type="application/json")


@router.get("/v1beta/models/{model:path}")
async def get_model(model: str, request: Request, context: Context) -> Response:
    await _caller(request, context)
    answer = await _registry(context, RegistryQuery(kind="model", name=model.removeprefix("models/")))
    return Response(gemini_model(answer), media_type="application/json")
