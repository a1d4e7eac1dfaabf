"""Edge settings (environment `LLMBUS_*`)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from llmbus.config.settings import ServiceSettings

__all__ = ["EdgeSettings"]


class EdgeSettings(ServiceSettings, frozen=True, kw_only=True):
    nats_user: str = "edge"
    host: str = "127.0.0.1"
    """Where the API listens: this machine only, unless set (compose sets 0.0.0.0)."""
    port: int = 8317
    processes: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Edge processes serving the port (uvicorn workers sharing its socket), each with
    its own bus connection and reply inbox: one process uses at most one core. With
    more than one, `/metrics` shows the counters of the process that answers."""
    accept_timeout: float = 2.0
    """Seconds to wait for a worker to take a request before answering 503."""
    idle_timeout: float = 15.0
    """Seconds without any frame (heartbeats included) before a stream counts as dead."""
    request_timeout: float = 600.0
    """Deadline of one request, first byte to last."""
    first_byte_timeout: float = 300.0
    """Seconds within which an answer must have started, failover included (each upstream
    call has its own, shorter bound: the providers' `timeouts.first_byte_seconds`)."""
    drain_seconds: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    """After SIGTERM: how long the answers in flight may run on before each ends with a
    `gateway_stopping` error (an error event in a stream); no new connection is taken."""
    key_cache_ttl: float = 30.0
    usage_flush_interval: float = 1.0
    """Seconds between two sends of the usage records of finished requests (see
    `usage.UsageReporter`): what a request costs is an append, the publishes happen here."""

    # What one client can make the edge hold (docs/limits.md). Each refusal is a 4xx in
    # the client's own error format.
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1)] = 8 * 1024 * 1024
    """The largest request body: a larger Content-Length is refused before anything is
    read, a chunked body as soon as its bytes pass it (413)."""
    body_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Seconds a client has to send its whole body (one that stalls, or a Content-Length
    longer than what it sends, gets a 408 and the connection is closed), and its request
    head (408 too)."""
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024
    """The largest request head (request line and headers): 431 and the connection closed."""
    max_headers: Annotated[int, msgspec.Meta(ge=8)] = 100
    """The most header fields in one request: 431 and the connection closed."""
    max_messages: Annotated[int, msgspec.Meta(ge=1)] = 4096
    """The most messages in one chat request (400 `too_many_messages`)."""
    max_tools: Annotated[int, msgspec.Meta(ge=0)] = 512
    """The most tools in one chat request (400 `too_many_tools`)."""
    max_tokens_limit: Annotated[int, msgspec.Meta(ge=1)] = 1_000_000
    """The largest `max_tokens` a request may name (400 `max_tokens_too_large`)."""
    max_json_depth: Annotated[int, msgspec.Meta(ge=2)] = 64
    """How deep free-form JSON in a request (tool schemas, `response_format`) may nest
    (400 `json_too_deep`)."""
    max_concurrent_requests: Annotated[int, msgspec.Meta(ge=1)] = 1024
    """Chat requests one edge process serves at once, from every client (503
    `edge_overloaded` beyond)."""
    max_concurrent_per_key: Annotated[int, msgspec.Meta(ge=1)] = 256
    """Chat requests one client key may have in flight on one edge process (429
    `too_many_concurrent_requests` with Retry-After beyond)."""
