"""Stored credentials: every OAuth credential auth owns, in Redis, its secret sealed.

`llmbus:cred:<provider>:<id>` is a hash: the `CredentialInfo` fields in clear (`kind`,
`account`, `created_at`, `expires_at`, `healthy`, `reason`, `quota` as JSON), where it
came from (`source`: `login` or `config`; `token_file`; `fingerprint` of the config's
secret), a `version` bumped by every write of the secret, and `secret`: the
`StoredSecret` sealed by the vault with `<provider>/<id>` as associated data.
`llmbus:cred:index` is the set of `<provider>:<id>` stored.

Credentials come from device-flow logins (`add`) and from the config file (`sync_config`:
a copilot-family `github_token` or a kiro-family `token_file`, stored under the config
credential's name, so routing by name keeps working; a token file is written back when
auth refreshes it, and read again when the IDE refreshed it first).

A token is refreshed once across every replica: a Redis lock (`SET NX PX` on
`llmbus:lock:cred:<provider>:<id>`), the record read again once it is held (another
replica may have just refreshed), the new secret written only if `version` is still the
one read (compare-and-set). A failed refresh marks the credential unhealthy with its
reason and announces it (`CredentialEvent`); the next success marks it healthy again.

    CredentialError
    ├── CredentialNotFound      no such stored credential (404)
    ├── CredentialFromConfig    a config credential cannot be removed at run time (409)
    └── CredentialRefreshFailed no usable token: the refresh failed (503, retryable)
Redis failures are `KeyStoreUnavailable`, as for every auth store.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, cast, get_args

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmbus.auth.exchange import Exchange, Renewal, family_of, renew_at, token_reply, usable
from llmbus.auth.keys import KeyStoreUnavailable
from llmbus.auth.stored_secret import StoredSecret
from llmbus.auth.vault import SealBroken, Vault
from llmbus.proto import CredentialEvent, CredentialInfo, TokenReply
from llmbus.providers import ConfiguredProvider
from llmbus.providers.credentials.kiro import (
    REFRESH_MARGIN,
    KiroRefreshed,
    KiroTokenFile,
    read_token_file,
    write_token_file,
)
from llmbus.providers.errors import CredentialUnavailable

__all__ = [
    "CredentialError",
    "CredentialFromConfig",
    "CredentialNotFound",
    "CredentialRefreshFailed",
    "CredentialStore",
    "StoredSecret",
]

log = logging.getLogger(__name__)

_PREFIX = "llmbus:cred:"
_INDEX = "llmbus:cred:index"
_LOCK_PREFIX = "llmbus:lock:cred:"
_SLUG = re.compile(r"[^a-z0-9]+")

# Write the fields only if `version` is still the one the writer read ("0": no record),
# then bump it: the compare-and-set of every secret write.
_CAS = """
local current = redis.call('HGET', KEYS[1], 'version') or '0'
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('SADD', KEYS[2], KEYS[3])
return 1
"""
# Release the lock only if this holder still owns it (it may have expired and been taken).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

T = TypeVar("T")
Publish = Callable[[CredentialEvent], Awaitable[None]]
Action = Literal["added", "removed", "unhealthy", "healthy"]
Kind = Literal["github", "kiro-social", "kiro-idc", "kiro-builder-id"]
KINDS: frozenset[str] = frozenset(get_args(Kind))


class CredentialError(Exception):
    status = 500
    code = "credential_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CredentialNotFound(CredentialError):
    status = 404
    code = "credential_not_found"


class CredentialFromConfig(CredentialError):
    status = 409
    code = "credential_from_config"


class CredentialRefreshFailed(CredentialError):
    status = 503
    code = "credential_unavailable"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fingerprint(value: str) -> str:
    return hashlib.sha256(f"llmbus-config-credential\n{value}".encode()).hexdigest()


def _config_credentials(
    providers: Mapping[str, ConfiguredProvider],
) -> dict[tuple[str, str], tuple[str, str]]:
    """(provider, credential name) → ("github", token) or ("file", path) for every
    copilot GitHub token and kiro token file of the config."""
    wanted: dict[tuple[str, str], tuple[str, str]] = {}
    for provider in providers.values():
        if not provider.configured or provider.family not in ("copilot", "kiro"):
            continue
        for entry in provider.credentials:
            if provider.family == "copilot" and entry.github_token:
                wanted[(provider.name, entry.name)] = ("github", entry.github_token)
            elif provider.family == "kiro" and entry.token_file:
                wanted[(provider.name, entry.name)] = ("file", os.path.expanduser(entry.token_file))
    return wanted


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:40]


@dataclass(frozen=True, slots=True)
class _Record:
    """One stored credential as read: its public part, its secret, and its bookkeeping."""

    info: CredentialInfo
    secret: StoredSecret
    version: str
    source: str
    token_file: str
    fingerprint: str

    @property
    def name(self) -> str:
        return f"{self.info.provider}/{self.info.id}"


Records = list[_Record]
"""(A name of its own: inside the store, `list` is the method.)"""

_secret_encoder = msgspec.json.Encoder()
_secret_decoder = msgspec.json.Decoder(StoredSecret)
_quota_decoder = msgspec.json.Decoder(dict[str, float])


class CredentialStore:
    """Stored credentials and their tokens (see the module docstring).

    `exchange` does the upstream calls; `publish` announces `CredentialEvent`s (to the
    routers); `clock` gives Unix seconds. `lock_ttl` bounds how long one refresh may hold
    the lock (a crashed holder's lock expires); `lock_wait` how long a caller waits for
    another replica's refresh before giving up."""

    def __init__(
        self,
        redis: Redis,
        vault: Vault,
        exchange: Exchange,
        publish: Publish,
        *,
        clock: Callable[[], float] = time.time,
        lock_ttl: float = 30.0,
        lock_wait: float = 35.0,
        poll_interval: float = 0.05,
    ) -> None:
        self._redis = redis
        self._vault = vault
        self._exchange = exchange
        self._publish = publish
        self._clock = clock
        self._lock_ttl = lock_ttl
        self._lock_wait = lock_wait
        self._poll = poll_interval
        self._cas = redis.register_script(_CAS)
        self._release = redis.register_script(_RELEASE)

    # --- the public API ------------------------------------------------------------

    async def add(self, provider: str, kind: str, account: str, secret: StoredSecret) -> CredentialInfo:
        """Store a credential a login produced. A second login of the same account (same
        provider, kind and account) replaces the first's secret and keeps its id, healthy
        again; otherwise the id is new. Announced as `added` either way."""
        if kind not in KINDS:
            raise ValueError(f"unknown credential kind {kind!r}; expected one of {sorted(KINDS)}")
        now = self._clock()
        secret = self._with_renew_at(kind, secret, now)
        existing = None
        for record in await self._records(provider):
            if (
                record.source == "login"
                and record.info.kind == kind
                and account
                and record.info.account == account
            ):
                existing = record
                break
        if existing is not None:
            credential, created, version = existing.info.id, existing.info.created_at, existing.version
        else:
            credential = f"{_slug(account) or kind}-{secrets.token_hex(3)}"
            created, version = now, "0"
        info = CredentialInfo(
            provider=provider,
            id=credential,
            kind=cast(Kind, kind),
            account=account,
            created_at=created,
            expires_at=self._expires_at(kind, secret),
        )
        written = await self._write(info, secret, version, source="login")
        if not written:
            raise KeyStoreUnavailable("the credential changed while it was being stored")
        await self._announce("added", info)
        log.info("credential %s/%s stored (%s login)", provider, credential, kind)
        return info

    async def list(self, provider: str = "") -> list[CredentialInfo]:
        """Every stored credential (of `provider` when given), by provider then id."""
        return [record.info for record in await self._records(provider)]

    async def remove(self, provider: str, credential: str) -> CredentialInfo:
        """Forget a login's credential (announced as `removed`). A config credential is
        refused: it would come back at the next start."""
        record = await self._read(provider, credential)
        if record.source == "config":
            raise CredentialFromConfig(
                f"credential {provider}/{credential} comes from the config file: remove it there"
            )
        await self._delete(provider, credential)
        await self._announce("removed", record.info)
        log.info("credential %s/%s removed", provider, credential)
        return record.info

    async def get_token(self, provider: str, credential: str, refresh: bool = False) -> TokenReply:
        """A usable token of a stored credential; refreshed first when it is about to
        expire, or when `refresh` says the upstream refused the one handed out."""
        record = await self._read(provider, credential)
        if not refresh and usable(record.info.kind, record.secret, self._clock()):
            return self._reply(record)
        return await self._renew(record, forced=refresh)

    async def revive(self) -> None:
        """Try again every unhealthy credential (a fixed token file, a service back
        up): a success marks it healthy and announces it; a failure changes nothing."""
        for record in await self._records(""):
            if record.info.healthy:
                continue
            try:
                await self._renew(record, forced=True)
            except CredentialError as exc:
                log.debug("credential %s still unhealthy: %s", record.name, exc.message)

    async def sync_config(self, providers: Mapping[str, ConfiguredProvider]) -> None:
        """Store the config's copilot `github_token` and kiro `token_file` credentials
        under their names (at start and on every reload); forget config credentials no
        longer listed. A credential whose config secret is unchanged keeps its tokens."""
        wanted = _config_credentials(providers)
        stored = {(r.info.provider, r.info.id): r for r in await self._records("") if r.source == "config"}
        for (provider_name, credential), (what, value) in wanted.items():
            record = stored.get((provider_name, credential))
            if what == "github":
                await self._import_github(provider_name, credential, value, record)
            else:
                await self._import_file(provider_name, credential, Path(value), record)
        for key, record in stored.items():
            if key not in wanted:
                await self._delete(*key)
                await self._announce("removed", record.info)
                log.info("config credential %s forgotten: no longer in the config", record.name)

    # --- refresh, single-flight across replicas -----------------------------------------

    async def _renew(self, record: _Record, *, forced: bool) -> TokenReply:
        provider, credential = record.info.provider, record.info.id
        lock = f"{_LOCK_PREFIX}{provider}:{credential}"
        holder = secrets.token_hex(16)
        seen = record.version
        deadline = self._clock() + self._lock_wait
        while not await self._try(self._redis.set(lock, holder, nx=True, px=int(self._lock_ttl * 1000))):
            # Another replica is refreshing: take its token as soon as it is written.
            await asyncio.sleep(self._poll)
            current = await self._read(provider, credential)
            if current.version != seen and usable(current.info.kind, current.secret, self._clock()):
                return self._reply(current)
            if self._clock() > deadline:
                raise CredentialRefreshFailed(
                    f"credential {record.name}: the refresh under way elsewhere did not finish in time"
                )
        try:
            current = await self._read(provider, credential)
            if current.version != seen and usable(current.info.kind, current.secret, self._clock()):
                return self._reply(current)
            return await self._exchange_and_store(current, forced=forced)
        finally:
            try:
                await self._release(keys=[lock], args=[holder])
            except RedisError:
                log.warning("lock of credential %s not released; it expires by itself", record.name)

    async def _exchange_and_store(self, record: _Record, *, forced: bool) -> TokenReply:
        adopted = await self._adopt_newer_file(record)
        if adopted is not None:
            return adopted
        try:
            renewal = await self._exchange.renew(
                record.info.provider, record.info.id, record.info.kind, record.secret
            )
        except CredentialUnavailable as exc:
            return await self._refresh_failed(record, exc, forced=forced)
        info = msgspec.structs.replace(
            record.info,
            account=record.info.account or renewal.account,
            expires_at=self._expires_at(record.info.kind, renewal.secret),
            healthy=True,
            reason="",
            quota=renewal.quota if renewal.quota is not None else record.info.quota,
        )
        if not await self._write(info, renewal.secret, record.version, source=record.source, keep=record):
            # Only when the lock expired under a slow exchange: the other writer's token wins.
            current = await self._read(record.info.provider, record.info.id)
            if usable(current.info.kind, current.secret, self._clock()):
                return self._reply(current)
            raise CredentialRefreshFailed(f"credential {record.name} changed during its refresh")
        if record.token_file:
            await self._write_back(record, renewal)
        if not record.info.healthy:
            await self._announce("healthy", info)
            log.info("credential %s healthy again", record.name)
        return token_reply(info.kind, renewal.secret, self._exchange.provider(info.provider))

    async def _refresh_failed(
        self, record: _Record, exc: CredentialUnavailable, *, forced: bool
    ) -> TokenReply:
        """A refresh failed. A token that still has life is handed out after a passing
        failure (unreachable, 5xx, 429) unless the upstream refused it; otherwise the
        credential is unhealthy until a refresh succeeds."""
        now = self._clock()
        transient = exc.upstream_status == 0 or exc.upstream_status >= 500 or exc.upstream_status == 429
        if transient and not forced and self._expires_at(record.info.kind, record.secret) > now + 5:
            log.warning(
                "credential %s: refresh failed (%s); its token is still valid", record.name, exc.message
            )
            return self._reply(record)
        reason = f"refresh failed: {exc.message}"
        info = msgspec.structs.replace(record.info, healthy=False, reason=reason)
        try:
            await self._redis.hset(
                _PREFIX + f"{record.info.provider}:{record.info.id}",
                mapping={"healthy": "0", "reason": reason},
            )
        except RedisError:
            log.warning("credential %s: cannot record that it is unhealthy", record.name)
        if record.info.healthy:
            await self._announce("unhealthy", info)
            log.warning("credential %s unhealthy: %s", record.name, reason)
        raise CredentialRefreshFailed(f"credential {record.name} has no usable token: {reason}")

    # --- token files ---------------------------------------------------------------------

    async def _adopt_newer_file(self, record: _Record) -> TokenReply | None:
        """A token file the IDE refreshed (or a user replaced) holds a token newer than
        the stored one: take it instead of refreshing."""
        if not record.token_file:
            return None
        try:
            loaded = await asyncio.to_thread(read_token_file, Path(record.token_file))
        except CredentialUnavailable:
            return None
        now = self._clock()
        secret = self._file_secret(loaded, now)
        if loaded.expires_at <= record.secret.expires_at or not usable(record.info.kind, secret, now):
            return None
        info = self._file_info(record.info.provider, record.info.id, loaded, record.info)
        if not await self._write(info, secret, record.version, source="config", keep=record):
            return None
        if not record.info.healthy:
            await self._announce("healthy", info)
        return token_reply(info.kind, secret, self._exchange.provider(info.provider))

    async def _write_back(self, record: _Record, renewal: Renewal) -> None:
        secret = renewal.secret
        refreshed = KiroRefreshed(
            access_token=secret.access_token,
            refresh_token=secret.refresh_token,
            expires_at=secret.expires_at,
            profile_arn=secret.profile_arn,
        )

        def write() -> None:
            path = Path(record.token_file)
            write_token_file(path, read_token_file(path).raw, refreshed)

        try:
            await asyncio.to_thread(write)
        except (OSError, CredentialUnavailable) as exc:
            # Auth's copy is the one that counts; the IDE's copy may now hold a rotated-out
            # refresh token, which it will tell its user about.
            log.warning("kiro token file of %s not updated: %s", record.name, type(exc).__name__)

    def _file_secret(self, loaded: KiroTokenFile, now: float) -> StoredSecret:
        return StoredSecret(
            access_token=loaded.access_token,
            refresh_token=loaded.refresh_token,
            expires_at=loaded.expires_at,
            client_id=loaded.client_id,
            client_secret=loaded.client_secret,
            region=loaded.region,
            start_url=loaded.start_url,
            profile_arn=loaded.profile_arn,
            auth_method=loaded.auth_method,
            renew_at=renew_at(loaded.expires_at, now, REFRESH_MARGIN),
        )

    def _file_info(
        self, provider: str, credential: str, loaded: KiroTokenFile, previous: CredentialInfo | None
    ) -> CredentialInfo:
        oidc = loaded.auth_method.lower() == "idc" or bool(loaded.client_id and loaded.client_secret)
        return CredentialInfo(
            provider=provider,
            id=credential,
            kind="kiro-idc" if oidc else "kiro-social",
            account=loaded.start_url,
            created_at=previous.created_at if previous else self._clock(),
            expires_at=loaded.expires_at,
        )

    async def _import_file(self, provider: str, credential: str, path: Path, record: _Record | None) -> None:
        now = self._clock()
        try:
            loaded = await asyncio.to_thread(read_token_file, path)
        except CredentialUnavailable as exc:
            if record is not None and record.token_file == str(path):
                return  # keep what auth knows; the file may come back
            info = CredentialInfo(
                provider=provider,
                id=credential,
                kind="kiro-social",
                created_at=now,
                healthy=False,
                reason=exc.message,
            )
            await self._write(
                info, StoredSecret(), record.version if record else "0", source="config", token_file=str(path)
            )
            await self._announce("unhealthy", info)
            log.warning("config credential %s/%s unusable: %s", provider, credential, exc.message)
            return
        same_file = record is not None and record.token_file == str(path)
        if (
            same_file
            and record is not None
            and record.info.healthy
            and loaded.expires_at <= record.secret.expires_at
        ):
            return  # auth holds this token or a newer one (it writes the file back)
        info = self._file_info(provider, credential, loaded, record.info if record else None)
        await self._write(
            info,
            self._file_secret(loaded, now),
            record.version if record else "0",
            source="config",
            token_file=str(path),
        )
        await self._announce("added", info)

    async def _import_github(
        self, provider: str, credential: str, token: str, record: _Record | None
    ) -> None:
        fingerprint = _fingerprint(token)
        if record is not None and record.fingerprint == fingerprint:
            return  # the same GitHub token: keep its Copilot token, health and quota
        info = CredentialInfo(
            provider=provider,
            id=credential,
            kind="github",
            created_at=record.info.created_at if record else self._clock(),
        )
        await self._write(
            info,
            StoredSecret(github_token=token),
            record.version if record else "0",
            source="config",
            fingerprint=fingerprint,
        )
        await self._announce("added", info)

    # --- Redis ---------------------------------------------------------------------------

    async def _try(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except RedisError as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None

    async def _write(
        self,
        info: CredentialInfo,
        secret: StoredSecret,
        version: str,
        *,
        source: str,
        token_file: str = "",
        fingerprint: str = "",
        keep: _Record | None = None,
    ) -> bool:
        """Write a whole record if its version is still `version`; `keep` carries over
        the bookkeeping of the record it replaces."""
        key = f"{info.provider}:{info.id}"
        fields: dict[str, str | bytes] = {
            "provider": info.provider,
            "id": info.id,
            "kind": info.kind,
            "account": info.account,
            "created_at": repr(info.created_at),
            "expires_at": repr(info.expires_at),
            "healthy": "1" if info.healthy else "0",
            "reason": info.reason,
            "quota": msgspec.json.encode(info.quota),
            "source": source,
            "token_file": token_file or (keep.token_file if keep else ""),
            "fingerprint": fingerprint or (keep.fingerprint if keep else ""),
            "secret": self._vault.seal(f"{info.provider}/{info.id}", _secret_encoder.encode(secret)),
        }
        args: list[str | bytes] = [version]
        for name, value in fields.items():
            args += [name, value]
        written = await self._try(self._cas(keys=[_PREFIX + key, _INDEX, key], args=args))
        return bool(written)

    async def _delete(self, provider: str, credential: str) -> None:
        key = f"{provider}:{credential}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_PREFIX + key)
            pipe.srem(_INDEX, key)
            await self._try(pipe.execute())

    async def _read(self, provider: str, credential: str) -> _Record:
        raw = await self._try(self._redis.hgetall(f"{_PREFIX}{provider}:{credential}"))
        record = self._parse(raw)
        if record is None:
            raise CredentialNotFound(f"no stored credential {provider}/{credential}")
        return record

    async def _records(self, provider: str) -> Records:
        keys = sorted(_text(k) for k in await self._try(self._redis.smembers(_INDEX)))
        if provider:
            keys = [k for k in keys if k.partition(":")[0] == provider]
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(_PREFIX + key)
            raws = await self._try(pipe.execute())
        return [record for record in map(self._parse, raws) if record is not None]

    def _parse(self, raw: Mapping[bytes | str, bytes | str]) -> _Record | None:
        fields = {_text(k): v for k, v in raw.items()}
        text = {k: _text(v) for k, v in fields.items() if k != "secret"}
        sealed = fields.get("secret", b"")
        if "provider" not in text or "id" not in text:
            return None
        name = f"{text['provider']}/{text['id']}"
        healthy, reason = text.get("healthy", "1") == "1", text.get("reason", "")
        kind = text.get("kind", "")
        if kind not in KINDS:
            return None
        try:
            secret = _secret_decoder.decode(
                self._vault.open(name, sealed if isinstance(sealed, bytes) else sealed.encode())
            )
        except (SealBroken, msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Sealed with a key this process does not have, or damaged: unusable until
            # stored again (a new login, the config's secret), and said so.
            secret = StoredSecret()
            healthy, reason = (
                False,
                str(exc) if isinstance(exc, SealBroken) else "the stored secret is damaged",
            )
        try:
            quota = _quota_decoder.decode(text.get("quota", "{}") or "{}")
        except (msgspec.DecodeError, msgspec.ValidationError):
            quota = {}
        info = CredentialInfo(
            provider=text["provider"],
            id=text["id"],
            kind=cast(Kind, kind),
            account=text.get("account", ""),
            created_at=float(text.get("created_at", "0") or 0),
            expires_at=float(text.get("expires_at", "0") or 0),
            healthy=healthy,
            reason=reason,
            quota=quota,
        )
        return _Record(
            info=info,
            secret=secret,
            version=text.get("version", "0"),
            source=text.get("source", "login"),
            token_file=text.get("token_file", ""),
            fingerprint=text.get("fingerprint", ""),
        )

    # --- helpers -------------------------------------------------------------------------

    def _reply(self, record: _Record) -> TokenReply:
        return token_reply(record.info.kind, record.secret, self._exchange.provider(record.info.provider))

    def _expires_at(self, kind: str, secret: StoredSecret) -> float:
        return secret.copilot_expires_at if family_of(kind) == "copilot" else secret.expires_at

    def _with_renew_at(self, kind: str, secret: StoredSecret, now: float) -> StoredSecret:
        if secret.renew_at or family_of(kind) == "copilot":
            return secret
        return msgspec.structs.replace(secret, renew_at=renew_at(secret.expires_at, now, REFRESH_MARGIN))

    async def _announce(self, action: Action, info: CredentialInfo) -> None:
        await self._publish(CredentialEvent(action=action, credential=info))
