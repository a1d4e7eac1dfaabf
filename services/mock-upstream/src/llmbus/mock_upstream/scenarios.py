"""Scripted upstream behaviours, picked per request, the same for every family.

A scenario is chosen, in this order, by the one forced through the admin API, by a
scenario name inside the upstream model name (`error-500`, `hang`, ...) or inside the
key (`sk-error-429-upstream`). Anything else gets a normal answer, so the mock serves
real model names unchanged.
"""

from __future__ import annotations

import enum

__all__ = ["FAILING_MIDSTREAM", "Scenario", "pick_scenario"]


class Scenario(enum.StrEnum):
    OK = "ok"
    ERROR_400 = "error-400"
    ERROR_401 = "error-401"
    ERROR_429 = "error-429"
    ERROR_500 = "error-500"
    ERROR_503 = "error-503"
    HANG = "hang"
    """Accept the request, then send nothing at all."""
    HANG_MIDSTREAM = "hang-midstream"
    """Send the first chunks, then go silent."""
    MALFORMED_SSE = "malformed-sse"
    """Send the first chunks, then a frame that does not parse."""
    MIDSTREAM_ERROR = "midstream-error"
    """Send the first chunks, then the family's own in-stream error."""
    DROP_MIDSTREAM = "drop-midstream"
    """Send the first chunks, then close the connection before the end."""
    SLOW = "slow"
    """A normal answer, with a pause (at least 0.5 s) before every chunk."""
    SLOW_START = "slow-start"
    """A normal answer after a silence of `slow_start_seconds`."""
    TRICKLE = "trickle"
    """A normal answer, streamed one character a chunk with `trickle_interval_ms` between
    chunks: never silent for long, but long to finish (a deadline must end it)."""
    PARALLEL_TOOLS = "parallel-tools"
    """Call two tools at once (the first two offered, or the one offered twice)."""
    LENGTH = "length"
    """Stop after a few tokens, as if `max_tokens` had been reached."""
    GZIP = "gzip"
    """A normal answer, compressed (`Content-Encoding: gzip`), streamed or whole."""


FAILING_MIDSTREAM = frozenset(
    {Scenario.HANG_MIDSTREAM, Scenario.MALFORMED_SSE, Scenario.MIDSTREAM_ERROR, Scenario.DROP_MIDSTREAM}
)

# Longest names first so that `hang-midstream` is not taken for `hang`.
_BY_LENGTH = sorted((s for s in Scenario if s is not Scenario.OK), key=lambda s: -len(s.value))


def _find(text: str) -> Scenario | None:
    for scenario in _BY_LENGTH:
        if scenario.value in text:
            return scenario
    return None


def pick_scenario(forced: Scenario | None, model: str, api_key: str) -> Scenario:
    if forced is not None:
        return forced
    return _find(model) or _find(api_key) or Scenario.OK
