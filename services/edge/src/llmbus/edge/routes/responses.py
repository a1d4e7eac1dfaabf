"""The OpenAI Responses API: `POST /v1/responses` (streamed or whole, served by any
provider family through the shared relay), and `GET`/`DELETE /v1/responses/{id}` for
stored responses.

A response is stored (unless the request says `store: false`) by auth, in Redis, under
the client key that made it, before the client hears its last event: a request naming
it as `previous_response_id` right after finds it. Such a request continues the stored
conversation (its input and output); its `instructions` are its own. Errors are in
OpenAI's format (the app's default)."""

from __future__ import annotations

import logging
import time

import msgspec
from fastapi import APIRouter
from fastapi.responses import Response
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from llmbus.api import ApiError, InvalidRequest, NotFound
from llmbus.api.responses import (
    ResponseBuilder,
    ResponseEventStream,
    ResponseOutput,
    decode_responses_request,
    deleted_body,
    to_chat_request,
)
from llmbus.edge.bus_errors import answered_by
from llmbus.edge.calls import Call
from llmbus.edge.context import EdgeContext
from llmbus.edge.deps import Authenticated, Context, authenticate
from llmbus.edge.keys import Caller
from llmbus.edge.limits import ClientGone as BodyClientGone
from llmbus.edge.limits import Concurrency, check_request, read_body
from llmbus.edge.relay import (
    SSE_HEADERS,
    ClientGone,
    cancelled_if_the_client_leaves,
    open_call,
    relay_stream_to_client,
    respond_whole,
)
from llmbus.proto import AnyEvent, Message
from llmbus.proto.responses import ResponseGet, ResponsePut, ResponseRecord
from llmbus.proto.subjects import AUTH_RESPONSES_DELETE, AUTH_RESPONSES_GET, AUTH_RESPONSES_PUT

__all__ = ["PATH", "CreateResponse", "router"]

PATH = "/v1/responses"
STORE_TIMEOUT = 2.0
"""Seconds auth has to store or read a response."""

log = logging.getLogger(__name__)
router = APIRouter()

_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")


async def _history(context: EdgeContext, caller: Caller, response_id: str) -> list[Message]:
    """The conversation of the stored response `response_id` (the caller's own)."""
    try:
        with answered_by("auth"):
            record = await context.bus.request(
                AUTH_RESPONSES_GET,
                ResponseGet(client_id=caller.client.id, response_id=response_id),
                timeout=STORE_TIMEOUT,
            )
    except NotFound:
        raise InvalidRequest(
            f"Previous response with id '{response_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        ) from None
    except InvalidRequest as exc:
        raise InvalidRequest(exc.message, param="previous_response_id", code=exc.code) from None
    return list(record.messages)


async def _store(context: EdgeContext, caller: Caller, output: ResponseOutput) -> None:
    """Keep a finished response, unless the request asked not to; a store that fails
    costs the client nothing but the later lookup."""
    final = output.final
    if not output.turn.store or final is None or final["status"] not in ("completed", "incomplete"):
        return
    record = ResponseRecord(
        response_id=output.id,
        client_id=caller.client.id,
        response=_encode(final),
        messages=[*output.turn.conversation, output.assistant_message()],
        created_at=time.time(),
    )
    try:
        with answered_by("auth"):
            await context.bus.request(AUTH_RESPONSES_PUT, ResponsePut(record=record), timeout=STORE_TIMEOUT)
    except ApiError as exc:
        log.warning("response %s not stored: %s", output.id, exc.code)
    except Exception as exc:  # a record beyond the bus's largest message, a bus closing
        log.warning("response %s not stored: %s", output.id, type(exc).__name__)


class CreateResponse:
    """`POST /v1/responses` as plain ASGI (a streamed answer is written as it comes),
    mounted among the app's routes: the app's middleware, its error handlers (OpenAI's
    format) and the body limits apply."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["app"]
        context: EdgeContext = app.state.context
        concurrency: Concurrency = app.concurrency
        started = time.perf_counter()
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        try:
            with concurrency.request():
                caller = await authenticate(context, headers)
                with concurrency.key(caller.client.id):
                    await self._answer(context, caller, headers, started, receive, send)
        except (ClientGone, BodyClientGone):
            return

    async def _answer(
        self,
        context: EdgeContext,
        caller: Caller,
        headers: dict[str, str],
        started: float,
        receive: Receive,
        send: Send,
    ) -> None:
        settings = context.settings
        body = await read_body(headers, receive, settings.max_body_bytes, settings.body_timeout)
        wire = decode_responses_request(body)
        del body
        history = (
            await _history(context, caller, wire.previous_response_id) if wire.previous_response_id else []
        )
        turn = to_chat_request(wire, history)
        check_request(turn.chat, settings)
        whole: bytes | None = None
        async with cancelled_if_the_client_leaves(receive):
            call, first = await open_call(context, turn.chat, caller, headers, api="responses")
            output = ResponseOutput("resp_" + call.request_id, turn)
            if not turn.chat.stream:
                whole = await respond_whole(call, first, ResponseBuilder(output), started)
                await _store(context, caller, output)
        if whole is not None:
            headers_out = [_JSON, (b"content-length", b"%d" % len(whole))]
            await send({"type": "http.response.start", "status": 200, "headers": headers_out})
            await send({"type": "http.response.body", "body": whole})
            return
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await _stream(context, caller, call, first, output, started, receive, send)


async def _stream(
    context: EdgeContext,
    caller: Caller,
    call: Call,
    first: AnyEvent,
    output: ResponseOutput,
    started: float,
    receive: Receive,
    send: Send,
) -> None:
    """Relay the stream; the response is stored before its last event goes out. A
    client that disconnects cancels the call (and the upstream request)."""

    async def storing_send(message: AsgiMessage) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            await _store(context, caller, output)
        await send(message)

    await relay_stream_to_client(call, first, ResponseEventStream(output), started, receive, storing_send)


async def _ask(context: Context, caller: Authenticated, response_id: str, delete: bool) -> bytes:
    request = ResponseGet(client_id=caller.client.id, response_id=response_id)
    with answered_by("auth"):
        if delete:
            await context.bus.request(AUTH_RESPONSES_DELETE, request, timeout=STORE_TIMEOUT)
            return deleted_body(response_id)
        record = await context.bus.request(AUTH_RESPONSES_GET, request, timeout=STORE_TIMEOUT)
    return record.response


@router.get(PATH + "/{response_id}")
async def get_response(response_id: str, context: Context, caller: Authenticated) -> Response:
    """A stored response of the caller's key, as it was answered."""
    return Response(await _ask(context, caller, response_id, delete=False), media_type="application/json")


@router.delete(PATH + "/{response_id}")
async def delete_response(response_id: str, context: Context, caller: Authenticated) -> Response:
    """Forget a stored response of the caller's key."""
    return Response(await _ask(context, caller, response_id, delete=True), media_type="application/json")
