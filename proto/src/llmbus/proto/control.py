"""The v1 control plane: provider switches, credential cooldowns, worker status with
provider statistics and health checks, and the registry queries the edge asks routers.

- `ProviderToggle` → auth (the only writer of this state in Redis) → `ProviderEnabled`
  broadcast to every router and edge.
- `Cooldown`: a worker saw a credential refused (429, 401); every router stops using it
  until `until`, and auth keeps it in Redis for routers that start later.
- `WorkerStatus`: each worker instance, every few seconds: what it serves, what is in
  flight, cumulative per-provider statistics and its latest health checks. Routers merge
  them into the cluster-wide view behind `/v1/providers/{name}/status` and
  `/v1/metrics/providers`.
- `RegistryQuery`: the edge's read API, answered by any router with a ready JSON body.
"""

from __future__ import annotations

from typing import Literal

from llmbus.proto.auth import CredentialInfo
from llmbus.proto.base import Msg

__all__ = [
    "LATENCY_BUCKETS_MS",
    "Cooldown",
    "HealthReport",
    "ProviderEnabled",
    "ProviderStats",
    "ProviderToggle",
    "RegistryQuery",
    "RegistryReply",
    "RuntimeState",
    "RuntimeStateRequest",
    "WorkerStatus",
]

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000,
)  # fmt: skip
"""Upper bounds of the latency histograms (plus one overflow bucket). Part of the
contract: every replica counts into the same buckets, so their counts add up."""


class ProviderToggle(Msg, frozen=True, kw_only=True):
    """`auth.v1.providers.toggle`: enable or disable a provider for every router."""

    provider: str
    enabled: bool
    actor: str = ""


class ProviderEnabled(Msg, frozen=True, kw_only=True):
    """`control.v1.providers.enabled`: the switch took effect (also the toggle's reply)."""

    provider: str
    enabled: bool
    at: float = 0.0


class Cooldown(Msg, frozen=True, kw_only=True):
    """`auth.v1.events.cooldowns`: a credential rests until `until` (unix seconds), as
    the worker that saw the refusal decided. `control.v1.cooldowns`: auth lengthened that
    rest (refusals in a row). `until` 0 from a worker: the credential answered again after
    its rest (it is recovered; auth forgets its streak, routers end its probation)."""

    provider: str
    credential: str
    until: float
    reason: str = ""
    status: int = 0
    model: str = ""
    """The upstream model the rest applies to (after a 429); empty: every model (after a
    401 or 403)."""
    retry_after: float = 0.0
    """The upstream's own Retry-After (seconds), which is honoured as it is; 0: the
    rest is the policy's, and auth doubles it while refusals repeat."""


class RuntimeStateRequest(Msg, frozen=True, kw_only=True):
    """`auth.v1.state`: what a starting router or edge needs to catch up."""


class RuntimeState(Msg, frozen=True, kw_only=True):
    enabled: dict[str, bool] = {}
    cooldowns: list[Cooldown] = []
    credentials: list[CredentialInfo] = []
    """Credentials auth keeps (device-flow logins, imported token files), for routers."""


class ProviderStats(Msg, frozen=True, kw_only=True):
    """Cumulative counts of one provider at one worker instance since it started."""

    provider: str
    requests: int = 0
    errors: dict[str, int] = {}
    """error class → count: rate_limited, auth, client, upstream, timeout, network,
    protocol, cancelled."""
    tokens_in: int = 0
    tokens_out: int = 0
    latency: list[int] = []
    """Counts per LATENCY_BUCKETS_MS bucket, plus overflow: whole request duration."""
    ttft: list[int] = []
    """Counts per bucket: time to the first token."""
    in_flight: int = 0


class HealthReport(Msg, frozen=True, kw_only=True):
    provider: str
    ok: bool
    checked_at: float
    latency_ms: float = 0.0
    error: str = ""


class WorkerStatus(Msg, frozen=True, kw_only=True):
    """`health.v1.worker`: one worker instance is alive; what it serves and has seen."""

    instance: str
    family: str
    version: str = ""
    providers: list[str] = []
    in_flight: int = 0
    stats: list[ProviderStats] = []
    health: list[HealthReport] = []
    interval: float = 5.0
    """Seconds until the next status: a router counts the instance gone after three."""


class RegistryQuery(Msg, frozen=True, kw_only=True):
    """`control.v1.registry`: a read of the provider and model registry."""

    kind: Literal[
        "providers",
        "provider",
        "provider_models",
        "provider_capabilities",
        "provider_status",
        "models",
        "model",
        "capabilities",
        "metrics",
    ]
    name: str = ""
    params: dict[str, str] = {}


class RegistryReply(Msg, frozen=True, kw_only=True):
    status: int = 200
    body: bytes = b""
    """The JSON document for the client, ready to send."""
