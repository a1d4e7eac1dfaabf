"""What a subscription does with each message, the same on the real bus and its
in-memory twin: decode with the topic's codec, run the handler, and answer the sender
with a `BusError` when the message is malformed (400) or the handler fails (500)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from llmbus.proto import BusError, Codec
from llmbus.telemetry.requests import bind_request_id, reset_request

if TYPE_CHECKING:
    from llmbus.bus.protocol import Bus, Delivery

__all__ = ["dispatch"]

M = TypeVar("M")

log = logging.getLogger("llmbus.bus")


async def dispatch(
    bus: Bus, codec: Codec[M], handler: Callable[[M, Delivery], Awaitable[None]], delivery: Delivery
) -> None:
    token = None
    try:
        try:
            message = codec.decode(delivery.data)
        except Exception as exc:
            log.warning("dropping a malformed message on %s: %s", delivery.subject, exc)
            await bus.respond_error(delivery, BusError(status=400, code="bad_message", message=str(exc)))
            return
        request_id = getattr(message, "request_id", None)
        if isinstance(request_id, str) and request_id:
            # Every line logged about a request's message names it (`llmbus.telemetry.logs`).
            token = bind_request_id(request_id)
        await handler(message, delivery)
    except Exception:
        log.exception("handler for %s failed", delivery.subject)
        await bus.respond_error(
            delivery, BusError(status=500, code="internal_error", message="the handler failed")
        )
    finally:
        if token is not None:
            reset_request(token)
