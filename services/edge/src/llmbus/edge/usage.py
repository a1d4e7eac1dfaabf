"""The edge's report of each finished request to auth, which counts usage per key."""

from __future__ import annotations

import time

from llmbus.bus import BusFailure
from llmbus.edge.calls import Call
from llmbus.proto import AUTH_USAGE_EVENTS, AnyEvent, Started, Usage, UsageRecord

__all__ = ["report_usage"]


async def report_usage(call: Call, first: AnyEvent | None, usage: Usage | None, ok: bool) -> None:
    """Publish the request's `UsageRecord`: untraced and never awaited for an answer, so
    that counting costs the request nothing; a record lost with the bus is only a count."""
    record = UsageRecord(
        key_id=call.client.id,
        model=call.chat.model,
        provider=first.provider if isinstance(first, Started) else "",
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
        at=time.time(),
        ok=ok,
    )
    try:
        await call.bus.publish(AUTH_USAGE_EVENTS, record, traced=False)
    except BusFailure:
        pass
