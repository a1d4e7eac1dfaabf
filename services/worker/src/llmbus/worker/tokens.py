"""Tokens from auth: the credential source of the families whose credentials auth owns.

Copilot and Kiro credentials are OAuth logins: auth keeps them (sealed in Redis), mints
or refreshes their tokens once for the whole cluster, and hands them out over
`auth.v1.tokens.get`. `AuthTokens` asks it, keeps each token until shortly before it
expires, lets one request per credential be in flight however many calls wait for it,
and after `invalidate` (the upstream refused the token) asks with `refresh=True` so auth
replaces it rather than handing the same one back.

It lives in the worker, not in `llmbus.providers`, because it talks over the bus: the
providers library does not depend on `llmbus.bus`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmbus.bus import BUS_RETRYABLE, Bus, BusFailure, RemoteError, retry_within
from llmbus.config import CredentialEntry
from llmbus.proto import AUTH_TOKENS_GET, TokenReply, TokenRequest
from llmbus.providers import ConfiguredProvider
from llmbus.providers.credentials import Credential
from llmbus.providers.errors import CredentialUnavailable

__all__ = ["AUTH_OWNED_FAMILIES", "AuthTokens"]

AUTH_OWNED_FAMILIES = frozenset({"copilot", "kiro"})
"""Families whose credentials auth owns; their workers get tokens only from it."""

_MARGIN = 30.0
"""Stop using a cached token this long before it expires (a request may run a while)."""


@dataclass(frozen=True, slots=True)
class _Cached:
    credential: Credential
    use_until: float


class AuthTokens:
    """A `CredentialSource` backed by auth (see the module docstring).

    `clock` returns Unix seconds (auth's `expires_at` is one); `timeout` bounds one
    token request to auth, its retries included (`llmbus.bus.retry`: no auth listening,
    as while it starts or restarts, is asked again with backoff)."""

    def __init__(
        self,
        bus: Bus,
        *,
        timeout: float = 10.0,
        margin: float = _MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self._timeout = timeout
        self._margin = margin
        self._clock = clock
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._refused: set[tuple[str, str]] = set()
        self._asking: dict[tuple[str, str], asyncio.Task[_Cached]] = {}

    async def get(self, provider: ConfiguredProvider, entry: CredentialEntry) -> Credential:
        key = (provider.name, entry.name)
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached.use_until:
            return cached.credential
        asking = self._asking.get(key)
        if asking is None:
            refresh = key in self._refused
            asking = asyncio.create_task(self._ask(provider.name, entry.name, refresh))
            self._asking[key] = asking
            asking.add_done_callback(lambda _: self._settle(key, asking, refresh))
        # Shielded: a caller that gives up (its client went away) must not cancel the
        # request the other callers are waiting for.
        return (await asyncio.shield(asking)).credential

    def invalidate(self, provider: ConfiguredProvider, entry: CredentialEntry) -> None:
        key = (provider.name, entry.name)
        self._cache.pop(key, None)
        self._refused.add(key)

    def _settle(self, key: tuple[str, str], asking: asyncio.Task[_Cached], refresh: bool) -> None:
        if self._asking.get(key) is asking:
            del self._asking[key]
        if asking.cancelled() or asking.exception() is not None:
            return
        self._cache[key] = asking.result()
        if refresh:
            self._refused.discard(key)

    async def _ask(self, provider: str, credential: str, refresh: bool) -> _Cached:
        request = TokenRequest(provider=provider, credential=credential, refresh=refresh)

        async def ask(remaining: float | None) -> TokenReply:
            return await self._bus.request(AUTH_TOKENS_GET, request, timeout=remaining or self._timeout)

        try:
            # Auth may be starting or restarting (nobody listening for a moment): asked
            # again with backoff, all within `timeout`.
            reply = await retry_within(
                self._timeout,
                ask,
                on=BUS_RETRYABLE,
                wait_initial=0.02,
                wait_max=0.5,
                what=f"asking auth for a token of {provider}/{credential}",
            )
        except RemoteError as exc:
            # Auth's words name the credential and why (a refused refresh), never a token.
            raise CredentialUnavailable(
                f"auth has no token for {provider}/{credential}: {exc.message}"
            ) from None
        except (BusFailure, TimeoutError) as exc:
            raise CredentialUnavailable(
                f"cannot get a token for {provider}/{credential} from auth: {type(exc).__name__}"
            ) from None
        return _Cached(credential=_credential(credential, reply), use_until=self._use_until(reply))

    def _use_until(self, reply: TokenReply) -> float:
        """`margin` before expiry, shrunk to half the remaining life for short-lived
        tokens (so a mock's few-second token is still used); a token of unknown expiry
        is kept for a minute."""
        now = self._clock()
        if reply.expires_at <= 0:
            return now + 60.0
        return reply.expires_at - min(self._margin, max(reply.expires_at - now, 0.0) / 2)


def _credential(name: str, reply: TokenReply) -> Credential:
    return Credential(
        name=name,
        token=reply.token,
        endpoint=reply.endpoint or None,
        profile_arn=reply.profile_arn or None,
        region=reply.region or None,
        expires_at=reply.expires_at or None,
    )
