"""Runtime provider state in Redis: switches set through the management API and
credential cooldowns, so that routers started later (or restarted) catch up.

- `llmbus:providers:enabled`  hash  provider → "1" | "0"
- `llmbus:cooldowns`          hash  "<provider>/<credential>" → JSON {until, reason, status}
  (expired entries are dropped when read)
"""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.proto import Cooldown, RuntimeState

__all__ = ["RuntimeStore"]

_ENABLED = "llmbus:providers:enabled"
_COOLDOWNS = "llmbus:cooldowns"


class _Stored(msgspec.Struct):
    until: float
    reason: str = ""
    status: int = 0


_decode = msgspec.json.Decoder(_Stored).decode
_encode = msgspec.json.Encoder().encode


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RuntimeStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def set_enabled(self, provider: str, enabled: bool) -> None:
        try:
            await self._redis.hset(_ENABLED, provider, "1" if enabled else "0")
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None

    async def add_cooldown(self, cooldown: Cooldown) -> None:
        field = f"{cooldown.provider}/{cooldown.credential}"
        try:
            await self._redis.hset(
                _COOLDOWNS, field, _encode(_Stored(cooldown.until, cooldown.reason, cooldown.status))
            )
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None

    async def state(self) -> RuntimeState:
        try:
            enabled = await self._redis.hgetall(_ENABLED)
            stored = await self._redis.hgetall(_COOLDOWNS)
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        now = time.time()
        cooldowns: list[Cooldown] = []
        expired: list[str] = []
        for raw_field, raw_value in stored.items():
            field = _text(raw_field)
            provider, _, credential = field.partition("/")
            try:
                entry = _decode(raw_value)
            except msgspec.DecodeError:
                expired.append(field)
                continue
            if entry.until <= now:
                expired.append(field)
                continue
            cooldowns.append(
                Cooldown(
                    provider=provider,
                    credential=credential,
                    until=entry.until,
                    reason=entry.reason,
                    status=entry.status,
                )
            )
        if expired:
            try:
                await self._redis.hdel(_COOLDOWNS, *expired)
            except RedisError:
                pass
        return RuntimeState(
            enabled={_text(k): _text(v) == "1" for k, v in enabled.items()},
            cooldowns=cooldowns,
        )
