"""Runtime provider state in Redis: switches set through the management API and
credential cooldowns, so that routers started later (or restarted) catch up.

- `llmbus:providers:enabled`  hash  provider → "1" | "0"
- `llmbus:cooldowns`          hash  JSON [provider, credential, model] → JSON {until, reason,
  status} (model "": every model; expired entries are dropped when read; fields written
  before models counted, "<provider>/<credential>", are read as every model)
- `llmbus:cooldown:streak:<field>`  integer: refusals in a row without Retry-After, which
  double the rest; it expires one rest after the rest ends, and recovery or a clear
  deletes it
"""

from __future__ import annotations

import math
import time

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.proto import Cooldown, RuntimeState

__all__ = ["RuntimeStore"]

_ENABLED = "llmbus:providers:enabled"
_COOLDOWNS = "llmbus:cooldowns"
_STREAK = "llmbus:cooldown:streak:"


class _Stored(msgspec.Struct):
    until: float
    reason: str = ""
    status: int = 0


_decode = msgspec.json.Decoder(_Stored).decode
_decode_field = msgspec.json.Decoder(tuple[str, str, str]).decode
_encode = msgspec.json.Encoder().encode


def _field(provider: str, credential: str, model: str) -> str:
    return _encode((provider, credential, model)).decode()


def _parse_field(field: str) -> tuple[str, str, str]:
    if field.startswith("["):
        try:
            return _decode_field(field)
        except msgspec.DecodeError:
            pass
    provider, _, credential = field.partition("/")
    return provider, credential, ""


def _matches(key: tuple[str, str, str], provider: str, credential: str, model: str) -> bool:
    """Whether a stored rest falls under a clear of (provider, credential, model); empty
    credential or model: all of them."""
    return key[0] == provider and (not credential or key[1] == credential) and (not model or key[2] == model)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _until(value: bytes | str) -> float:
    try:
        return _decode(value).until
    except msgspec.DecodeError:
        return 0.0


class RuntimeStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def set_enabled(self, provider: str, enabled: bool) -> None:
        try:
            await self._redis.hset(_ENABLED, provider, "1" if enabled else "0")
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None

    async def add_cooldown(self, cooldown: Cooldown) -> None:
        field = _field(cooldown.provider, cooldown.credential, cooldown.model)
        try:
            await self._redis.hset(
                _COOLDOWNS, field, _encode(_Stored(cooldown.until, cooldown.reason, cooldown.status))
            )
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None

    async def record_refusal(self, cooldown: Cooldown, max_seconds: float) -> Cooldown:
        """Keep a rest a worker announced, lengthened while refusals repeat: a rest the
        upstream's Retry-After set is honoured as it is; otherwise the n-th refusal in a
        row rests the credential 2^(n-1) times the announced time, up to `max_seconds`.
        Returns the rest as kept."""
        field = _field(cooldown.provider, cooldown.credential, cooldown.model)
        now = time.time()
        base = max(cooldown.until - now, 0.0)
        try:
            streak = int(await self._redis.incr(_STREAK + field))
            until = cooldown.until
            if not cooldown.retry_after and streak > 1:
                until = max(until, now + min(base * 2 ** (streak - 1), max_seconds))
            rest = until - now
            # Forgotten one rest after this rest ends, if nothing else happens.
            await self._redis.expire(_STREAK + field, max(1, math.ceil(2 * rest)))
            kept = msgspec.structs.replace(cooldown, until=until)
            await self._redis.hset(_COOLDOWNS, field, _encode(_Stored(until, kept.reason, kept.status)))
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        return kept

    async def clear_cooldowns(self, provider: str, credential: str = "", model: str = "") -> int:
        """End the rests (and streaks) of a provider's credentials now: every credential
        when `credential` is empty, every model when `model` is empty. Returns how many
        rests still running were ended."""
        try:
            stored = {_text(f): v for f, v in (await self._redis.hgetall(_COOLDOWNS)).items()}
            now = time.time()
            matching = [f for f in stored if _matches(_parse_field(f), provider, credential, model)]
            running = sum(_until(stored[f]) > now for f in matching)
            streaks = [_STREAK + f for f in matching]
            if credential and model:
                streaks.append(_STREAK + _field(provider, credential, model))
            async with self._redis.pipeline(transaction=False) as pipe:
                if matching:
                    pipe.hdel(_COOLDOWNS, *matching)
                if streaks:
                    pipe.delete(*streaks)
                await pipe.execute()
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None
        return running

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
            provider, credential, model = _parse_field(field)
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
                    model=model,
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
