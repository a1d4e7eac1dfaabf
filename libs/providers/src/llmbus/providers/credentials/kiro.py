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

The parts are public so that auth, which owns every OAuth credential, refreshes with the
same code: `refresh_kiro_token` is one exchange, `read_token_file` and `write_token_file`
are the file's reading and its atomic write-back.
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
    "KiroGrant",
    "KiroRefreshed",
    "KiroTokenFile",
    "KiroTokens",
    "api_region",
    "machine_id",
    "merge_refreshed",
    "read_token_file",
    "refresh_kiro_token",
    "write_token_file",
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
    file: KiroTokenFile | None = None
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
        loaded = self._reload_if_changed(state)
        if not self._fresh(state, loaded):
            async with state.lock:
                loaded = self._reload_if_changed(state)
                if not self._fresh(state, loaded):
                    loaded = await self._refresh(provider, state, loaded)
        return Credential(
            name=entry.name,
            token=loaded.access_token,
            profile_arn=loaded.profile_arn or None,
            region=api_region(loaded.profile_arn, provider.region, loaded.region),
            expires_at=loaded.expires_at or None,
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

    def _fresh(self, state: _State, loaded: KiroTokenFile) -> bool:
        return (
            not state.forced
            and bool(loaded.access_token)
            and loaded.expires_at - self._margin > self._clock()
        )

    def _reload_if_changed(self, state: _State) -> KiroTokenFile:
        """The file as last read, read again when it changed on disk (the IDE refreshed
        it); a re-read file is no longer forced to refresh."""
        try:
            info = state.path.stat()
        except OSError:
            info = None
        known = state.file
        if known is not None and info is not None and (info.st_mtime_ns, info.st_size) == known.stamp:
            return known
        state.file = read_token_file(state.path)
        state.forced = False
        return state.file

    async def _refresh(
        self, provider: ConfiguredProvider, state: _State, loaded: KiroTokenFile
    ) -> KiroTokenFile:
        refreshed = await refresh_kiro_token(
            self._http, provider, loaded.grant(), name=str(state.path), clock=self._clock
        )
        raw, stamp = merge_refreshed(loaded.raw, refreshed), loaded.stamp
        try:
            raw, stamp = await asyncio.to_thread(write_token_file, state.path, loaded.raw, refreshed)
        except OSError as exc:
            # The new token works whether or not the file takes it; the IDE's copy may
            # now hold a rotated-out refresh token, which it will tell its user about.
            log.warning("kiro token file %s not updated: %s", state.path, type(exc).__name__)
        state.file = KiroTokenFile.parse(state.path, raw, stamp)
        state.forced = False
        return state.file


class KiroGrant(msgspec.Struct, frozen=True, kw_only=True):
    """What one refresh needs: the refresh token, the login kind (`authMethod`) and, for
    AWS SSO OIDC logins, the registered client and its region."""

    refresh_token: str
    access_token: str = ""
    """Only so that an error text that echoes it can be scrubbed."""
    auth_method: str = ""
    client_id: str = ""
    client_secret: str = ""
    region: str = ""
    """The SSO region (where the OIDC service is)."""

    @property
    def oidc(self) -> bool:
        """IdC and Builder ID logins (a registered OIDC client) refresh at AWS SSO OIDC;
        social logins at Kiro's own service."""
        return self.auth_method.lower() == "idc" or bool(self.client_id and self.client_secret)


class KiroRefreshed(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    refresh_token: str
    """The new refresh token, or the old one when the service did not rotate it."""
    expires_at: float
    profile_arn: str = ""
    """Social logins may name a (new) profile ARN."""


async def refresh_kiro_token(
    http: HttpClient,
    provider: ConfiguredProvider,
    grant: KiroGrant,
    *,
    name: str,
    clock: Callable[[], float] = time.time,
) -> KiroRefreshed:
    """One refresh in the login's dialect (see the module docstring), at the provider's
    `auth_endpoint` when it names one. Failures are `CredentialUnavailable` naming
    `name` (a file or a credential) and the service's words, scrubbed of every token."""
    if not grant.refresh_token:
        raise CredentialUnavailable(f"kiro token of {name} expired and has no refresh token")
    if grant.oidc:
        if not (grant.client_id and grant.client_secret):
            raise CredentialUnavailable(
                f"kiro IdC token of {name} cannot be refreshed: no OIDC client registration"
            )
        region = grant.region or provider.region or DEFAULT_REGION
        base = provider.auth_endpoint or f"https://oidc.{region}.amazonaws.com"
        url = base.rstrip("/") + "/token"
        body: dict[str, str] = {
            "clientId": grant.client_id,
            "clientSecret": grant.client_secret,
            "grantType": "refresh_token",
            "refreshToken": grant.refresh_token,
        }
        headers = {"Content-Type": "application/json"}
    else:
        url = (provider.auth_endpoint or SOCIAL_AUTH_BASE).rstrip("/") + "/refreshToken"
        body = {"refreshToken": grant.refresh_token}
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"KiroIDE-{KIRO_VERSION}-{machine_id()}",
        }
    secrets = (grant.refresh_token, grant.access_token, grant.client_secret)
    started = clock()
    try:
        status, _, answer = await http.fetch(
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
    return KiroRefreshed(
        access_token=refreshed.access_token,
        refresh_token=refreshed.refresh_token or grant.refresh_token,
        expires_at=started + refreshed.expires_in,
        profile_arn=refreshed.profile_arn,
    )


@dataclass(frozen=True, slots=True)
class KiroTokenFile:
    """A Kiro token file as read: its raw JSON (every field kept for the write-back), the
    fields that matter, and the OIDC client (from the file or its `<clientIdHash>.json`)."""

    path: Path
    raw: dict[str, Any]
    stamp: tuple[int, int]
    """(mtime ns, size) when read: tells whether the file changed since."""
    access_token: str = ""
    refresh_token: str = ""
    expires_at: float = 0.0
    auth_method: str = ""
    profile_arn: str = ""
    region: str = ""
    start_url: str = ""
    client_id: str = ""
    client_secret: str = ""

    @classmethod
    def parse(cls, path: Path, raw: dict[str, Any], stamp: tuple[int, int]) -> KiroTokenFile:
        try:
            tokens = msgspec.convert(raw, _TokenFile)
        except msgspec.ValidationError:
            raise CredentialUnavailable(f"kiro token file {path} is not a Kiro token file") from None
        client_id, client_secret = _client(path, tokens)
        return cls(
            path=path,
            raw=raw,
            stamp=stamp,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=_parse_expiry(tokens.expires_at),
            auth_method=tokens.auth_method,
            profile_arn=tokens.profile_arn,
            region=tokens.region,
            start_url=tokens.start_url,
            client_id=client_id,
            client_secret=client_secret,
        )

    def grant(self) -> KiroGrant:
        return KiroGrant(
            refresh_token=self.refresh_token,
            access_token=self.access_token,
            auth_method=self.auth_method,
            client_id=self.client_id,
            client_secret=self.client_secret,
            region=self.region,
        )


def read_token_file(path: Path) -> KiroTokenFile:
    """Read and parse a token file; `CredentialUnavailable` when it is missing, unreadable
    or not a Kiro token file (the message names the file, never its content)."""
    try:
        info = path.stat()
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CredentialUnavailable(f"kiro token file {path} does not exist") from None
    except OSError as exc:
        raise CredentialUnavailable(f"kiro token file {path} cannot be read: {type(exc).__name__}") from None
    except ValueError:
        raise CredentialUnavailable(f"kiro token file {path} is not a Kiro token file") from None
    if not isinstance(raw, dict):
        raise CredentialUnavailable(f"kiro token file {path} is not a Kiro token file")
    return KiroTokenFile.parse(path, raw, (info.st_mtime_ns, info.st_size))


def merge_refreshed(raw: dict[str, Any], refreshed: KiroRefreshed) -> dict[str, Any]:
    """The file's JSON with the refreshed token in it, every other field kept."""
    updates = {
        "accessToken": refreshed.access_token,
        "refreshToken": refreshed.refresh_token,
        "expiresAt": _format_expiry(refreshed.expires_at),
    }
    if refreshed.profile_arn:
        updates["profileArn"] = refreshed.profile_arn
    return {**raw, **updates}


def write_token_file(
    path: Path, raw: dict[str, Any], refreshed: KiroRefreshed
) -> tuple[dict[str, Any], tuple[int, int]]:
    """Write the refreshed token into the file (atomically, keeping unknown fields) so the
    IDE and other tools keep working with it. Returns the JSON written and the file's new
    stamp. Blocking: run it in a thread."""
    merged = merge_refreshed(raw, refreshed)
    _write_atomically(path, merged)
    info = path.stat()
    return merged, (info.st_mtime_ns, info.st_size)


def _client(path: Path, tokens: _TokenFile) -> tuple[str, str]:
    """The OIDC client: in the token file, or in its `<clientIdHash>.json`."""
    if tokens.client_id and tokens.client_secret:
        return tokens.client_id, tokens.client_secret
    if not tokens.client_id_hash or "/" in tokens.client_id_hash or "\\" in tokens.client_id_hash:
        return "", ""
    try:
        registration = msgspec.json.decode(
            (path.parent / f"{tokens.client_id_hash}.json").read_bytes(), type=_Registration
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
