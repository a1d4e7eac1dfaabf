"""What a client may make the edge hold, and what its key allows a single request.

Checked at the edge, before a request is routed (docs/limits.md):
- the body: its size while it is read (413), the time it takes to arrive (408);
- the request: messages, tools, `max_tokens`, the model name's length and how deep
  free-form JSON nests (400);
- concurrency: chat requests in flight per client key (429) and in total (503);
- a client key's own `models` and `max_tokens`. (Its RPM and TPM are admitted by auth,
  which counts across every edge.)

The request head (header bytes and count) is limited before the app sees it, by the
HTTP protocol of `llmbus.edge.server`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import msgspec
from prometheus_client import Counter, Gauge
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from llmbus.api import ApiError, InvalidRequest, PermissionDenied, RateLimited, Unavailable
from llmbus.edge.settings import EdgeSettings
from llmbus.proto import ChatRequest, ClientLimits

__all__ = [
    "IN_FLIGHT",
    "MAX_MODEL_NAME",
    "REFUSED",
    "BodyRefused",
    "BodyRefusedHTTP",
    "ClientGone",
    "Concurrency",
    "apply_key_limits",
    "check_request",
    "limited_receive",
    "read_body",
    "refusal_headers",
]

MAX_MODEL_NAME = 256
"""The longest model name a request may send (no configured name comes close)."""

IN_FLIGHT = Gauge("llmbus_edge_requests_in_flight", "Chat requests this edge process is serving")
REFUSED = Counter("llmbus_edge_limit_refusals_total", "Requests refused by an edge limit", ["limit"])


class ClientGone(Exception):
    """The client went away before its request was read: nobody to answer."""


class BodyRefused(InvalidRequest):
    """A body too large or too slow: answered, then the connection is closed (the rest
    of the body is never read)."""


class BodyRefusedHTTP(HTTPException):
    """A BodyRefused raised from `receive` inside FastAPI, which passes an HTTPException
    through its body parsing (any other exception there becomes its own 400)."""

    def __init__(self, error: BodyRefused) -> None:
        super().__init__(error.status, error.message)
        self.error = error


def _too_large(limit: int) -> BodyRefused:
    REFUSED.labels("body_bytes").inc()
    return BodyRefused(f"The request body is larger than {limit} bytes.", code="body_too_large", status=413)


def _too_slow(timeout: float) -> BodyRefused:
    REFUSED.labels("body_timeout").inc()
    return BodyRefused(
        f"The request body did not arrive within {timeout:g} seconds.", code="body_timeout", status=408
    )


def _declared_too_large(headers: Mapping[str, str], limit: int) -> bool:
    length = headers.get("content-length")
    return length is not None and length.isdigit() and int(length) > limit


async def read_body(headers: Mapping[str, str], receive: Receive, limit: int, timeout: float) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` (its
    Content-Length before anything is read, a chunked body as its bytes arrive), and with
    408 when the whole body has not arrived within `timeout` seconds."""
    if _declared_too_large(headers, limit):
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):  # one timer for the whole body
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise ClientGone
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except TimeoutError:
        raise _too_slow(timeout) from None


def limited_receive(headers: Mapping[str, str], receive: Receive, limit: int, timeout: float) -> Receive:
    """`receive` for an app that reads the body itself (FastAPI's routes): the same 413
    and 408 as `read_body`, raised as BodyRefusedHTTP while the body is incomplete;
    afterwards (the disconnect a handler may wait for) as it was."""
    if _declared_too_large(headers, limit):

        async def refuse() -> Message:
            raise BodyRefusedHTTP(_too_large(limit))

        return refuse
    deadline = time.monotonic() + timeout
    size = 0
    complete = False

    async def limited() -> Message:
        nonlocal size, complete
        if complete:
            return await receive()
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                message = await receive()
        except TimeoutError:
            raise BodyRefusedHTTP(_too_slow(timeout)) from None
        if message["type"] != "http.request":
            complete = True
            return message
        size += len(message.get("body", b""))
        if size > limit:
            raise BodyRefusedHTTP(_too_large(limit))
        complete = not message.get("more_body", False)
        return message

    return limited


def apply_key_limits(chat: ChatRequest, limits: ClientLimits) -> ChatRequest:
    """The request as the key may send it: refused when it names a model outside the
    key's `models` (403) or asks for more than its `max_tokens` (400); a request that
    asks for no limit gets the key's, so leaving `max_tokens` out is no way around it."""
    if limits.models and not any(fnmatchcase(chat.model, pattern) for pattern in limits.models):
        raise PermissionDenied(
            f"This API key may not use the model `{chat.model}`.", code="model_not_allowed", param="model"
        )
    if limits.max_tokens:
        if chat.max_tokens is None:
            return msgspec.structs.replace(chat, max_tokens=limits.max_tokens)
        if chat.max_tokens > limits.max_tokens:
            raise InvalidRequest(
                f"`max_tokens` is {chat.max_tokens}, more than this API key allows ({limits.max_tokens}).",
                code="max_tokens_exceeded",
                param="max_tokens",
            )
    return chat


def _refuse(limit: str, message: str, code: str, param: str) -> InvalidRequest:
    REFUSED.labels(limit).inc()
    return InvalidRequest(message, code=code, param=param)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value nests deeper than `limit` (a scalar is depth 0, `{}`
    depth 1), without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def check_request(chat: ChatRequest, settings: EdgeSettings) -> None:
    """The edge's own limits on one chat request, whoever sends it (400 naming the field)."""
    if len(chat.model) > MAX_MODEL_NAME:
        raise _refuse(
            "model_name", f"`model` is longer than {MAX_MODEL_NAME} characters.", "model_too_long", "model"
        )
    if len(chat.messages) > settings.max_messages:
        raise _refuse(
            "messages",
            f"The request has {len(chat.messages)} messages; at most {settings.max_messages} are allowed.",
            "too_many_messages",
            "messages",
        )
    if len(chat.tools) > settings.max_tools:
        raise _refuse(
            "tools",
            f"The request has {len(chat.tools)} tools; at most {settings.max_tools} are allowed.",
            "too_many_tools",
            "tools",
        )
    if chat.max_tokens is not None and chat.max_tokens > settings.max_tokens_limit:
        raise _refuse(
            "max_tokens",
            f"`max_tokens` is {chat.max_tokens}; this gateway allows at most {settings.max_tokens_limit}.",
            "max_tokens_too_large",
            "max_tokens",
        )
    depth = settings.max_json_depth
    for index, tool in enumerate(chat.tools):
        if tool.parameters is not None and _depth_exceeds(tool.parameters, depth):
            raise _refuse(
                "json_depth",
                f"The schema of tool {index} nests deeper than {depth} levels.",
                "json_too_deep",
                f"tools[{index}]",
            )
    if chat.response_format is not None and _depth_exceeds(chat.response_format, depth):
        raise _refuse(
            "json_depth",
            f"`response_format` nests deeper than {depth} levels.",
            "json_too_deep",
            "response_format",
        )


@dataclass(slots=True)
class Concurrency:
    """Chat requests in flight on this edge process, in total and per client key. A
    request holds its places until it ends, however it ends: answered, failed, cancelled
    or its client gone."""

    total_limit: int
    per_key_limit: int
    total: int = 0
    by_key: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def request(self) -> Iterator[None]:
        """A place among all requests, or 503 `edge_overloaded`."""
        if self.total >= self.total_limit:
            REFUSED.labels("concurrency_total").inc()
            raise Unavailable(
                "The gateway is serving as many requests as it can: try again shortly.",
                code="edge_overloaded",
                retry_after=1,
            )
        self.total += 1
        IN_FLIGHT.inc()
        try:
            yield
        finally:
            self.total -= 1
            IN_FLIGHT.dec()

    @contextmanager
    def key(self, client_id: str) -> Iterator[None]:
        """A place among the key's requests, or 429 `too_many_concurrent_requests`."""
        held = self.by_key.get(client_id, 0)
        if held >= self.per_key_limit:
            REFUSED.labels("concurrency_key").inc()
            raise RateLimited(
                f"This API key has {held} requests in flight, as many as it may: wait for one to finish.",
                code="too_many_concurrent_requests",
                retry_after=1,
            )
        self.by_key[client_id] = held + 1
        try:
            yield
        finally:
            left = self.by_key[client_id] - 1
            if left:
                self.by_key[client_id] = left
            else:
                del self.by_key[client_id]


def refusal_headers(error: ApiError) -> list[tuple[bytes, bytes]]:
    """`connection: close` after a body that was not read whole."""
    return [(b"connection", b"close")] if isinstance(error, BodyRefused) else []
