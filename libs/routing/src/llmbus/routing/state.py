"""What the router learns at run time, as opposed to what the config file says: providers
enabled or disabled through the management API, credentials cooling down, the result of
each provider's health check, and which providers have a live worker.

Every replica holds its own copy, fed by the same broadcast events, so a change reaches
all of them at once. Reads are dict lookups: the state is consulted on every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmbus.routing.credentials import StoredCredentials

__all__ = ["Health", "LiveState"]


@dataclass(slots=True)
class Health:
    ok: bool
    checked_at: float
    """Unix time of the check."""
    latency_ms: float = 0.0
    error: str = ""


@dataclass(slots=True)
class LiveState:
    enabled: dict[str, bool] = field(default_factory=dict)
    """Overrides of the config's `enabled`, set through the management API."""
    cooldowns: dict[tuple[str, str], float] = field(default_factory=dict)
    """(provider, credential) → unix time until which it rests."""
    cooldown_reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    health: dict[str, Health] = field(default_factory=dict)
    workers_seen: dict[str, float] = field(default_factory=dict)
    """provider → monotonic time of the last heartbeat of a worker serving it."""
    worker_timeout: float = 15.0
    credentials: StoredCredentials = field(default_factory=StoredCredentials)
    """Credentials auth keeps (logins, config imports) and their health."""

    def is_enabled(self, provider: str, configured: bool) -> bool:
        return self.enabled.get(provider, configured)

    def cooling_until(self, provider: str, credential: str, now: float | None = None) -> float:
        """When the credential may be used again; 0 when it may be used now."""
        until = self.cooldowns.get((provider, credential), 0.0)
        if until and until <= (time.time() if now is None else now):
            self.cooldowns.pop((provider, credential), None)
            self.cooldown_reasons.pop((provider, credential), None)
            return 0.0
        return until

    def cool_down(self, provider: str, credential: str, until: float, reason: str) -> None:
        if until > self.cooldowns.get((provider, credential), 0.0):
            self.cooldowns[(provider, credential)] = until
            self.cooldown_reasons[(provider, credential)] = reason

    def is_healthy(self, provider: str) -> bool:
        health = self.health.get(provider)
        return health is None or health.ok

    def has_worker(self, provider: str, now: float | None = None) -> bool | None:
        """True or False once heartbeats have been seen; None before any has arrived.
        `now` is monotonic time (default: the clock's)."""
        if not self.workers_seen:
            return None
        seen = self.workers_seen.get(provider)
        return seen is not None and (time.monotonic() if now is None else now) - seen < self.worker_timeout
