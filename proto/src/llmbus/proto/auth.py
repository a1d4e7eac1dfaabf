"""The v1 auth contract: client keys at run time, usage, quotas, OAuth device flows and
the credentials they produce, tokens for workers.

Auth is the only writer of this state (in Redis); every other service asks it over
`auth.v1.*` request/reply, or caches what `auth.v1.events.*` announces.

    keys         KeyCreate → KeyCreated (the key, shown once); KeyListRequest → KeyList;
                 KeyRevoke → KeyInfo (and a KeyEvent to every edge); KeyUsageRequest → KeyUsage
    usage        RequestRecord, one per finished request, on the durable usage stream;
                 UsageQuery → UsageReport (daily aggregates); KeyUsageRequest → KeyUsage
    quotas       QuotaReserve → QuotaGrant (admitted, or refused with retry_after);
                 QuotaSettle corrects a reservation with the real usage
    device flow  DeviceFlowStart → DeviceFlow (user code, link); DeviceFlowPoll → DeviceFlowStatus
    credentials  CredentialListRequest → CredentialList; CredentialRemove → CredentialInfo;
                 CredentialEvent to every router (added, removed, unhealthy, healthy)
    tokens       TokenRequest → TokenReply: a worker's usable token for one credential
    cooldowns    CooldownClear → CooldownCleared (and a CooldownCleared event to routers)
    management   ManagementAttempt → ManagementVerdict: a source's try of the management key,
                 counted cluster-wide so that repeated failures lock it out on every edge
"""

from __future__ import annotations

from typing import Literal

from llmbus.proto.base import Msg

__all__ = [
    "ClientLimits",
    "CooldownClear",
    "CooldownCleared",
    "CredentialEvent",
    "CredentialInfo",
    "CredentialList",
    "CredentialListRequest",
    "CredentialRemove",
    "DeviceFlow",
    "DeviceFlowPoll",
    "DeviceFlowStart",
    "DeviceFlowStatus",
    "KeyCreate",
    "KeyCreated",
    "KeyInfo",
    "KeyList",
    "KeyListRequest",
    "KeyRevoke",
    "KeyUsage",
    "KeyUsageRequest",
    "ManagementAttempt",
    "ManagementVerdict",
    "QuotaGrant",
    "QuotaReserve",
    "QuotaScope",
    "QuotaSettle",
    "RequestRecord",
    "RequestRecords",
    "TokenReply",
    "TokenRequest",
    "UsageCounts",
    "UsageDimension",
    "UsageQuery",
    "UsageRecord",
    "UsageReport",
    "UsageRow",
]


# --- client keys -----------------------------------------------------------------------


class ClientLimits(Msg, frozen=True, kw_only=True):
    """What one client key may do; 0 or empty means no limit of its own."""

    rpm: int = 0
    tpm: int = 0
    max_tokens: int = 0
    """Largest `max_tokens` (completion) a single request may ask for."""
    models: list[str] = []
    """Client model names the key may use (`*` wildcards); empty: every model."""


class KeyCreate(Msg, frozen=True, kw_only=True):
    """`auth.v1.keys.create`."""

    name: str = ""
    owner: str = ""
    limits: ClientLimits = ClientLimits()
    expires_at: float = 0.0
    """Unix seconds; 0: never."""
    actor: str = ""


class KeyInfo(Msg, frozen=True, kw_only=True):
    """A client key as the management API shows it: never the key, only its prefix."""

    id: str
    prefix: str
    """The key's first characters (`sk-llmbus-ab12…`), to recognise it."""
    name: str = ""
    owner: str = ""
    limits: ClientLimits = ClientLimits()
    created_at: float = 0.0
    expires_at: float = 0.0
    revoked: bool = False
    source: Literal["config", "api"] = "api"


class KeyCreated(Msg, frozen=True, kw_only=True):
    """The reply to `KeyCreate`: the only time the key itself is ever sent."""

    key: str
    info: KeyInfo


class KeyListRequest(Msg, frozen=True, kw_only=True):
    """`auth.v1.keys.list`."""

    include_revoked: bool = False


class KeyList(Msg, frozen=True, kw_only=True):
    keys: list[KeyInfo] = []


class KeyRevoke(Msg, frozen=True, kw_only=True):
    """`auth.v1.keys.revoke`: the key stops working on every edge (a `KeyEvent`)."""

    id: str
    actor: str = ""


class UsageCounts(Msg, frozen=True, kw_only=True):
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class KeyUsageRequest(Msg, frozen=True, kw_only=True):
    """`auth.v1.keys.usage`."""

    id: str
    days: int = 30


class KeyUsage(Msg, frozen=True, kw_only=True):
    id: str
    total: UsageCounts = UsageCounts()
    by_model: dict[str, UsageCounts] = {}
    by_day: dict[str, UsageCounts] = {}
    """`YYYY-MM-DD` (UTC) → counts."""


class UsageRecord(Msg, frozen=True, kw_only=True):
    """Requests that ended, summed per key, model, provider and day: what edges sent on
    `auth.v1.events.usage` before the usage stream. No longer sent (a `RequestRecord` per
    request replaced it); kept so that the v1 contract only grows."""

    key_id: str
    model: str
    provider: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    at: float = 0.0
    ok: bool = True
    requests: int = 1


class RequestRecord(Msg, frozen=True, kw_only=True):
    """`usage.v1.requests`: one finished request (failed ones too), published by the edge
    and kept on the durable `LLMBUS_USAGE` stream, from which auth keeps the daily usage
    aggregates. Never a body, a prompt or a secret: the credential is named by
    `credential_ref` (a hash of its id), the client key by its id."""

    at: float
    """Unix seconds when the request ended."""
    request_id: str
    """The request's `x-request-id`."""
    trace_id: str = ""
    """The request's trace (32 hex digits), when it has one."""
    key_id: str
    provider: str = ""
    """The provider that answered (or failed last); empty when none was reached."""
    credential: str = ""
    """`llmbus.telemetry.credential_ref` of the credential used: a hash, never the id itself."""
    model: str
    """The model the client asked for."""
    upstream_model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    """Time to the first streamed delta; 0 for an answer that is not streamed."""
    status: int = 200
    """The HTTP status the client got (499: it went away)."""
    error: str = ""
    """The error code, when the request failed."""
    failovers: int = 0
    """How many times the request moved along its failover plan before it was answered."""
    stream: bool = False
    api: str = ""
    """The client API: `openai`, `anthropic`, `gemini`, `responses`, `completions`, `embeddings`."""


class RequestRecords(Msg, frozen=True, kw_only=True):
    """`usage.v1.requests`: the records an edge gathered since its last flush (about a
    second), one per finished request, in one message: one stream message, one
    acknowledgement and one Redis transaction for up to `USAGE_BATCH` requests instead of
    one each (measured: one message per record cost auth 0.07 ms per request and, every
    second, a burst that pushed the gateway's p99 at concurrency 1 up by 1.3 ms)."""

    records: list[RequestRecord] = []


UsageDimension = Literal["key", "provider", "credential", "model"]


class UsageQuery(Msg, frozen=True, kw_only=True):
    """`auth.v1.usage.query`: the daily aggregates of the last `days` UTC days (today
    included), grouped by one dimension."""

    by: UsageDimension = "model"
    days: int = 7


class UsageRow(Msg, frozen=True, kw_only=True):
    """What one group (a key id, provider, hashed credential id or model) used on one UTC day."""

    day: str
    """`YYYY-MM-DD` (UTC)."""
    group: str
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class UsageReport(Msg, frozen=True, kw_only=True):
    by: UsageDimension
    days: int
    rows: list[UsageRow] = []
    """Oldest day first, then by group; days and groups with no request are left out."""


# --- quotas ----------------------------------------------------------------------------


class QuotaScope(Msg, frozen=True, kw_only=True):
    """One limited thing: a client key, a provider, or one credential of a provider (for
    one model when `model` is set)."""

    kind: Literal["key", "provider", "credential"]
    id: str
    """The key's id, the provider's name, or `<provider>/<credential>`."""
    rpm: int = 0
    tpm: int = 0


class QuotaReserve(Msg, frozen=True, kw_only=True):
    """`auth.v1.quota.reserve`: admit one request against every scope at once (all or
    none), reserving `tokens` (the request's estimate) against their TPM."""

    request_id: str
    scopes: list[QuotaScope]
    tokens: int = 0


class QuotaGrant(Msg, frozen=True, kw_only=True):
    admitted: bool
    retry_after: float = 0.0
    """Seconds until the refusing scope admits the request; 0 when admitted."""
    limited_by: str = ""
    """The refusing scope, as `<kind>:<id>` (`key:key_ab12`, `provider:claude`)."""
    reason: str = ""
    """`rpm` or `tpm`."""


class QuotaSettle(Msg, frozen=True, kw_only=True):
    """`auth.v1.quota.settle`: the request used `tokens`, not the `reserved` estimate."""

    request_id: str
    scopes: list[QuotaScope]
    reserved: int
    tokens: int


# --- device flows and the credentials they produce -------------------------------------

LoginMethod = Literal["github", "builder-id", "identity-center"]


class DeviceFlowStart(Msg, frozen=True, kw_only=True):
    """`auth.v1.flows.start`: begin a device-flow login for `provider` (a configured
    provider of the copilot or kiro family)."""

    provider: str
    method: LoginMethod = "github"
    start_url: str = ""
    """Identity Center: the organisation's start URL (`https://<org>.awsapps.com/start`)."""
    region: str = ""
    """Identity Center: the region of its OIDC service."""
    actor: str = ""


class DeviceFlow(Msg, frozen=True, kw_only=True):
    flow_id: str
    provider: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str = ""
    expires_in: int
    interval: int


class DeviceFlowPoll(Msg, frozen=True, kw_only=True):
    """`auth.v1.flows.status`."""

    flow_id: str


class DeviceFlowStatus(Msg, frozen=True, kw_only=True):
    flow_id: str
    status: Literal["pending", "success", "expired", "denied", "error"]
    provider: str = ""
    credential: str = ""
    """On success: the new credential's id."""
    error: str = ""


class CredentialInfo(Msg, frozen=True, kw_only=True):
    """A credential that auth keeps (from a device flow or an imported token file): never
    the token, only what identifies it and whether it works."""

    provider: str
    id: str
    kind: Literal["github", "kiro-social", "kiro-idc", "kiro-builder-id"]
    account: str = ""
    """Who it belongs to (GitHub login, AWS start URL)."""
    created_at: float = 0.0
    expires_at: float = 0.0
    """Of the current access token; 0 when unknown or long-lived."""
    healthy: bool = True
    reason: str = ""
    """Why it is unhealthy (the failed refresh)."""
    quota: dict[str, float] = {}
    """Copilot: `premium_interactions.entitlement`, `.remaining`, ... as last seen."""


class CredentialListRequest(Msg, frozen=True, kw_only=True):
    """`auth.v1.credentials.list`: every credential (of `provider`, when set)."""

    provider: str = ""


class CredentialList(Msg, frozen=True, kw_only=True):
    credentials: list[CredentialInfo] = []


class CredentialRemove(Msg, frozen=True, kw_only=True):
    """`auth.v1.credentials.remove`."""

    provider: str
    id: str
    actor: str = ""


class CredentialEvent(Msg, frozen=True, kw_only=True):
    """`auth.v1.events.credentials`: routers add the credential to (or drop it from) the
    provider's candidates, or rest it while unhealthy."""

    action: Literal["added", "removed", "unhealthy", "healthy"]
    credential: CredentialInfo


class TokenRequest(Msg, frozen=True, kw_only=True):
    """`auth.v1.tokens.get`: a worker's usable token for one stored credential; auth
    refreshes it first when it is about to expire (one refresh across every replica)."""

    provider: str
    credential: str
    refresh: bool = False
    """The upstream refused the token the worker had: refresh it now."""


class TokenReply(Msg, frozen=True, kw_only=True):
    token: str
    expires_at: float = 0.0
    endpoint: str = ""
    """Copilot: the API host the token names."""
    profile_arn: str = ""
    region: str = ""


# --- cooldowns -------------------------------------------------------------------------


class CooldownClear(Msg, frozen=True, kw_only=True):
    """`auth.v1.cooldowns.clear`: end a credential's rest now (every model when `model`
    is empty; every credential of the provider when `credential` is empty)."""

    provider: str
    credential: str = ""
    model: str = ""
    actor: str = ""


class CooldownCleared(Msg, frozen=True, kw_only=True):
    """The reply to `CooldownClear`, and `control.v1.cooldowns.cleared` to every router."""

    provider: str
    credential: str = ""
    model: str = ""
    cleared: int = 0


# --- the management key ----------------------------------------------------------------


class ManagementAttempt(Msg, frozen=True, kw_only=True):
    """`auth.v1.management.attempt`: a source (the client's IP address) presented the
    management key, rightly or not (`ok`, checked by the edge: the key never travels).
    Auth counts failures per source in Redis, so the lockout holds on every edge."""

    source: str
    ok: bool


class ManagementVerdict(Msg, frozen=True, kw_only=True):
    locked: bool
    """The source is locked out: refuse the call whatever key it presented."""
    retry_after: float = 0.0
    """Seconds until the lockout ends; 0 when not locked."""
    failures: int = 0
    """Failures counted so far in the current window (after this attempt)."""
