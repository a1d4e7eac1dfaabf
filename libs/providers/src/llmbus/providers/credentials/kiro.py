"""Kiro credentials: the token file the Kiro IDE writes, refreshed ahead of expiry.

The file (`~/.aws/sso/cache/kiro-auth-token.json`) holds `accessToken`, `refreshToken`,
`expiresAt` (ISO), `authMethod` (`social` | `IdC`), `provider`, `profileArn`, `region`
(the SSO region), `startUrl` and, for IdC logins, `clientIdHash`: the OIDC client's
`clientId`/`clientSecret` are then in `<same folder>/<clientIdHash>.json`.

Two refresh dialects, chosen by `authMethod` (IdC, or a client id and secret at hand,
means OIDC):

- social: `POST {base}/refreshToken {refreshToken}`, base
  `https://prod.us-east-1.auth.desktop.kiro.dev`;
- IdC: `POST {base}/token {clientId, clientSecret, grantType: "refresh_token",
  refreshToken}` (AWS SSO OIDC, camelCase JSON), base `https://oidc.{region}.amazonaws.com`.

`auth_endpoint` of the provider replaces the base of either dialect (the path is kept),
so one setting points both at a mock or a proxy.

The refreshed token is written back to the file atomically, keeping every field we do
not know, so the IDE and other tools keep working with it. The file is re-read when it
changes on disk (the IDE refreshes it too), and one refresh runs per file however many
requests wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from llmbus.config import CredentialEntry
from llmbus.providers.credentials.base import Credential
from llmbus.providers.errors import CredentialUnavailable, UpstreamError
from llmbus.providers.http import HttpClient
from llmbus.providers.runtime import ConfiguredProvider

__all__ = [
    "DEFAULT_REGION",
    "KIRO_VERSION",
    "REFRESH_MARGIN",
    "SOCIAL_AUTH_BASE",
    "KiroTokens",
    "api_region",
    "machine_id",
]

DEFAULT_REGION = "us-east-1"
SOCIAL_AUTH_BASE = "https://prod.us-east-1.auth.desktop.kiro.dev"
REFRESH_MARGIN = 300.0
"""Seconds before `expiresAt` at which the token is refreshed: long enough for a request
started just before to finish with a valid token."""
KIRO_VERSION = "0.7.45"
"""The Kiro IDE version our user-agent names (the service looks for `KiroIDE-`)."""

log = logging.getLogger(__name__)

_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:codewhisperer:([a-z0-9-]+):")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def machine_id() -> str:
    """A stable, anonymous id of this host, as Kiro's user-agent carries one."""
    return hashlib.sha256(f"llmbus:{platform.node()}".encode()).hexdigest()


def api_region(profile_arn: str | None, configured: str | None, file_region: str | None) -> str:
    """The API region: the profile ARN's, else the configured one, else the token
    file's (its SSO region), else us-east-1."""
    match = _ARN_REGION.match(profile_arn or "")
    return (match.group(1) if match else "") or configured or file_region or DEFAULT_REGION


class _TokenFile(msgspec.Struct, rename="camel"):
    access_token: str = ""
    refresh_token: str = ""
    expires_at: str = ""
    auth_method: str = ""
    provider: str = ""
    profile_arn: str = ""
    region: str = ""
    client_id_hash: str = ""
    client_id: str = ""
    client_secret: str = ""
    start_url: str = ""


class _Registration(msgspec.Struct, rename="camel"):
    client_id: str = ""
    client_secret: str = ""


class _Refreshed(msgspec.Struct, rename="camel"):
    """Both dialects answer in camelCase; social adds `profileArn`."""

    access_token: str = ""
    refresh_token: str = ""
    expires_in: float = 3600.0
    profile_arn: str = ""


class _RefreshError(msgspec.Struct):
    message: str = ""
    Message: str = ""
    error: str = ""
    error_description: str = ""


@dataclass
class _State:
    """What is known of one token file."""

    path: Path
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stamp: tuple[int, int] = (0, 0)
    raw: dict[str, Any] = field(default_factory=dict)
    tokens: _TokenFile = field(default_factory=_TokenFile)
    expires_at: float = 0.0
    forced: bool = False


def _parse_expiry(value: str) -> float:
    if not value:
        return 0.0
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _format_expiry(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class KiroTokens:
    """The Kiro family's `CredentialSource`."""

    def __init__(
        self, http: HttpClient, *, margin: float = REFRESH_MARGIN, clock: Callable[[], float] = time.time
    ) -> None:
        self._http = http
        self._margin = margin
        self._clock = clock
        self._states: dict[Path, _State] = {}

    async def get(self, provider: ConfiguredProvider, entry: CredentialEntry) -> Credential:
        state = self._state(entry)
        self._reload_if_changed(state)
        if not self._fresh(state):
            async with state.lock:
                self._reload_if_changed(state)
                if not self._fresh(state):
                    await self._refresh(provider, state)
        tokens = state.tokens
        return Credential(
            name=entry.name,
            token=tokens.access_token,
            profile_arn=tokens.profile_arn or None,
            region=api_region(tokens.profile_arn, provider.region, tokens.region),
            expires_at=state.expires_at or None,
        )

    def invalidate(self, provider: ConfiguredProvider, entry: CredentialEntry) -> None:
        """The service refused the token: refresh it on the next `get`, unless the file
        has changed by then."""
        self._state(entry).forced = True

    def _state(self, entry: CredentialEntry) -> _State:
        if not entry.token_file:
            raise CredentialUnavailable(f"kiro credential {entry.name!r} has no token file")
        path = Path(entry.token_file).expanduser()
        state = self._states.get(path)
        if state is None:
            state = self._states[path] = _State(path)
        return state

    def _fresh(self, state: _State) -> bool:
        return (
            not state.forced
            and bool(state.tokens.access_token)
            and state.expires_at - self._margin > self._clock()
        )

    def _reload_if_changed(self, state: _State) -> None:
        try:
            info = state.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp == state.stamp:
                return
            raw = json.loads(state.path.read_bytes())
            tokens = msgspec.convert(raw, _TokenFile)
        except FileNotFoundError:
            raise CredentialUnavailable(f"kiro token file {state.path} does not exist") from None
        except OSError as exc:
            raise CredentialUnavailable(
                f"kiro token file {state.path} cannot be read: {type(exc).__name__}"
            ) from None
        except (ValueError, msgspec.ValidationError):
            raise CredentialUnavailable(f"kiro token file {state.path} is not a Kiro token file") from None
        state.stamp, state.raw, state.tokens = stamp, raw, tokens
        state.expires_at = _parse_expiry(tokens.expires_at)
        state.forced = False

    async def _refresh(self, provider: ConfiguredProvider, state: _State) -> None:
        tokens = state.tokens
        if not tokens.refresh_token:
            raise CredentialUnavailable(f"kiro token in {state.path} expired and has no refresh token")
        client_id, client_secret = self._client(state)
        oidc = tokens.auth_method.lower() == "idc" or bool(client_id and client_secret)
        if oidc:
            if not (client_id and client_secret):
                raise CredentialUnavailable(
                    f"kiro IdC token in {state.path} cannot be refreshed: no OIDC client registration"
                )
            region = tokens.region or provider.region or DEFAULT_REGION
            base = provider.auth_endpoint or f"https://oidc.{region}.amazonaws.com"
            url = base.rstrip("/") + "/token"
            body: dict[str, str] = {
                "clientId": client_id,
                "clientSecret": client_secret,
                "grantType": "refresh_token",
                "refreshToken": tokens.refresh_token,
            }
            headers = {"Content-Type": "application/json"}
        else:
            url = (provider.auth_endpoint or SOCIAL_AUTH_BASE).rstrip("/") + "/refreshToken"
            body = {"refreshToken": tokens.refresh_token}
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"KiroIDE-{KIRO_VERSION}-{machine_id()}",
            }
        secrets = (tokens.refresh_token, tokens.access_token, client_secret)
        started = self._clock()
        try:
            status, _, answer = await self._http.fetch(
                "POST", url, headers=headers, content=json.dumps(body).encode(), proxy=provider.proxy_url
            )
        except UpstreamError as exc:
            raise CredentialUnavailable(f"kiro token refresh failed: {exc.message}") from None
        if status >= 400:
            raise CredentialUnavailable(
                f"kiro token refresh refused ({status}): {_scrub(_error_text(answer), secrets)}",
                upstream_status=status,
            )
        try:
            refreshed = msgspec.json.decode(answer, type=_Refreshed)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise CredentialUnavailable(
                "kiro token refresh answered something that is not a token", upstream_status=status
            ) from None
        if not refreshed.access_token:
            raise CredentialUnavailable("kiro token refresh answered no access token", upstream_status=status)
        expires_at = started + refreshed.expires_in
        updates = {"accessToken": refreshed.access_token, "expiresAt": _format_expiry(expires_at)}
        if refreshed.refresh_token:
            updates["refreshToken"] = refreshed.refresh_token
        if refreshed.profile_arn:
            updates["profileArn"] = refreshed.profile_arn
        raw = {**state.raw, **updates}
        try:
            await asyncio.to_thread(_write_atomically, state.path, raw)
            info = state.path.stat()
            state.stamp = (info.st_mtime_ns, info.st_size)
        except OSError as exc:
            # The new token works whether or not the file takes it; the IDE's copy may
            # now hold a rotated-out refresh token, which it will tell its user about.
            log.warning("kiro token file %s not updated: %s", state.path, type(exc).__name__)
        state.raw, state.tokens = raw, msgspec.convert(raw, _TokenFile)
        state.expires_at, state.forced = expires_at, False

    def _client(self, state: _State) -> tuple[str, str]:
        """The OIDC client: in the token file, or in its `<clientIdHash>.json`."""
        tokens = state.tokens
        if tokens.client_id and tokens.client_secret:
            return tokens.client_id, tokens.client_secret
        if not tokens.client_id_hash or "/" in tokens.client_id_hash or "\\" in tokens.client_id_hash:
            return "", ""
        try:
            registration = msgspec.json.decode(
                (state.path.parent / f"{tokens.client_id_hash}.json").read_bytes(), type=_Registration
            )
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return "", ""
        return registration.client_id, registration.client_secret


def _error_text(body: bytes) -> str:
    try:
        parsed = msgspec.json.decode(body, type=_RefreshError)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return body[:200].decode("utf-8", errors="replace").strip() or "no message"
    text = parsed.message or parsed.Message or parsed.error_description
    if parsed.error:
        text = f"{parsed.error}: {text}" if text else parsed.error
    return text or "no message"


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _write_atomically(path: Path, raw: dict[str, Any]) -> None:
    """Write to a temporary file beside `path`, then rename it over: a reader (the IDE,
    another worker) sees the old file or the new one, never half of one."""
    data = json.dumps(raw, indent=2, ensure_ascii=False).encode()
    mode = 0o600
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
