"""What a phase measured for one leg, summed over its rounds."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from bench.load import Batch

__all__ = ["Measured", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of `values` (q in 0..1); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Measured:
    batches: list[Batch] = field(default_factory=list)
    cpu: Counter[str] = field(default_factory=Counter)
    """CPU seconds of each process during this leg's batches."""

    def add(self, batch: Batch, cpu: dict[str, float]) -> None:
        self.batches.append(batch)
        self.cpu.update(cpu)

    @property
    def ok(self) -> list[float]:
        return [s.latency for b in self.batches for s in b.samples if not s.error]

    @property
    def ttfts(self) -> list[float]:
        return [s.ttft for b in self.batches for s in b.samples if not s.error]

    @property
    def gaps(self) -> list[float]:
        return [g for b in self.batches for s in b.samples if not s.error for g in s.gaps]

    @property
    def requests(self) -> int:
        return sum(len(b.samples) for b in self.batches)

    @property
    def errors(self) -> Counter[str]:
        return Counter(s.error for b in self.batches for s in b.samples if s.error)

    @property
    def rps(self) -> float:
        elapsed = sum(b.elapsed for b in self.batches)
        return len(self.ok) / elapsed if elapsed else math.nan

    @property
    def completed_in_window(self) -> int:
        return sum(b.completed_in_window for b in self.batches)

    @property
    def window(self) -> float:
        return sum(b.window for b in self.batches)

    def latency_ms(self, q: float) -> float:
        return percentile(self.ok, q) * 1000

    def ttft_ms(self, q: float) -> float:
        return percentile(self.ttfts, q) * 1000

    def gap_ms(self, q: float) -> float:
        return percentile(self.gaps, q) * 1000

    def cpu_ms_per_request(self, process: str) -> float:
        return self.cpu[process] * 1000 / self.requests if self.requests else math.nan
