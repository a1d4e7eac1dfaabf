"""`POST /v1/embeddings` in OpenAI's format.

An embeddings request takes the chat path on the bus (`llm.v1.route`, then
`llm.v1.exec.<provider>`) with `needs.embeddings` set and an `EmbedRequest` as its body:
the router picks only models with the `embeddings` capability (a chat model is a 400),
and credentials, failover, deadlines, the key's model list and quotas work as for chat.
The answer is one `Embeddings` event, then `Usage` and `Done`."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import Counter

from llmbus.api import ApiError, InvalidRequest, Unavailable
from llmbus.api.embeddings import decode_embeddings_request, embeddings_response
from llmbus.api.tokens import estimate_text
from llmbus.bus import BusFailure
from llmbus.edge.calls import Call, client_timeouts, raise_for, report_usage
from llmbus.edge.deps import Authenticated, Context
from llmbus.edge.limits import MAX_MODEL_NAME, Concurrency, apply_key_limits, read_body
from llmbus.edge.quota import reserve, settle
from llmbus.edge.relay import ClientGone, cancelled_if_the_client_leaves
from llmbus.proto import (
    ROUTE,
    AnyEvent,
    ChatRequest,
    Done,
    Embeddings,
    EmbedRequest,
    Error,
    Needs,
    RouteRequest,
    Started,
    Usage,
    embed_codec,
)

__all__ = ["PATH", "router"]

PATH = "/v1/embeddings"

router = APIRouter()

REQUESTS = Counter("llmbus_edge_embedding_requests_total", "Embeddings requests", ["status"])


class _EmbedCall(Call):
    """A Call whose route request carries an `EmbedRequest` (the model name rides on a
    stand-in chat request, for the messages and the usage records)."""

    embed: EmbedRequest

    async def start(self) -> None:
        request = RouteRequest(
            request_id=self.request_id,
            model=self.embed.model,
            reply=self.reply,
            deadline=self._deadline_ms,
            first_byte_deadline=self._first_byte_ms,
            client=self.client,
            needs=Needs(embeddings=True),
            body=msgspec.Raw(embed_codec.encode(self.embed)),
            tokens=self.tokens,
        )
        try:
            await self.bus.publish(ROUTE, request, reply=self.reply)
        except BusFailure:
            raise Unavailable("the message bus is unavailable", code="bus_unavailable") from None


@router.post(PATH)
async def create_embeddings(request: Request, context: Context, caller: Authenticated) -> Response:
    """Counted among the requests in flight, in total and for the key, as chat is; a
    client that leaves cancels the call (and its upstream call)."""
    concurrency: Concurrency = request.app.concurrency
    with concurrency.request(), concurrency.key(caller.client.id):
        settings = context.settings
        body = await read_body(
            request.headers, request.receive, settings.max_body_bytes, settings.body_timeout
        )
        try:
            # Listening for the client's disconnect only once its body is read whole.
            async with cancelled_if_the_client_leaves(request.receive):
                return await _embed(request, context, caller, body)
        except ClientGone:
            return Response(status_code=499)


async def _embed(request: Request, context: Context, caller: Authenticated, body: bytes) -> Response:
    settings = context.settings
    embed, encoding = decode_embeddings_request(body)
    del body
    if len(embed.model) > MAX_MODEL_NAME:
        raise InvalidRequest(
            f"`model` is longer than {MAX_MODEL_NAME} characters.", code="model_too_long", param="model"
        )
    stand_in = apply_key_limits(ChatRequest(model=embed.model, messages=[]), caller.limits)
    total, first_byte = client_timeouts(
        request.headers, False, settings.request_timeout, settings.first_byte_timeout
    )
    tokens = sum(estimate_text(text) for text in embed.input)
    reservation = await reserve(context.bus, caller, tokens)
    call = _EmbedCall(
        context.bus,
        context.inbox,
        stand_in,
        caller.client,
        accept_timeout=settings.accept_timeout,
        idle_timeout=settings.idle_timeout,
        request_timeout=total,
        first_byte_timeout=first_byte,
        tokens=tokens,
        reservation=reservation,
        usage=context.usage,
        api="embeddings",
    )
    call.embed = embed
    first: AnyEvent | None = None
    vectors: list[list[float]] | None = None
    usage: Usage | None = None
    status = "499"
    error = "client_closed_request"
    try:
        await call.start()
        while True:
            event = await call.next()
            if first is None:
                first = event
            match event:
                case Embeddings():
                    vectors = event.vectors
                case Usage():
                    usage = event
                case Done():
                    call.finished = True
                    break
                case Error():
                    raise raise_for(event)
        if vectors is None:
            raise ApiError("the worker finished without the embeddings", code="no_embeddings", status=502)
        status, error = "200", ""
        return Response(
            embeddings_response(embed.model, vectors, usage, encoding), media_type="application/json"
        )
    except ApiError as exc:
        status, error = str(exc.status), exc.code
        raise
    finally:
        REQUESTS.labels(status).inc()
        await call.close()
        report_usage(call, first, usage, int(status), error)
        await settle(call.bus, call.reservation, usage, answered=isinstance(first, Started))
