"""`POST /v1/messages` in Anthropic's format, streamed or whole, served by any provider
family (served by `llmbus.edge.hot`); `POST /v1/messages/count_tokens`, estimated at the
edge.

Clients send `anthropic-version` and may send `anthropic-beta`; neither changes what
the gateway does, so both are accepted as they come. Errors on these paths are written
in Anthropic's format by the app's error handlers."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmbus.api import (
    ApiError,
    MessageBuilder,
    MessageStreamWriter,
    NotFound,
    anthropic_error_body,
    decode_count_tokens_request,
    decode_messages_request,
    error_from_status,
    estimate_tokens,
)
from llmbus.api.anthropic_wire import CountTokensResponse
from llmbus.edge.deps import Authenticated, Context
from llmbus.edge.limits import read_body
from llmbus.proto import ChatRequest, RegistryQuery

__all__ = ["PATH", "Messages", "router"]

PATH = "/v1/messages"

router = APIRouter()

_encode = msgspec.json.Encoder().encode


class Messages:
    """The Anthropic dialect of the relay: its writer and builder encode as they are."""

    id_prefix = "msg_"
    api = "anthropic"

    @staticmethod
    def error_body(error: ApiError) -> bytes:
        return anthropic_error_body(error)

    @staticmethod
    def decode(body: bytes) -> ChatRequest:
        return decode_messages_request(body)

    @staticmethod
    def encoder(answer_id: str, chat: ChatRequest) -> MessageStreamWriter:
        return MessageStreamWriter(answer_id, chat.model)

    @staticmethod
    def builder(answer_id: str, chat: ChatRequest) -> MessageBuilder:
        return MessageBuilder(answer_id, chat.model)


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, context: Context, _: Authenticated) -> Response:
    """An estimate (see `llmbus.api.tokens`) of what the request would count as input,
    for a model that the gateway serves."""
    settings = context.settings
    body = await read_body(request.headers, request.receive, settings.max_body_bytes, settings.body_timeout)
    chat = decode_count_tokens_request(body)
    await _require_model(context, chat.model)
    body = _encode(CountTokensResponse(input_tokens=estimate_tokens(chat)))
    return Response(body, media_type="application/json")


class _RouterErrorDetail(msgspec.Struct):
    message: str = ""
    code: str | None = None


class _RouterError(msgspec.Struct):
    """The router answers a failed registry query in OpenAI's error body."""

    error: _RouterErrorDetail = msgspec.field(default_factory=_RouterErrorDetail)


_router_error = msgspec.json.Decoder(_RouterError)


async def _require_model(context: Context, model: str) -> None:
    """A router knows the model (as a request for it would be routed), or NotFound."""
    answer = await context.registry.query(RegistryQuery(kind="model", name=model))
    if answer.status_code == 200:
        return
    if answer.status_code == 404:
        raise NotFound(
            f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
        )
    try:
        detail = _router_error.decode(answer.body).error
    except msgspec.DecodeError:
        detail = _RouterErrorDetail(message="the router could not look the model up")
    raise error_from_status(answer.status_code, detail.message, detail.code or "")
