"""The v1 bus messages: route and exec requests, the reply stream's events, cancel,
auth, health and error replies.

Event tree (tagged by `type`, each with a per-request sequence number `seq`)::

    Event
    ├── Started    a worker's upstream answered; provider, model, credential
    ├── Delta      text, reasoning and tool-call fragments
    ├── Usage      token counts
    ├── Done       the finish reason; the last event of a good stream
    ├── Error      status, code, message, retryable; the last event of a failed stream
    ├── Heartbeat  the worker is alive but the upstream is silent
    └── Embeddings the vectors of an embeddings request (before its Usage and Done)
"""

from __future__ import annotations

import msgspec

from llmbus.proto.auth import ClientLimits
from llmbus.proto.base import Msg

__all__ = [
    "AnyEvent",
    "BusError",
    "CancelRequest",
    "Client",
    "Delta",
    "Done",
    "Embeddings",
    "Error",
    "Event",
    "ExecRequest",
    "Heartbeat",
    "KeyEvent",
    "KeyVerifyReply",
    "KeyVerifyRequest",
    "Needs",
    "RouteRequest",
    "ServiceHeartbeat",
    "Started",
    "Target",
    "ToolCallDelta",
    "Usage",
]


class Client(Msg, frozen=True, kw_only=True):
    """Who sent the request: the client key's id and name, never the key."""

    id: str
    name: str = ""


class Needs(Msg, frozen=True, kw_only=True):
    """Capabilities the request needs from a provider."""

    streaming: bool = False
    tools: bool = False
    vision: bool = False
    embeddings: bool = False
    """An embeddings request (`body` is an `EmbedRequest`): only models with the
    `embeddings` capability serve it, and they serve nothing else."""


class RouteRequest(Msg, frozen=True, kw_only=True):
    """`llm.v1.route`: a chat request on its way to the router.

    `body` is the msgpack-encoded `ChatRequest`; the router never decodes it.
    Frames of the reply stream go to `reply`. `deadline` is unix epoch milliseconds.
    """

    request_id: str
    model: str
    reply: str
    deadline: int
    client: Client
    needs: Needs = Needs()
    body: msgspec.Raw
    tokens: int = 0
    """The edge's estimate of the tokens the request may use (prompt + completion),
    which workers reserve against provider and credential TPM limits."""
    first_byte_deadline: int = 0
    """Unix epoch milliseconds by which the answer must have started (failover included);
    0: only `deadline` bounds it."""


class Target(Msg, frozen=True, kw_only=True):
    """One step of a failover plan: a provider, one of its credentials, the upstream model."""

    provider: str
    credential: str
    upstream_model: str


class ExecRequest(RouteRequest, frozen=True, kw_only=True):
    """`llm.v1.exec.<provider>`: a routed request for one worker.

    `target` is this attempt; `plan` the targets still to try after a retryable failure
    before the first byte. `seq` is the next sequence number of the reply stream (it
    carries on across failover).
    """

    target: Target
    attempt: int = 1
    plan: list[Target] = []
    seq: int = 0


class ToolCallDelta(Msg, frozen=True, kw_only=True):
    """A fragment of a tool call; fragments of one call share `index`."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    signature: str | None = None


class Event(Msg, tag_field="type", frozen=True, kw_only=True):
    """One frame of a reply stream."""

    seq: int


class Started(Event, tag="started", frozen=True, kw_only=True):
    provider: str
    model: str
    credential: str
    attempt: int = 1


class Delta(Event, tag="delta", frozen=True, kw_only=True):
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallDelta] = []
    reasoning_signature: str = ""
    """A fragment of the signature over the reasoning (Anthropic `signature_delta`)."""
    finish_reason: str = ""
    """The answer's finish reason as soon as the upstream says it (OpenAI-style streams
    send it before their usage chunk and `[DONE]`), so the client hears it as early as a
    direct client would; `Done` repeats it as the stream's last event."""


class Usage(Event, tag="usage", frozen=True, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens read from the provider's cache (part of `prompt_tokens`)."""
    reasoning_tokens: int = 0
    cache_creation_tokens: int = 0
    """Prompt tokens written to the provider's cache (part of `prompt_tokens`)."""


class Done(Event, tag="done", frozen=True, kw_only=True):
    finish_reason: str = "stop"
    """OpenAI's vocabulary: stop, length, tool_calls, content_filter."""
    stop_sequence: str = ""
    """The stop sequence that ended the answer, when the provider says which."""


class Error(Event, tag="error", frozen=True, kw_only=True):
    """The stream failed. `status` is the HTTP status the client should see."""

    status: int
    code: str
    message: str
    retryable: bool = False
    provider: str = ""
    retry_after: float = 0.0
    """Seconds the client should wait before retrying (429 and 503), 0 when unknown."""


class Heartbeat(Event, tag="heartbeat", frozen=True, kw_only=True):
    pass


class Embeddings(Event, tag="embeddings", frozen=True, kw_only=True):
    """The answer to an embeddings request: one vector per input, in the inputs' order."""

    vectors: list[list[float]]


class CancelRequest(Msg, frozen=True, kw_only=True):
    """`llm.v1.cancel.<request id>`: the client went away."""

    request_id: str
    reason: str = "client disconnected"


class BusError(Msg, frozen=True, kw_only=True):
    """Body of an error reply to a bus request; the reply also carries the
    `Llmbus-Error` header with the code."""

    status: int
    code: str
    message: str


class KeyVerifyRequest(Msg, frozen=True, kw_only=True):
    """`auth.v1.keys.verify`: is this client key valid? Only its SHA-256 travels."""

    key_hash: str


class KeyVerifyReply(Msg, frozen=True, kw_only=True):
    valid: bool
    client: Client | None = None
    ttl: float = 30.0
    limits: ClientLimits = ClientLimits()
    """What the key may do: the edge enforces `max_tokens` and `models` itself and asks
    auth for `rpm`/`tpm` admission."""
    expires_at: float = 0.0
    """Unix seconds; the edge stops accepting the key then, whatever its cache says."""


class KeyEvent(Msg, frozen=True, kw_only=True):
    """`auth.v1.events.keys`: a key was revoked or changed; caches drop it."""

    key_hash: str
    action: str = "revoked"


class ServiceHeartbeat(Msg, frozen=True, kw_only=True):
    """`health.v1.<service>`: a service instance is alive."""

    service: str
    instance: str
    version: str
    in_flight: int = 0
    providers: list[str] = []


AnyEvent = Started | Delta | Usage | Done | Error | Heartbeat | Embeddings
"""Every concrete reply-stream event; decode frames as this union and `match` on it."""
