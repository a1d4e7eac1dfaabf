"""The id of the request being handled, for responses, logs and traces.

The edge gives every HTTP request an id (`new_request`), answers it in `x-request-id`,
uses it as the request id on the bus for the first call the request makes
(`claim_request_id`) and records it on the server span (`llmbus.request_id`). Every log
line written while the request is handled carries it (`llmbus.telemetry.logs`). Other
services bind the id of the message they handle (`bind_request_id`).
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar, Token

__all__ = [
    "CLIENT_REQUEST_ID",
    "REQUEST_ID",
    "RequestInfo",
    "bind_request_id",
    "claim_request_id",
    "client_request_id",
    "current_request",
    "new_request",
    "request_id",
    "reset_request",
]

REQUEST_ID = "x-request-id"
"""The response header that names the request (our id, always)."""
CLIENT_REQUEST_ID = "x-client-request-id"
"""The response header that echoes the id a client sent in its own `x-request-id`."""

_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,128}")


class RequestInfo:
    """What is known about the request being handled (one object per HTTP request,
    shared by every task the request starts)."""

    __slots__ = ("bus_ids", "claimed", "client_id", "id", "model", "trace_id")

    def __init__(self, request_id: str, client_id: str | None = None) -> None:
        self.id = request_id
        self.client_id = client_id
        self.claimed = False
        self.model = ""
        self.trace_id = ""
        """The trace of the request's server span (for lines logged after it ended)."""
        self.bus_ids: list[str] = []
        """Every request id this request used on the bus (fan-out, re-routing)."""


_current: ContextVar[RequestInfo | None] = ContextVar("llmbus_request", default=None)


def client_request_id(sent: str | None) -> str | None:
    """The client's own `x-request-id`, when well formed (at most 128 characters of
    letters, digits, `.`, `_` and `-`); anything else is ignored."""
    if sent and _WELL_FORMED.fullmatch(sent):
        return sent
    return None


def new_request(client_sent: str | None = None) -> tuple[RequestInfo, Token[RequestInfo | None]]:
    """A new request with a fresh id, made current; `reset_request(token)` when it ends."""
    info = RequestInfo(os.urandom(16).hex(), client_request_id(client_sent))
    return info, _current.set(info)


def reset_request(token: Token[RequestInfo | None]) -> None:
    _current.reset(token)


def bind_request_id(request_id: str) -> Token[RequestInfo | None]:
    """Make `request_id` current (a service handling a message about that request)."""
    info = RequestInfo(request_id)
    info.claimed = True
    return _current.set(info)


def current_request() -> RequestInfo | None:
    return _current.get()


def request_id() -> str | None:
    """The current request's id, if any."""
    info = _current.get()
    return info.id if info is not None else None


def claim_request_id(model: str = "") -> str:
    """A request id for a call on the bus: the current request's own id for its first
    call, a fresh one for any other (a body that asks several answers, a re-routed
    request: bus ids must be unique); every one is remembered with the request."""
    info = _current.get()
    if info is None:
        return os.urandom(16).hex()
    if model and not info.model:
        info.model = model
    if info.claimed:
        fresh = os.urandom(16).hex()
    else:
        info.claimed = True
        fresh = info.id
    info.bus_ids.append(fresh)
    return fresh
