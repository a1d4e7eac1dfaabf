"""Daily usage aggregates in Redis, kept from the usage records of the usage stream.

    llmbus:usage:by:<dimension>:<YYYY-MM-DD>   hash  "<counter>:<group>" → count
        dimension: key | provider | credential | model; group: the key id, provider,
        hashed credential id or model asked for (empty when none: a request no
        provider took has the provider "")
        counter:   requests | errors | input | output | cached | reasoning
    llmbus:usage:<key id>:<YYYY-MM-DD>          hash  "<counter>:<model>" → count
        counter:   requests | input | output        (`GET /v1/keys/{id}/usage`)
    llmbus:usage:applied:<sequence // 100000>   set   stream sequences already counted

Every hash expires the retention after its last write. A batch of records is summed
here first, then written in one MULTI/EXEC: its increments and the sequences it
applied, together or not at all. A record read again (its reader crashed before it
acknowledged) is counted only if its sequence is not in the applied set, so neither a
crash before the write nor one after it loses or doubles a record.

The counter comes first in a field because a group (a model name) may contain `:`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.proto import KeyUsage, RequestRecord, UsageCounts, UsageDimension, UsageReport, UsageRow

__all__ = ["UsageStore"]

_PREFIX: Final = "llmbus:usage:"
_BY: Final = _PREFIX + "by:"
_APPLIED: Final = _PREFIX + "applied:"
_APPLIED_BUCKET: Final = 100_000
_APPLIED_TTL: Final = 7 * 86_400
"""How long a batch's sequences are remembered: far beyond any redelivery."""

_ROW_COUNTERS: Final = ("requests", "errors", "input", "output", "cached", "reasoning")
_KEY_COUNTERS: Final = ("requests", "input", "output")


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _groups(record: RequestRecord) -> tuple[tuple[UsageDimension, str], ...]:
    return (
        ("key", record.key_id),
        ("provider", record.provider),
        ("credential", record.credential),
        ("model", record.model),
    )


def _days(days: int, now: float | None) -> list[str]:
    """The last `days` UTC days, today included, oldest first."""
    today = datetime.fromtimestamp(now or time.time(), UTC).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]


class _Tally:
    __slots__ = ("input", "output", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.input = 0
        self.output = 0

    def add(self, counter: str, count: int) -> None:
        setattr(self, counter, getattr(self, counter) + count)

    def counts(self) -> UsageCounts:
        return UsageCounts(requests=self.requests, input_tokens=self.input, output_tokens=self.output)


class UsageStore:
    def __init__(self, redis: Redis, retention_days: int = 90) -> None:
        self._redis = redis
        self.retention_days = retention_days
        """How long aggregates are kept, and the longest window a query may ask for."""

    async def applied(self, sequences: Sequence[int]) -> set[int]:
        """Which of `sequences` (stream sequences of records read again) were counted."""
        if not sequences:
            return set()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for sequence in sequences:
                    pipe.sismember(f"{_APPLIED}{sequence // _APPLIED_BUCKET}", str(sequence))
                found: list[int] = await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        return {sequence for sequence, hit in zip(sequences, found, strict=True) if hit}

    async def record(self, records: Sequence[tuple[int, RequestRecord]]) -> None:
        """Count a batch of (stream sequence, record): one MULTI/EXEC for the batch. The
        records of one stream message share its sequence, which marks them all counted."""
        increments: defaultdict[tuple[str, str], int] = defaultdict(int)
        for _, record in records:
            day = _day(record.at or time.time())
            failed = record.status >= 400
            for dimension, group in _groups(record):
                key = f"{_BY}{dimension}:{day}"
                increments[key, f"requests:{group}"] += 1
                if failed:
                    increments[key, f"errors:{group}"] += 1
                increments[key, f"input:{group}"] += record.input_tokens
                increments[key, f"output:{group}"] += record.output_tokens
                increments[key, f"cached:{group}"] += record.cached_tokens
                increments[key, f"reasoning:{group}"] += record.reasoning_tokens
            key = f"{_PREFIX}{record.key_id}:{day}"
            increments[key, f"requests:{record.model}"] += 1
            increments[key, f"input:{record.model}"] += record.input_tokens
            increments[key, f"output:{record.model}"] += record.output_tokens
        buckets: defaultdict[str, set[str]] = defaultdict(set)
        for sequence, _ in records:  # a message's records share its sequence number
            buckets[f"{_APPLIED}{sequence // _APPLIED_BUCKET}"].add(str(sequence))
        ttl = self.retention_days * 86_400
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                written: set[str] = set()
                for (key, field), count in increments.items():
                    if count:
                        pipe.hincrby(key, field, count)
                        written.add(key)
                for key in written:
                    pipe.expire(key, ttl)
                for bucket, sequences in buckets.items():
                    pipe.sadd(bucket, *sequences)
                    pipe.expire(bucket, _APPLIED_TTL)
                await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None

    async def _daily(self, prefix: str, days: list[str]) -> list[dict[bytes | str, bytes | str]]:
        """The hashes `prefix` + day of `days`, in their order, in one round trip."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for day in days:
                    pipe.hgetall(f"{prefix}{day}")
                raws: list[dict[bytes | str, bytes | str]] = await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        return raws

    async def report(self, by: UsageDimension, days: int, now: float | None = None) -> UsageReport:
        """Rows per UTC day and group over the last `days` days (today included), oldest
        day first; days and groups without requests are left out."""
        wanted = _days(days, now)
        raws = await self._daily(f"{_BY}{by}:", wanted)
        rows: list[UsageRow] = []
        for day, raw in zip(wanted, raws, strict=True):
            groups: dict[str, dict[str, int]] = {}
            for raw_field, raw_count in raw.items():
                counter, _, group = _text(raw_field).partition(":")
                if counter in _ROW_COUNTERS:
                    groups.setdefault(group, {})[counter] = int(raw_count)
            for group, counts in sorted(groups.items()):
                if not counts.get("requests"):
                    continue
                rows.append(
                    UsageRow(
                        day=day,
                        group=group,
                        requests=counts.get("requests", 0),
                        errors=counts.get("errors", 0),
                        input_tokens=counts.get("input", 0),
                        output_tokens=counts.get("output", 0),
                        cached_tokens=counts.get("cached", 0),
                        reasoning_tokens=counts.get("reasoning", 0),
                    )
                )
        return UsageReport(by=by, days=days, rows=rows)

    async def usage(self, key_id: str, days: int, now: float | None = None) -> KeyUsage:
        """One key's totals, per model and per day over the last `days` UTC days, today
        included; days without requests are left out."""
        wanted = _days(max(1, min(days, self.retention_days)), now)
        raws = await self._daily(f"{_PREFIX}{key_id}:", wanted)
        total = _Tally()
        by_model: dict[str, _Tally] = {}
        by_day: dict[str, _Tally] = {}
        for day, raw in zip(wanted, raws, strict=True):
            for raw_field, raw_count in raw.items():
                counter, _, model = _text(raw_field).partition(":")
                if counter not in _KEY_COUNTERS:
                    continue
                count = int(raw_count)
                total.add(counter, count)
                by_model.setdefault(model, _Tally()).add(counter, count)
                by_day.setdefault(day, _Tally()).add(counter, count)
        return KeyUsage(
            id=key_id,
            total=total.counts(),
            by_model={model: tally.counts() for model, tally in sorted(by_model.items())},
            by_day={day: tally.counts() for day, tally in sorted(by_day.items())},
        )
