"""The cluster as one router sees it, from the workers' `WorkerStatus` messages: which
providers have a live worker (and, for those without, why), their latest health checks,
and the statistics of every worker instance, added up per provider."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmbus.proto import ProviderStats, WorkerStatus
from llmbus.routing import Health, LiveState
from llmbus.telemetry.stats import add_counts, percentile

__all__ = ["Cluster", "ProviderTotals"]


@dataclass(slots=True)
class ProviderTotals:
    provider: str
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    latency: list[int] = field(default_factory=list)
    ttft: list[int] = field(default_factory=list)
    in_flight: int = 0
    workers: int = 0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def document(self) -> dict[str, object]:
        def quantiles(counts: list[int]) -> dict[str, float | None]:
            return {
                name: _round(percentile(counts, q))
                for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            }

        return {
            "provider": self.provider,
            "requests": self.requests,
            "errors": {"total": self.error_count, **dict(sorted(self.errors.items()))},
            "error_rate": round(self.error_count / self.requests, 4) if self.requests else 0.0,
            "latency_ms": quantiles(self.latency),
            "time_to_first_token_ms": quantiles(self.ttft),
            "tokens": {"in": self.tokens_in, "out": self.tokens_out},
            "in_flight": self.in_flight,
            "workers": self.workers,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Cluster:
    def __init__(self, state: LiveState, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self._clock = clock
        self._started = clock()
        self._statuses: dict[str, tuple[WorkerStatus, float]] = {}

    def update(self, status: WorkerStatus) -> None:
        now = self._clock()
        self._statuses[status.instance] = (status, now)
        self.state.worker_timeout = max(3 * status.interval, 3.0)
        for provider in status.providers:
            self.state.workers_seen[provider] = now
        for report in status.health:
            known = self.state.health.get(report.provider)
            if known is None or report.checked_at >= known.checked_at:
                self.state.health[report.provider] = Health(
                    ok=report.ok,
                    checked_at=report.checked_at,
                    latency_ms=report.latency_ms,
                    error=report.error,
                )

    def _live(self, status: WorkerStatus, seen: float, now: float) -> bool:
        return now - seen < max(3 * status.interval, 3.0)

    def missing_worker(self, provider: str, family: str) -> str | None:
        """Why no live worker serves `provider`, or None when one does. Right after the
        router starts, before any worker could report within the staleness window, a
        missing report proves nothing, and nothing is blamed on it."""
        now = self._clock()
        if self.state.has_worker(provider, now):
            return None
        if not self._statuses and now - self._started < self.state.worker_timeout:
            return None
        live = {status.family for status, seen in self._statuses.values() if self._live(status, seen, now)}
        if family not in live:
            return f"no live worker for family {family}"
        return (
            f"no live worker serves it: the live workers of family {family} leave it out "
            "(their provider list, or a config they have not reloaded)"
        )

    def totals(self) -> dict[str, ProviderTotals]:
        """Per provider: the sums over every worker instance ever seen (counters of a
        gone instance still count), with in-flight and worker counts of live ones."""
        now = self._clock()
        out: dict[str, ProviderTotals] = {}
        for status, seen in self._statuses.values():
            live = self._live(status, seen, now)
            for provider in status.providers:
                totals = out.setdefault(provider, ProviderTotals(provider))
                totals.workers += 1 if live else 0
            for stats in status.stats:
                _add(out.setdefault(stats.provider, ProviderTotals(stats.provider)), stats, live)
        return out

    def workers(self, provider: str) -> int:
        now = self._clock()
        return sum(
            1
            for status, seen in self._statuses.values()
            if provider in status.providers and self._live(status, seen, now)
        )


def _add(totals: ProviderTotals, stats: ProviderStats, live: bool) -> None:
    totals.requests += stats.requests
    for name, count in stats.errors.items():
        totals.errors[name] = totals.errors.get(name, 0) + count
    totals.tokens_in += stats.tokens_in
    totals.tokens_out += stats.tokens_out
    totals.latency = add_counts([totals.latency, stats.latency]) if totals.latency else list(stats.latency)
    totals.ttft = add_counts([totals.ttft, stats.ttft]) if totals.ttft else list(stats.ttft)
    if live:
        totals.in_flight += stats.in_flight
