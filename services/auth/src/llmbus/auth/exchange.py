"""The upstream side of stored credentials: one exchange that turns a stored secret into
a fresh token (a Copilot token minted from the GitHub token; a Kiro access token
refreshed with the refresh token), and the usable token a secret holds.

The exchanges are the workers' own code (`llmbus.providers.credentials`), called with the
provider as the config describes it (its `auth_endpoint`, `proxy_url`, `headers`), so a
credential refreshed by auth and one refreshed by a worker talk to the same services the
same way. Failures are `CredentialUnavailable`s whose messages name no secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

import msgspec

from llmbus.auth.stored_secret import StoredSecret
from llmbus.proto import TokenReply
from llmbus.providers import ConfiguredProvider
from llmbus.providers.credentials.copilot import copilot_account, mint_copilot_token
from llmbus.providers.credentials.kiro import REFRESH_MARGIN, KiroGrant, api_region, refresh_kiro_token
from llmbus.providers.errors import CredentialUnavailable
from llmbus.providers.http import HttpClient

__all__ = [
    "COPILOT_MARGIN",
    "Exchange",
    "Renewal",
    "UpstreamExchange",
    "family_of",
    "renew_at",
    "token_reply",
    "usable",
]

COPILOT_MARGIN = 60.0
"""Trade a Copilot token again this long before it expires (GitHub's `refresh_in` wins
when it says earlier)."""


def family_of(kind: str) -> str:
    """The adapter family a credential kind belongs to."""
    return "copilot" if kind == "github" else "kiro"


def renew_at(expires_at: float, now: float, margin: float) -> float:
    """When to exchange again: `margin` before expiry, shrunk to half the token's
    remaining life for short-lived tokens (a mock's), so a token is used for a while
    before it is exchanged again; 0 when the expiry is unknown (exchange on next use)."""
    if expires_at <= 0:
        return 0.0
    return expires_at - min(margin, max(expires_at - now, 0.0) / 2)


def usable(kind: str, secret: StoredSecret, now: float) -> bool:
    """Whether the secret holds a token that may be handed out now, without exchanging."""
    token = secret.copilot_token if family_of(kind) == "copilot" else secret.access_token
    return bool(token) and secret.renew_at > now


def token_reply(kind: str, secret: StoredSecret, provider: ConfiguredProvider | None) -> TokenReply:
    """The worker's view of a secret: the token and what it dictates (Copilot: the API
    host; Kiro: the profile ARN and the API region)."""
    if family_of(kind) == "copilot":
        return TokenReply(
            token=secret.copilot_token,
            expires_at=secret.copilot_expires_at,
            endpoint=secret.copilot_endpoint,
        )
    return TokenReply(
        token=secret.access_token,
        expires_at=secret.expires_at,
        profile_arn=secret.profile_arn,
        region=api_region(secret.profile_arn, provider.region if provider else None, secret.region),
    )


class Renewal(msgspec.Struct, frozen=True, kw_only=True):
    secret: StoredSecret
    """The secret with the new token in it."""
    quota: dict[str, float] | None = None
    """Copilot: the account's quota as just read; None: keep what is known."""
    account: str = ""
    """Copilot: the GitHub login, when the answer named it."""


class Exchange(Protocol):
    """One exchange of a stored secret for a fresh token (tests plug in a counting fake)."""

    async def renew(self, provider: str, credential: str, kind: str, secret: StoredSecret) -> Renewal: ...

    def provider(self, name: str) -> ConfiguredProvider | None: ...


class UpstreamExchange:
    """Exchanges at the real token services (or the mock), with the workers' code."""

    def __init__(
        self,
        http: HttpClient,
        providers: Callable[[], Mapping[str, ConfiguredProvider]],
        *,
        clock: Callable[[], float] = time.time,
        copilot_margin: float = COPILOT_MARGIN,
        kiro_margin: float = REFRESH_MARGIN,
    ) -> None:
        self._http = http
        self._providers = providers
        self._clock = clock
        self._copilot_margin = copilot_margin
        self._kiro_margin = kiro_margin

    def provider(self, name: str) -> ConfiguredProvider | None:
        return self._providers().get(name)

    async def renew(self, provider: str, credential: str, kind: str, secret: StoredSecret) -> Renewal:
        configured = self.provider(provider)
        if configured is None:
            raise CredentialUnavailable(
                f"provider {provider} is not configured: nowhere to refresh {credential}"
            )
        name = f"{provider}/{credential}"
        if family_of(kind) == "copilot":
            grant = await mint_copilot_token(
                self._http, configured, secret.github_token, name=name, clock=self._clock
            )
            account = await copilot_account(self._http, configured, secret.github_token)
            renewed = msgspec.structs.replace(
                secret,
                copilot_token=grant.token,
                copilot_endpoint=grant.endpoint,
                copilot_expires_at=grant.expires_at,
                renew_at=grant.renew_at(self._copilot_margin),
            )
            return Renewal(secret=renewed, quota=account.quota or None, account=account.login)
        refreshed = await refresh_kiro_token(
            self._http,
            configured,
            KiroGrant(
                refresh_token=secret.refresh_token,
                access_token=secret.access_token,
                auth_method=secret.auth_method,
                client_id=secret.client_id,
                client_secret=secret.client_secret,
                region=secret.region,
            ),
            name=name,
            clock=self._clock,
        )
        renewed = msgspec.structs.replace(
            secret,
            access_token=refreshed.access_token,
            refresh_token=refreshed.refresh_token,
            expires_at=refreshed.expires_at,
            profile_arn=refreshed.profile_arn or secret.profile_arn,
            renew_at=renew_at(refreshed.expires_at, self._clock(), self._kiro_margin),
        )
        return Renewal(secret=renewed)
