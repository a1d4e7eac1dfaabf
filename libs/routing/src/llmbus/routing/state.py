"""What the router learns at run time, as opposed to what the config file says: providers
enabled or disabled through the management API, credentials cooling down, the result of
each provider's health check, and which providers have a live worker.

Every replica holds its own copy, fed by the same broadcast events, so a change reaches
all of them at once. Reads are dict lookups: the state is consulted on every request.

Rests are per credential and upstream model (after a 429: limits are usually per
model) or per credential for every model (model "", after a 401 or 403). When a rest
ends, the credential is on probation: this router lets exactly one request through
(`take`) and keeps the others off it until that request's worker reports the
credential answered (`recovered`), a new refusal rests it again, or `probe_window`
passes without either (the report was lost). With several routers, each lets one
request through: the probes are bounded by the number of router replicas.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmbus.routing.credentials import StoredCredentials

__all__ = ["Health", "LiveState", "RestKey"]

RestKey = tuple[str, str, str]
"""(provider, credential, upstream model); model "": every model."""


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
    cooldowns: dict[RestKey, float] = field(default_factory=dict)
    """(provider, credential, model) → unix time until which it rests."""
    cooldown_reasons: dict[RestKey, str] = field(default_factory=dict)
    probation: dict[RestKey, float] = field(default_factory=dict)
    """Rests that ended → unix time until which the probe let through is awaited (0: no
    probe sent yet)."""
    probe_window: float = 10.0
    health: dict[str, Health] = field(default_factory=dict)
    workers_seen: dict[str, float] = field(default_factory=dict)
    """provider → monotonic time of the last heartbeat of a worker serving it."""
    worker_timeout: float = 15.0
    credentials: StoredCredentials = field(default_factory=StoredCredentials)
    """Credentials auth keeps (logins, config imports) and their health."""

    def is_enabled(self, provider: str, configured: bool) -> bool:
        return self.enabled.get(provider, configured)

    def _keys(self, provider: str, credential: str, model: str) -> tuple[RestKey, ...]:
        every = (provider, credential, "")
        return (every, (provider, credential, model)) if model else (every,)

    def cooling_until(
        self, provider: str, credential: str, model: str = "", now: float | None = None
    ) -> float:
        """When the credential may serve `model` again (every model's rest included); 0
        when it may now. A rest that has ended moves to probation."""
        now = time.time() if now is None else now
        latest = 0.0
        for key in self._keys(provider, credential, model):
            until = self.cooldowns.get(key, 0.0)
            if not until:
                continue
            if until <= now:
                del self.cooldowns[key]
                self.cooldown_reasons.pop(key, None)
                self.probation[key] = 0.0
            else:
                latest = max(latest, until)
        return latest

    def take(self, provider: str, credential: str, model: str, now: float | None = None) -> float:
        """Like `cooling_until`, for a request about to be routed: a credential on
        probation is given to this one request (0) and withheld from the others until
        its probe is over (the end of the probe window)."""
        now = time.time() if now is None else now
        until = self.cooling_until(provider, credential, model, now)
        if until or not self.probation:
            return until
        for key in self._keys(provider, credential, model):
            probe = self.probation.get(key)
            if probe is None:
                continue
            if probe == 0.0:
                self.probation[key] = now + self.probe_window
            elif probe > now:
                return probe
            else:
                del self.probation[key]
        return 0.0

    def reason(self, provider: str, credential: str, model: str = "") -> str:
        keys = self._keys(provider, credential, model)
        for key in keys:
            if key in self.cooldown_reasons:
                return self.cooldown_reasons[key]
        if any(self.probation.get(key) for key in keys):
            return "its rest is over; one request is probing it"
        return ""

    def rests(self, provider: str, credential: str, now: float | None = None) -> list[tuple[str, float, str]]:
        """The credential's rests still running: (model, until, reason), model "" for all."""
        now = time.time() if now is None else now
        return sorted(
            (key[2], until, self.cooldown_reasons.get(key, ""))
            for key, until in self.cooldowns.items()
            if key[0] == provider and key[1] == credential and until > now
        )

    def cool_down(self, provider: str, credential: str, until: float, reason: str, model: str = "") -> None:
        key = (provider, credential, model)
        self.probation.pop(key, None)
        if until > self.cooldowns.get(key, 0.0):
            self.cooldowns[key] = until
            self.cooldown_reasons[key] = reason

    def recovered(self, provider: str, credential: str, model: str = "") -> None:
        """A worker reports the credential answered after its rest: probation is over."""
        self.probation.pop((provider, credential, model), None)

    def clear(self, provider: str, credential: str = "", model: str = "") -> int:
        """End rests and probations now (every credential or model when empty); returns
        how many rests were running."""
        cleared = 0
        for table in (self.cooldowns, self.probation):
            for key in [k for k in table if k[0] == provider]:
                if (not credential or key[1] == credential) and (not model or key[2] == model):
                    cleared += table is self.cooldowns
                    del table[key]
                    self.cooldown_reasons.pop(key, None)
        return cleared

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
