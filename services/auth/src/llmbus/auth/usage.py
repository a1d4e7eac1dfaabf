"""What each client key used, per model and per UTC day, counted in Redis.

    llmbus:usage:<key id>:<YYYY-MM-DD>   hash  "<counter>:<model>" → count
                                          counter: requests | input | output
                                          (expires RETENTION_DAYS after its last write)

One hash per key and day keeps a record to one pipeline of HINCRBYs (no read, so any
number of auth replicas count side by side) and a usage query to one HGETALL per day.
The counter comes first in a field because a model name may itself contain `:`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.proto import KeyUsage, UsageCounts, UsageRecord

__all__ = ["MAX_DAYS", "UsageStore"]

_PREFIX = "llmbus:usage:"
RETENTION_DAYS = 400
MAX_DAYS = 366
"""The longest window a usage query may ask for."""

_COUNTERS = ("requests", "input", "output")


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def record(self, usage: UsageRecord) -> None:
        """Count finished requests (failed ones too: they were asked for)."""
        key = f"{_PREFIX}{usage.key_id}:{_day(usage.at or time.time())}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(key, f"requests:{usage.model}", usage.requests)
                if usage.input_tokens:
                    pipe.hincrby(key, f"input:{usage.model}", usage.input_tokens)
                if usage.output_tokens:
                    pipe.hincrby(key, f"output:{usage.model}", usage.output_tokens)
                pipe.expire(key, RETENTION_DAYS * 86_400)
                await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None

    async def usage(self, key_id: str, days: int, now: float | None = None) -> KeyUsage:
        """Totals, per model and per day over the last `days` UTC days, today included;
        days without requests are left out."""
        today = datetime.fromtimestamp(now or time.time(), UTC).date()
        wanted = [(today - timedelta(days=back)).isoformat() for back in range(max(1, min(days, MAX_DAYS)))]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for day in wanted:
                    pipe.hgetall(f"{_PREFIX}{key_id}:{day}")
                raws: list[dict[bytes | str, bytes | str]] = await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        total = _Tally()
        by_model: dict[str, _Tally] = {}
        by_day: dict[str, _Tally] = {}
        for day, raw in zip(wanted, raws, strict=True):
            for raw_field, raw_count in raw.items():
                counter, _, model = _text(raw_field).partition(":")
                if counter not in _COUNTERS:
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
