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
    key_cache_ttl: float = 30.0
    usage_flush_interval: float = 1.0
    """Seconds between two reports of counted usage to auth (see `usage.UsageBatcher`)."""
    max_body_bytes: int = 8 * 1024 * 1024
