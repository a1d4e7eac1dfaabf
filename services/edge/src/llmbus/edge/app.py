"""The edge application: pure assembly of routes, middleware and error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Route

from llmbus.api import ApiError, InvalidRequest, NotFound, anthropic_error_body, openai_error_body
from llmbus.api.anthropic_wire import CountTokensRequest, MessagesRequest
from llmbus.api.completions_wire import CompletionRequest
from llmbus.api.embeddings import EmbeddingsRequest
from llmbus.api.errors import error_from_status
from llmbus.api.gemini import gemini_error_body
from llmbus.api.openai_wire import ChatCompletionRequest
from llmbus.api.responses_wire import ResponsesRequest
from llmbus.edge import console
from llmbus.edge.context import EdgeContext
from llmbus.edge.hot import EdgeApp, error_payload
from llmbus.edge.limits import BodyRefusedHTTP, Concurrency, refusal_headers
from llmbus.edge.routes import gemini, health, keys, messages, models, oauth, providers, responses, usage
from llmbus.edge.routes.embeddings import router as embeddings_router
from llmbus.edge.settings import EdgeSettings
from llmbus.edge.tracing import TracingMiddleware

__all__ = ["create_app"]

log = logging.getLogger(__name__)

ContextFactory = Callable[[EdgeSettings, AsyncExitStack], Awaitable[EdgeContext]]


ERROR_BODIES: list[tuple[str, Callable[[ApiError], bytes]]] = [
    ("/v1/messages", anthropic_error_body),
    ("/v1beta/", gemini_error_body),
]
"""Paths whose errors are written in another client API's format than OpenAI's (a
path prefix, the body's encoder); every other path answers in OpenAI's."""


def error_body_for(path: str) -> Callable[[ApiError], bytes]:
    for prefix, encode in ERROR_BODIES:
        if path.startswith(prefix):
            return encode
    return openai_error_body


def _error_response(request: Request, error: ApiError) -> Response:
    """The error in the client API of the path (`ERROR_BODIES`)."""
    body, headers = error_payload(error, error_body_for(request.url.path))
    response = Response(body, status_code=error.status, media_type="application/json")
    response.raw_headers[:0] = [*headers, *refusal_headers(error)]
    return response


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, BodyRefusedHTTP):
        return _error_response(request, exc.error)
    if exc.status_code == 404:
        return _error_response(
            request, NotFound("Unknown request URL. Please check the URL and method.", code="unknown_url")
        )
    return _error_response(request, error_from_status(exc.status_code, str(exc.detail)))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    return _error_response(request, InvalidRequest(str(first.get("msg", "invalid request")), param=param))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
    return _error_response(request, ApiError("The server had an error while processing your request."))


_BODIES = {
    ("post", "/v1/chat/completions"): ("Create a chat completion (OpenAI's format)", ChatCompletionRequest),
    ("post", "/v1/messages"): ("Create a message (Anthropic's format)", MessagesRequest),
    ("post", "/v1/messages/count_tokens"): (
        "Count a message's input tokens (an estimate)",
        CountTokensRequest,
    ),
    ("post", "/v1/completions"): ("Create a completion (OpenAI's legacy completions)", CompletionRequest),
    ("post", "/v1/embeddings"): ("Create embeddings (OpenAI's format)", EmbeddingsRequest),
    ("post", "/v1/responses"): ("Create a model response (OpenAI's Responses API)", ResponsesRequest),
}
"""The request bodies that routes read themselves (the hot routes are not FastAPI's at
all), described from the msgspec types that decode them."""


def _with_request_bodies(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document with the chat routes and their request bodies (from the
    msgspec types that validate them), so that the document says what the edge accepts."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, routes=app.routes)
    types = [kind for _, kind in _BODIES.values()]
    refs, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():
        schemas.setdefault(name, schema)
    errors = {"description": "An error in the client's format", "content": {"application/json": {}}}
    for ((method, path), (summary, _)), ref in zip(_BODIES.items(), refs, strict=True):
        operation = document.setdefault("paths", {}).setdefault(path, {}).setdefault(method, {})
        operation.setdefault("summary", summary)
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
        operation.setdefault("responses", {"200": {"description": "The answer, whole or streamed (SSE)"}})
        operation["responses"].setdefault("4XX", errors)
    app.openapi_schema = document
    return document


def create_app(settings: EdgeSettings, make_context: ContextFactory) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.context = await make_context(settings, stack)
            yield

    # The chat routes (`POST /v1/chat/completions`, `POST /v1/messages`) are plain ASGI,
    # answered by EdgeApp before FastAPI's machinery; the rest of the API is FastAPI's.
    app = EdgeApp(
        title="llmbus",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # One lean server span per request (TracingMiddleware) instead of FastAPI's own
        # telemetry, which adds spans per dependency and records request bodies.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.concurrency = Concurrency(settings.max_concurrent_requests, settings.max_concurrent_per_key)
    app.include_router(messages.router)
    app.router.routes.append(
        Route(responses.PATH, responses.CreateResponse(), methods=["POST"], include_in_schema=False)
    )
    app.include_router(responses.router)
    app.include_router(embeddings_router)
    app.include_router(models.router)
    app.include_router(gemini.router)
    app.include_router(providers.router)
    app.include_router(keys.router)
    app.include_router(usage.router)
    app.include_router(oauth.router)
    app.include_router(health.router)
    console.mount(app)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(TracingMiddleware)
    app.openapi = lambda: _with_request_bodies(app)  # type: ignore[method-assign]
    return app
