"""The config's limits of a provider and of each of its credentials, checked before the
upstream call: `max_tokens_per_request` here, RPM and TPM by auth (one atomic script in
Redis, so every worker replica shares one count).

A refusal is a retryable 429 before the first byte: the request moves on to the next
target of its plan, and the client hears 429 only when nothing is left. It is not an
upstream refusal, so it rests no credential.

When auth cannot answer, the request goes ahead (fail-open): the upstream enforces its
own limits, and its 429 rests the credential anyway, whereas refusing would turn an
auth outage into a gateway outage. A counter and a log line (at most one per minute)
say that limits are unchecked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Final

from prometheus_client import Counter

from llmbus.bus import Bus, BusFailure
from llmbus.config.model import CredentialEntry, LimitsConfig
from llmbus.proto import (
    AUTH_QUOTA_RESERVE,
    AUTH_QUOTA_SETTLE,
    ChatRequest,
    ExecRequest,
    QuotaReserve,
    QuotaScope,
    QuotaSettle,
    Usage,
)
from llmbus.providers import ConfiguredProvider
from llmbus.providers.errors import UpstreamError

__all__ = ["Admission", "LimitReached", "Limits", "TooManyTokens"]

log = logging.getLogger(__name__)

UNCHECKED = Counter(
    "llmbus_worker_limits_unchecked_total", "Requests let through because auth could not check limits"
)

_WARN_EVERY: Final = 60.0


class LimitReached(UpstreamError):
    """A provider's or credential's own RPM/TPM from the config refused the request."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(
            message, status=429, code="rate_limit_exceeded", retryable=True, retry_after=retry_after
        )


class TooManyTokens(UpstreamError):
    """The request asks for more completion tokens than the provider allows per request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, code="max_tokens_exceeded", retryable=False)


@dataclass(frozen=True, slots=True)
class Admission:
    """A reservation to correct when the request ends."""

    request_id: str
    scopes: list[QuotaScope]
    reserved: int


def _scope(kind: str, id: str, limits: LimitsConfig | None) -> QuotaScope | None:
    if limits is None or not (limits.requests_per_minute or limits.tokens_per_minute):
        return None
    return QuotaScope(
        kind="provider" if kind == "provider" else "credential",
        id=id,
        rpm=limits.requests_per_minute or 0,
        tpm=limits.tokens_per_minute or 0,
    )


class Limits:
    def __init__(self, bus: Bus, timeout: float = 1.0) -> None:
        self.bus = bus
        self.timeout = timeout
        self._warned_at = -_WARN_EVERY

    async def admit(
        self, request: ExecRequest, chat: ChatRequest, provider: ConfiguredProvider, entry: CredentialEntry
    ) -> Admission | None:
        """Check the request against the provider's and the credential's limits; None
        when none applies (or auth could not check them). Raises TooManyTokens or
        LimitReached."""
        ceiling = provider.limits.max_tokens_per_request
        if ceiling and chat.max_tokens and chat.max_tokens > ceiling:
            raise TooManyTokens(
                f"max_tokens {chat.max_tokens} is more than {provider.name} allows per request ({ceiling})"
            )
        scopes = [
            scope
            for scope in (
                _scope("provider", provider.name, provider.limits),
                _scope("credential", f"{provider.name}/{entry.name}", entry.limits),
            )
            if scope is not None
        ]
        if not scopes:
            return None
        # An edge that predates `tokens`: the body's size is a fair stand-in.
        tokens = request.tokens or len(request.body) // 4 + (chat.max_tokens or 0)
        request_id = f"{request.request_id}/{request.attempt}"
        try:
            grant = await self.bus.request(
                AUTH_QUOTA_RESERVE,
                QuotaReserve(request_id=request_id, scopes=scopes, tokens=tokens),
                timeout=self.timeout,
            )
        except BusFailure as exc:
            self._unchecked(provider.name, exc)
            return None
        if not grant.admitted:
            who = "provider" if grant.limited_by.startswith("provider:") else "credential"
            raise LimitReached(
                f"the {who}'s own {grant.reason.upper()} limit is reached; retry in "
                f"{max(1, round(grant.retry_after))}s",
                retry_after=grant.retry_after,
            )
        return Admission(request_id, scopes, tokens)

    async def settle(self, admission: Admission, usage: Usage | None, answered: bool) -> None:
        """Correct the reservation: the real usage when the upstream reported it, nothing
        when it never answered, the estimate (no correction) otherwise."""
        if usage is not None:
            tokens = usage.prompt_tokens + usage.completion_tokens
        elif not answered:
            tokens = 0
        else:
            return
        try:
            await self.bus.publish(
                AUTH_QUOTA_SETTLE,
                QuotaSettle(
                    request_id=admission.request_id,
                    scopes=admission.scopes,
                    reserved=admission.reserved,
                    tokens=tokens,
                ),
                traced=False,
            )
        except BusFailure:
            log.warning("cannot settle the quota of request %s", admission.request_id)

    def _unchecked(self, provider: str, exc: Exception) -> None:
        UNCHECKED.inc()
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "limits of %s not checked, request let through: auth did not answer (%s)",
                provider,
                type(exc).__name__,
            )
