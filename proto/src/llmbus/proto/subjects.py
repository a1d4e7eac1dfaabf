"""The subject table: the only place a subject string appears.

Each entry binds a subject (or subject pattern) to the message type it carries and, for
request/reply endpoints, to the reply type, so caller and handler share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from llmbus.proto.chat import ChatRequest
from llmbus.proto.control import (
    Cooldown,
    ProviderEnabled,
    ProviderToggle,
    RegistryQuery,
    RegistryReply,
    RuntimeState,
    RuntimeStateRequest,
    WorkerStatus,
)
from llmbus.proto.messages import (
    AnyEvent,
    BusError,
    CancelRequest,
    ExecRequest,
    KeyEvent,
    KeyVerifyReply,
    KeyVerifyRequest,
    RouteRequest,
    ServiceHeartbeat,
)

__all__ = [
    "AUTH_COOLDOWN_EVENTS",
    "AUTH_KEY_EVENTS",
    "AUTH_KEY_VERIFY",
    "AUTH_PROVIDER_TOGGLE",
    "AUTH_STATE",
    "CANCEL",
    "CONTROL_PROVIDER_ENABLED",
    "CONTROL_REGISTRY",
    "ERROR_HEADER",
    "EVENTS",
    "EXEC",
    "HEALTH",
    "ROUTE",
    "WORKER_STATUS",
    "Codec",
    "Endpoint",
    "Topic",
    "chat_codec",
    "error_codec",
]

M = TypeVar("M")
R = TypeVar("R")

ERROR_HEADER = "Llmbus-Error"
"""Header on an error reply to a bus request; its value is the error code."""


class Codec(Generic[M]):
    """msgpack encoder and decoder for one type, built once."""

    __slots__ = ("_decoder", "type")

    _encoder = msgspec.msgpack.Encoder()

    def __init__(self, type_: type[M]) -> None:
        self.type = type_
        self._decoder: msgspec.msgpack.Decoder[M] = msgspec.msgpack.Decoder(type_)

    def encode(self, message: M) -> bytes:
        return self._encoder.encode(message)

    def decode(self, data: bytes) -> M:
        return self._decoder.decode(data)


@dataclass(frozen=True, slots=True)
class Topic(Generic[M]):
    """A subject (with `{placeholders}` for its variable tokens) and the message it carries."""

    pattern: str
    codec: Codec[M]
    queue: str = ""

    def subject(self, **tokens: str) -> str:
        return self.pattern.format(**tokens) if tokens else self.pattern

    def wildcard(self) -> str:
        """The subscription subject: every `{placeholder}` becomes `*`."""
        parts = ["*" if part.startswith("{") else part for part in self.pattern.split(".")]
        return ".".join(parts)

    def queue_for(self, **tokens: str) -> str:
        return self.queue.format(**tokens) if tokens else self.queue


@dataclass(frozen=True, slots=True)
class Endpoint(Topic[M], Generic[M, R]):
    """A request/reply subject: the request type and the reply type."""

    reply: Codec[R] = field(kw_only=True)


ROUTE: Topic[RouteRequest] = Topic("llm.v1.route", Codec(RouteRequest), queue="router")
EXEC: Topic[ExecRequest] = Topic("llm.v1.exec.{provider}", Codec(ExecRequest), queue="worker.{provider}")
CANCEL: Topic[CancelRequest] = Topic("llm.v1.cancel.{request_id}", Codec(CancelRequest))
EVENTS: Codec[AnyEvent] = Codec(AnyEvent)  # type: ignore[arg-type]
"""Frames of a reply stream, published to the request's reply inbox."""

AUTH_KEY_VERIFY: Endpoint[KeyVerifyRequest, KeyVerifyReply] = Endpoint(
    "auth.v1.keys.verify", Codec(KeyVerifyRequest), queue="auth", reply=Codec(KeyVerifyReply)
)
AUTH_KEY_EVENTS: Topic[KeyEvent] = Topic("auth.v1.events.keys", Codec(KeyEvent))
HEALTH: Topic[ServiceHeartbeat] = Topic("health.v1.{service}", Codec(ServiceHeartbeat))
WORKER_STATUS: Topic[WorkerStatus] = Topic("health.v1.worker", Codec(WorkerStatus))

AUTH_PROVIDER_TOGGLE: Endpoint[ProviderToggle, ProviderEnabled] = Endpoint(
    "auth.v1.providers.toggle", Codec(ProviderToggle), queue="auth", reply=Codec(ProviderEnabled)
)
AUTH_STATE: Endpoint[RuntimeStateRequest, RuntimeState] = Endpoint(
    "auth.v1.state", Codec(RuntimeStateRequest), queue="auth", reply=Codec(RuntimeState)
)
CONTROL_PROVIDER_ENABLED: Topic[ProviderEnabled] = Topic(
    "control.v1.providers.enabled", Codec(ProviderEnabled)
)
AUTH_COOLDOWN_EVENTS: Topic[Cooldown] = Topic("auth.v1.events.cooldowns", Codec(Cooldown))
CONTROL_REGISTRY: Endpoint[RegistryQuery, RegistryReply] = Endpoint(
    "control.v1.registry", Codec(RegistryQuery), queue="router", reply=Codec(RegistryReply)
)

chat_codec: Codec[ChatRequest] = Codec(ChatRequest)
error_codec: Codec[BusError] = Codec(BusError)
