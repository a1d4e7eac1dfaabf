"""Sources locked out of the management API after repeated wrong keys, cluster-wide.

    llmbus:lockout:<source>            string  set while the source is locked out (PX)
    llmbus:lockout:<source>:failures   int     failures in the current window (PX)

CLIProxyAPI's rule: 5 failures, then 30 minutes. Failures older than the lockout period
are forgotten, and a right key resets the count. While locked out, a source is refused
even with the right key; otherwise the lockout would not slow a guesser down.

One Lua script decides each attempt, so concurrent attempts on several edges and auth
replicas cannot each see "4 failures" and let a sixth guess through.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.proto import ManagementVerdict

__all__ = ["LockoutStore"]

_PREFIX = "llmbus:lockout:"

# KEYS: lock, failures. ARGV: ok ("1" | "0"), max failures, lock period (ms).
# Returns {state (0: open, 1: locked, 2: locked by this attempt), remaining lock (ms), failures}.
_ATTEMPT = """
local remaining = redis.call('PTTL', KEYS[1])
if remaining > 0 then
  return {1, remaining, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[2])
  return {0, 0, 0}
end
local failures = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if failures >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
  return {2, tonumber(ARGV[3]), failures}
end
return {0, 0, failures}
"""


class LockoutStore:
    def __init__(self, redis: Redis, *, max_failures: int = 5, lock_seconds: float = 1800.0) -> None:
        self._redis = redis
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds
        self._script = redis.register_script(_ATTEMPT)

    async def attempt(self, source: str, ok: bool) -> tuple[ManagementVerdict, bool]:
        """Count one attempt of `source`: whether it is locked out, and whether this
        attempt locked it (to be logged once)."""
        lock = _PREFIX + source
        try:
            state, remaining_ms, failures = await self._script(
                keys=[lock, lock + ":failures"],
                args=["1" if ok else "0", self.max_failures, int(self.lock_seconds * 1000)],
            )
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        verdict = ManagementVerdict(
            locked=state != 0, retry_after=int(remaining_ms) / 1000, failures=int(failures)
        )
        return verdict, state == 2
