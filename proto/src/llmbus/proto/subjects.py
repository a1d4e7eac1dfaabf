"""The subject table: the only place a subject string appears.

Each entry binds a subject (or subject pattern) to the message type it carries and, for
request/reply endpoints, to the reply type, so caller and handler share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from llmbus.proto.auth import (
    CooldownClear,
    CooldownCleared,
    CredentialEvent,
    CredentialInfo,
    CredentialList,
    CredentialListRequest,
    CredentialRemove,
    DeviceFlow,
    DeviceFlowPoll,
    DeviceFlowStart,
    DeviceFlowStatus,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    KeyListRequest,
    KeyRevoke,
    KeyUsage,
    KeyUsageRequest,
    ManagementAttempt,
    ManagementVerdict,
    QuotaGrant,
    QuotaReserve,
    QuotaSettle,
    RequestRecords,
    TokenReply,
    TokenRequest,
    UsageQuery,
    UsageReport,
)
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
from llmbus.proto.embeddings import EmbedRequest
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
from llmbus.proto.responses import ResponseDeleted, ResponseGet, ResponsePut, ResponseRecord, ResponseStored

__all__ = [
    "AUTH_COOLDOWN_CLEAR",
    "AUTH_COOLDOWN_EVENTS",
    "AUTH_CREDENTIALS_LIST",
    "AUTH_CREDENTIALS_REMOVE",
    "AUTH_CREDENTIAL_EVENTS",
    "AUTH_FLOW_START",
    "AUTH_FLOW_STATUS",
    "AUTH_KEYS_CREATE",
    "AUTH_KEYS_LIST",
    "AUTH_KEYS_REVOKE",
    "AUTH_KEYS_USAGE",
    "AUTH_KEY_EVENTS",
    "AUTH_KEY_VERIFY",
    "AUTH_MANAGEMENT_ATTEMPT",
    "AUTH_PROVIDER_TOGGLE",
    "AUTH_QUOTA_RESERVE",
    "AUTH_QUOTA_SETTLE",
    "AUTH_RESPONSES_DELETE",
    "AUTH_RESPONSES_GET",
    "AUTH_RESPONSES_PUT",
    "AUTH_STATE",
    "AUTH_TOKENS_GET",
    "AUTH_USAGE_QUERY",
    "CANCEL",
    "CONTROL_COOLDOWNS",
    "CONTROL_COOLDOWNS_CLEARED",
    "CONTROL_PROVIDER_ENABLED",
    "CONTROL_REGISTRY",
    "ERROR_HEADER",
    "EVENTS",
    "EXEC",
    "FRAMES",
    "HEALTH",
    "ROUTE",
    "USAGE_BATCH",
    "USAGE_CONSUMER",
    "USAGE_REQUESTS",
    "USAGE_STREAM",
    "WORKER_STATUS",
    "Codec",
    "Endpoint",
    "Topic",
    "chat_codec",
    "embed_codec",
    "error_codec",
    "frames_message",
    "frames_of",
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
FRAMES: Codec[AnyEvent | list[AnyEvent]] = Codec(AnyEvent | list[AnyEvent])  # type: ignore[arg-type]
"""A reply-stream message as the reader decodes it: one frame (`EVENTS`), or several in
order as one message (`frames_message`: the frames a worker made in one loop pass)."""


def frames_message(frames: list[bytes]) -> bytes:
    """Frames encoded by `EVENTS`, in order, as one message (a msgpack array of them)."""
    if len(frames) == 1:
        return frames[0]
    return _ENCODER.encode([msgspec.Raw(frame) for frame in frames])


def frames_of(data: bytes) -> list[AnyEvent]:
    """The events of one reply-stream message, in order."""
    decoded = FRAMES.decode(data)
    return decoded if isinstance(decoded, list) else [decoded]


_ENCODER = msgspec.msgpack.Encoder()

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
embed_codec: Codec[EmbedRequest] = Codec(EmbedRequest)
"""The body of a route request with `needs.embeddings` (forwarded as it is, like a chat's)."""

# --- issue 7: keys at run time, usage, quotas, device flows, credentials, tokens ---------

AUTH_KEYS_CREATE: Endpoint[KeyCreate, KeyCreated] = Endpoint(
    "auth.v1.keys.create", Codec(KeyCreate), queue="auth", reply=Codec(KeyCreated)
)
AUTH_KEYS_LIST: Endpoint[KeyListRequest, KeyList] = Endpoint(
    "auth.v1.keys.list", Codec(KeyListRequest), queue="auth", reply=Codec(KeyList)
)
AUTH_KEYS_REVOKE: Endpoint[KeyRevoke, KeyInfo] = Endpoint(
    "auth.v1.keys.revoke", Codec(KeyRevoke), queue="auth", reply=Codec(KeyInfo)
)
AUTH_KEYS_USAGE: Endpoint[KeyUsageRequest, KeyUsage] = Endpoint(
    "auth.v1.keys.usage", Codec(KeyUsageRequest), queue="auth", reply=Codec(KeyUsage)
)
USAGE_REQUESTS: Topic[RequestRecords] = Topic("usage.v1.requests", Codec(RequestRecords))
"""Published by the edge about once a second: the records of the requests that ended
since, up to `USAGE_BATCH` a message (core publishes, no acknowledgement awaited); the
durable JetStream stream `USAGE_STREAM` keeps them, and auth's replicas read them through
the one durable pull consumer `USAGE_CONSUMER`, which hands each message to one of them."""
USAGE_BATCH = 500
"""The most records in one `USAGE_REQUESTS` message (about 150 KB)."""
USAGE_STREAM = "LLMBUS_USAGE"
"""The JetStream stream of `USAGE_REQUESTS` (file storage; records kept for the retention)."""
USAGE_CONSUMER = "usage-aggregates"
"""The durable pull consumer that auth's replicas share to keep the daily aggregates."""
AUTH_USAGE_QUERY: Endpoint[UsageQuery, UsageReport] = Endpoint(
    "auth.v1.usage.query", Codec(UsageQuery), queue="auth", reply=Codec(UsageReport)
)

AUTH_QUOTA_RESERVE: Endpoint[QuotaReserve, QuotaGrant] = Endpoint(
    "auth.v1.quota.reserve", Codec(QuotaReserve), queue="auth", reply=Codec(QuotaGrant)
)
AUTH_QUOTA_SETTLE: Topic[QuotaSettle] = Topic("auth.v1.quota.settle", Codec(QuotaSettle), queue="auth")

AUTH_FLOW_START: Endpoint[DeviceFlowStart, DeviceFlow] = Endpoint(
    "auth.v1.flows.start", Codec(DeviceFlowStart), queue="auth", reply=Codec(DeviceFlow)
)
AUTH_FLOW_STATUS: Endpoint[DeviceFlowPoll, DeviceFlowStatus] = Endpoint(
    "auth.v1.flows.status", Codec(DeviceFlowPoll), queue="auth", reply=Codec(DeviceFlowStatus)
)
AUTH_CREDENTIALS_LIST: Endpoint[CredentialListRequest, CredentialList] = Endpoint(
    "auth.v1.credentials.list", Codec(CredentialListRequest), queue="auth", reply=Codec(CredentialList)
)
AUTH_CREDENTIALS_REMOVE: Endpoint[CredentialRemove, CredentialInfo] = Endpoint(
    "auth.v1.credentials.remove", Codec(CredentialRemove), queue="auth", reply=Codec(CredentialInfo)
)
AUTH_CREDENTIAL_EVENTS: Topic[CredentialEvent] = Topic("auth.v1.events.credentials", Codec(CredentialEvent))
AUTH_TOKENS_GET: Endpoint[TokenRequest, TokenReply] = Endpoint(
    "auth.v1.tokens.get", Codec(TokenRequest), queue="auth", reply=Codec(TokenReply)
)
AUTH_COOLDOWN_CLEAR: Endpoint[CooldownClear, CooldownCleared] = Endpoint(
    "auth.v1.cooldowns.clear", Codec(CooldownClear), queue="auth", reply=Codec(CooldownCleared)
)
CONTROL_COOLDOWNS_CLEARED: Topic[CooldownCleared] = Topic(
    "control.v1.cooldowns.cleared", Codec(CooldownCleared)
)
CONTROL_COOLDOWNS: Topic[Cooldown] = Topic("control.v1.cooldowns", Codec(Cooldown))
"""Auth to every router and worker: a rest lengthened because the upstream keeps refusing."""
AUTH_MANAGEMENT_ATTEMPT: Endpoint[ManagementAttempt, ManagementVerdict] = Endpoint(
    "auth.v1.management.attempt",
    Codec(ManagementAttempt),
    queue="auth",
    reply=Codec(ManagementVerdict),
)
"""Every management call asks first; auth counts failures per source (cluster-wide lockout)."""

# --- issue 10: stored responses of the Responses API ------------------------------------

AUTH_RESPONSES_PUT: Endpoint[ResponsePut, ResponseStored] = Endpoint(
    "auth.v1.responses.put", Codec(ResponsePut), queue="auth", reply=Codec(ResponseStored)
)
AUTH_RESPONSES_GET: Endpoint[ResponseGet, ResponseRecord] = Endpoint(
    "auth.v1.responses.get", Codec(ResponseGet), queue="auth", reply=Codec(ResponseRecord)
)
AUTH_RESPONSES_DELETE: Endpoint[ResponseGet, ResponseDeleted] = Endpoint(
    "auth.v1.responses.delete", Codec(ResponseGet), queue="auth", reply=Codec(ResponseDeleted)
)
"""Responses kept for `previous_response_id` and `GET /v1/responses/{id}`: the edge asks,
auth answers (`llmbus.proto.responses`)."""
