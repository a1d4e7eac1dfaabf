"""Worker settings (environment `LLMBUS_*`)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from llmbus.config.settings import ServiceSettings

__all__ = ["WorkerSettings"]


class WorkerSettings(ServiceSettings, frozen=True, kw_only=True):
    nats_user: str = "worker"
    family: str = "openai"
    """Adapter family this deployment serves; it takes every configured provider of it."""
    providers: str = ""
    """Comma-separated provider names, to serve fewer than the whole family."""
    processes: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Worker processes of this family that the worker command starts and supervises
    (`llmbus.worker.launcher`): one process runs on one core (measured: about 430
    requests/s), so give a busy family one per core it may use."""
    concurrency: int = 256
    """Upstream calls in flight at once in this process."""
    heartbeat_interval: float = 1.0
    coalesce_ms: Annotated[float, msgspec.Meta(ge=0, le=50)] = 1.0
    """How long a stream's chunk after its first may wait to share a bus write with other
    chunks (of any stream): under many streams, one write per window instead of one per
    chunk. A stream's first chunk and its end never wait. 0: every chunk written at once."""
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    max_connections: int = 512
    max_keepalive: int = 32
    """Idle upstream connections kept open for reuse: each saves a TLS handshake, but the
    HTTP pool checks every idle connection on every request (measured: 64 idle ones add
    about 1 ms per call), so keep the number near the usual concurrency."""
    keepalive_expiry: float = 30.0
    metrics_port: int = 0
    status_interval: float = 2.0
    """Seconds between two `WorkerStatus` messages to the routers."""
