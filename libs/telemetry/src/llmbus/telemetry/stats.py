"""Fixed-bucket latency histograms that add up across replicas.

Every worker counts into the buckets of `LATENCY_BUCKETS_MS` (part of the bus contract),
so the router can sum the counts of all instances and read percentiles off the sum."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from llmbus.proto import LATENCY_BUCKETS_MS

__all__ = ["add_counts", "bucket_of", "empty_counts", "percentile"]


def empty_counts() -> list[int]:
    return [0] * (len(LATENCY_BUCKETS_MS) + 1)


def bucket_of(milliseconds: float) -> int:
    """Index of the bucket holding `milliseconds` (the last one is the overflow)."""
    return bisect_left(LATENCY_BUCKETS_MS, milliseconds)


def add_counts(histograms: Iterable[Sequence[int]]) -> list[int]:
    total = empty_counts()
    for counts in histograms:
        for index, value in enumerate(counts[: len(total)]):
            total[index] += value
    return total


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-th percentile (0 < q < 1) in milliseconds, interpolated inside its bucket;
    None for an empty histogram. The overflow bucket reports its lower bound."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = LATENCY_BUCKETS_MS[index - 1] if index > 0 else 0.0
            if index >= len(LATENCY_BUCKETS_MS):
                return float(lower)
            upper = LATENCY_BUCKETS_MS[index]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return float(LATENCY_BUCKETS_MS[-1])
