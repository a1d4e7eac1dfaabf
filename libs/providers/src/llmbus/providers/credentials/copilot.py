"""Copilot tokens minted from GitHub tokens.

Copilot's chat API does not take the GitHub token a user signed in with: a client first
trades it at `GET {GitHub API}/copilot_internal/v2/token` (`Authorization: token <GitHub
token>`, the editor headers) for a short-lived Copilot token (about 30 minutes) that
also names the API host of the account's plan (`endpoints.api`). GitHub suggests when
to trade again (`refresh_in`, about five minutes before `expires_at`).

`CopilotTokens` keeps one token per configured credential, trades again ahead of expiry,
lets only one trade per credential run at a time (concurrent requests wait for the same
answer instead of each asking GitHub), and forgets a token when the chat API refused it.
The GitHub token never appears in an error message or a log line.

`mint_copilot_token` (one trade) and `copilot_account` (the account's login and its
premium-request quota) are public so that auth, which owns every OAuth credential, trades with the same
code.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from llmbus.config import CredentialEntry
from llmbus.providers.credentials.base import Credential
from llmbus.providers.errors import CredentialUnavailable, UpstreamError
from llmbus.providers.http import HttpClient
from llmbus.providers.runtime import ConfiguredProvider

__all__ = [
    "API_VERSION",
    "EDITOR_PLUGIN_VERSION",
    "EDITOR_VERSION",
    "GITHUB_API",
    "INTEGRATION_ID",
    "USER_AGENT",
    "CopilotAccount",
    "CopilotGrant",
    "CopilotTokens",
    "copilot_account",
    "editor_headers",
    "merge_headers",
    "mint_copilot_token",
]

GITHUB_API = "https://api.github.com"
"""Where tokens are traded when the provider names no `auth_endpoint`."""

# The editor Copilot's services expect to talk to: VS Code with the Copilot Chat
# extension. Each is overridable per provider through its `headers`.
EDITOR_VERSION = "vscode/1.107.0"
EDITOR_PLUGIN_VERSION = "copilot-chat/0.35.0"
USER_AGENT = "GitHubCopilotChat/0.35.0"
INTEGRATION_ID = "vscode-chat"
API_VERSION = "2025-04-01"

_MARGIN_SECONDS = 60.0
"""Never hand out a token that expires within this long (a request may run for minutes)."""


def editor_headers(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The editor identity both the token trade and the chat API want. A provider's
    `headers` may replace any of them (names compared case-insensitively); its other
    headers are for the chat API and are not sent to GitHub."""
    headers = {
        "Editor-Version": EDITOR_VERSION,
        "Editor-Plugin-Version": EDITOR_PLUGIN_VERSION,
        "User-Agent": USER_AGENT,
        "X-GitHub-Api-Version": API_VERSION,
    }
    names = {name.lower() for name in headers}
    own = {name: value for name, value in (overrides or {}).items() if name.lower() in names}
    return merge_headers(headers, own)


def merge_headers(base: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """`base` with `overrides` applied; an override replaces a header of the same name
    whatever its case, so `editor-version` in a config replaces `Editor-Version`."""
    replaced = {name.lower() for name in overrides}
    merged = {name: value for name, value in base.items() if name.lower() not in replaced}
    merged.update(overrides)
    return merged


class _Endpoints(msgspec.Struct, kw_only=True):
    api: str = ""


class _TokenAnswer(msgspec.Struct, kw_only=True):
    """The fields of GitHub's answer that matter here (it carries a dozen feature flags)."""

    token: str = ""
    expires_at: int = 0
    refresh_in: int = 0
    endpoints: _Endpoints | None = None


class _ErrorDetails(msgspec.Struct, kw_only=True):
    message: str = ""


class _Refusal(msgspec.Struct, kw_only=True):
    """GitHub's error body: `{"message", "documentation_url"}`, and for Copilot refusals
    also `error_details{url, message, title, notification_id}`."""

    message: str = ""
    error_details: _ErrorDetails | None = None


_answer_decoder = msgspec.json.Decoder(_TokenAnswer)
_refusal_decoder = msgspec.json.Decoder(_Refusal)


@dataclass(frozen=True, slots=True)
class _Minted:
    credential: Credential
    refresh_at: float
    """When to trade again (clock seconds)."""
    source: str
    """A fingerprint of the GitHub token and the token service it was traded at: a
    changed config entry of the same name does not get the old token."""


class CopilotTokens:
    """The Copilot family's `CredentialSource`.

    `clock` returns Unix seconds (GitHub's `expires_at` is one); tests pass their own."""

    def __init__(
        self,
        http: HttpClient,
        *,
        clock: Callable[[], float] = time.time,
        margin: float = _MARGIN_SECONDS,
    ) -> None:
        self._http = http
        self._clock = clock
        self._margin = margin
        self._minted: dict[tuple[str, str], _Minted] = {}
        self._trading: dict[tuple[str, str], asyncio.Task[_Minted]] = {}

    async def get(self, provider: ConfiguredProvider, entry: CredentialEntry) -> Credential:
        if not entry.github_token:
            raise CredentialUnavailable(
                f"credential {entry.name!r} of {provider.name} has no GitHub token to trade "
                "for a Copilot token"
            )
        key = (provider.name, entry.name)
        source = _fingerprint(entry.github_token, _token_url(provider))
        minted = self._minted.get(key)
        if minted is not None and minted.source == source and self._clock() < minted.refresh_at:
            return minted.credential
        trade = self._trading.get(key)
        if trade is None:
            trade = asyncio.create_task(self._trade(provider, entry, source))
            self._trading[key] = trade
            trade.add_done_callback(lambda _: self._settle(key, trade))
        # Shielded: a caller that gives up (its client went away) must not cancel the
        # trade the other callers are waiting for.
        return (await asyncio.shield(trade)).credential

    def invalidate(self, provider: ConfiguredProvider, entry: CredentialEntry) -> None:
        self._minted.pop((provider.name, entry.name), None)

    def _settle(self, key: tuple[str, str], trade: asyncio.Task[_Minted]) -> None:
        if self._trading.get(key) is trade:
            del self._trading[key]
        if not trade.cancelled() and trade.exception() is None:
            self._minted[key] = trade.result()

    async def _trade(self, provider: ConfiguredProvider, entry: CredentialEntry, source: str) -> _Minted:
        grant = await mint_copilot_token(
            self._http, provider, entry.github_token, name=entry.name, clock=self._clock
        )
        credential = Credential(
            name=entry.name, token=grant.token, endpoint=grant.endpoint, expires_at=grant.expires_at
        )
        return _Minted(credential=credential, refresh_at=grant.renew_at(self._margin), source=source)


class CopilotGrant(msgspec.Struct, frozen=True, kw_only=True):
    """One Copilot token as GitHub granted it."""

    token: str
    endpoint: str
    """The chat API host the token names (the provider's endpoint when it names none)."""
    expires_at: float
    minted_at: float
    refresh_in: float = 0.0
    """GitHub's advice: trade again this many seconds after minting (0: no advice)."""

    def renew_at(self, margin: float) -> float:
        """When to trade again: the earlier of GitHub's advice (`refresh_in`) and `margin`
        before expiry. The margin shrinks to half the token's life for short-lived tokens
        (a mock's), so a token is used at least for a while before it is traded again."""
        life = self.expires_at - self.minted_at
        refresh_at = self.expires_at - min(margin, max(life, 0.0) / 2)
        if self.refresh_in > 0:
            refresh_at = min(refresh_at, self.minted_at + self.refresh_in)
        return refresh_at


async def mint_copilot_token(
    http: HttpClient,
    provider: ConfiguredProvider,
    github_token: str,
    *,
    name: str,
    clock: Callable[[], float] = time.time,
) -> CopilotGrant:
    """One trade of `github_token` for a Copilot token at the provider's token service
    (`auth_endpoint`, else GitHub's API). Failures are `CredentialUnavailable`, naming the
    credential (`name`) and GitHub's own words, never the token."""
    if not github_token:
        raise CredentialUnavailable(
            f"credential {name!r} of {provider.name} has no GitHub token to trade for a Copilot token"
        )
    headers = {
        **editor_headers(provider.headers),
        "Authorization": f"token {github_token}",
        "Accept": "application/json",
    }
    try:
        status, response_headers, body = await http.fetch(
            "GET", _token_url(provider), headers=headers, proxy=provider.proxy_url
        )
    except UpstreamError as exc:
        raise CredentialUnavailable(
            f"cannot trade credential {name!r} for a Copilot token: {exc.message}"
        ) from None
    if status != 200:
        raise _refused(name, status, response_headers, body)
    now = clock()
    try:
        answer = _answer_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        answer = _TokenAnswer()
    if not answer.token or answer.expires_at <= 0:
        raise CredentialUnavailable(
            f"GitHub's answer for credential {name!r} carries no Copilot token", upstream_status=status
        )
    api = (answer.endpoints.api if answer.endpoints else "") or provider.endpoint
    return CopilotGrant(
        token=answer.token,
        endpoint=api.rstrip("/"),
        expires_at=float(answer.expires_at),
        minted_at=now,
        refresh_in=float(answer.refresh_in),
    )


class _Quota(msgspec.Struct, kw_only=True):
    entitlement: float = 0.0
    remaining: float = 0.0
    percent_remaining: float = 0.0
    unlimited: bool = False


class _Snapshots(msgspec.Struct, kw_only=True):
    premium_interactions: _Quota | None = None


class _User(msgspec.Struct, kw_only=True):
    login: str = ""
    quota_snapshots: _Snapshots | None = None


_user_decoder = msgspec.json.Decoder(_User)


class CopilotAccount(msgspec.Struct, frozen=True, kw_only=True):
    """Who a GitHub token belongs to and what is left of its premium requests."""

    login: str = ""
    quota: dict[str, float] = {}
    """`premium_interactions.entitlement`, `.remaining`, `.percent_remaining` and
    `.unlimited` (0 or 1); empty when unknown."""


async def copilot_account(
    http: HttpClient, provider: ConfiguredProvider, github_token: str
) -> CopilotAccount:
    """The account as `GET {GitHub API}/copilot_internal/user` reports it: its login and
    its premium-request quota. Empty when GitHub does not answer: the account is
    informative, failing to read it never fails a token."""
    url = f"{(provider.auth_endpoint or GITHUB_API).rstrip('/')}/copilot_internal/user"
    headers = {
        **editor_headers(provider.headers),
        "Authorization": f"token {github_token}",
        "Accept": "application/json",
    }
    try:
        status, _, body = await http.fetch("GET", url, headers=headers, proxy=provider.proxy_url)
        user = _user_decoder.decode(body) if status == 200 else _User()
    except (UpstreamError, msgspec.DecodeError, msgspec.ValidationError):
        return CopilotAccount()
    premium = user.quota_snapshots.premium_interactions if user.quota_snapshots else None
    quota = (
        {
            "premium_interactions.entitlement": premium.entitlement,
            "premium_interactions.remaining": premium.remaining,
            "premium_interactions.percent_remaining": premium.percent_remaining,
            "premium_interactions.unlimited": 1.0 if premium.unlimited else 0.0,
        }
        if premium is not None
        else {}
    )
    return CopilotAccount(login=user.login, quota=quota)


def _token_url(provider: ConfiguredProvider) -> str:
    return f"{(provider.auth_endpoint or GITHUB_API).rstrip('/')}/copilot_internal/v2/token"


def _fingerprint(github_token: str, url: str) -> str:
    return hashlib.sha256(f"{url}\n{github_token}".encode()).hexdigest()


def _refused(name: str, status: int, headers: Mapping[str, str], body: bytes) -> CredentialUnavailable:
    """GitHub's refusal in our terms: its own words (which name no secret), and the
    status, so that 401/403 cool the credential down."""
    try:
        refusal = _refusal_decoder.decode(body)
        detail = (refusal.error_details.message if refusal.error_details else "") or refusal.message
    except (msgspec.DecodeError, msgspec.ValidationError):
        detail = ""
    retry_after = None
    if status == 429:
        try:
            retry_after = max(0.0, float(headers.get("retry-after", "")))
        except ValueError:
            retry_after = None
    message = f"GitHub refused to trade credential {name!r} for a Copilot token ({status})"
    return CredentialUnavailable(
        f"{message}: {detail}" if detail else message, upstream_status=status, retry_after=retry_after
    )
