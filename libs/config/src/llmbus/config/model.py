"""The configuration file's model.

One YAML file, read by every service at start. It accepts two forms, which the loader
normalises into one: the spec's `providers:` map (snake_case keys inside each provider)
and the user-guide keys at the top level (kebab-case: `claude-api-key`, `openrouter`,
`openai-compatibility`, `kiro`, `copilot`, ...). After loading, `Config.providers` holds every
provider whichever form declared it; the user-guide lists are kept for reference only.

Unknown keys are refused, so that a typo fails at start instead of being ignored.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

import msgspec

__all__ = [
    "BUILTIN_PROVIDERS",
    "CUSTOM_TYPE",
    "GUIDE_KEY_PROVIDERS",
    "ApiKeyEntry",
    "ClientKey",
    "CompatEntry",
    "Config",
    "CooldownConfig",
    "CopilotEntry",
    "CredentialEntry",
    "FeaturesConfig",
    "GuideEntry",
    "GuideKeyEntry",
    "GuideModel",
    "HealthCheckConfig",
    "KiroEntry",
    "LimitsConfig",
    "ModelEntry",
    "ProviderConfig",
    "RemoteManagementConfig",
    "ResponsesConfig",
    "RoutingConfig",
    "Strategy",
    "TimeoutsConfig",
    "UsageConfig",
]


BUILTIN_PROVIDERS: tuple[str, ...] = (
    "claude",
    "gemini",
    "openai",
    "mistral",
    "groq",
    "deepseek",
    "openrouter",
    "together",
    "fireworks",
    "novita",
    "siliconflow",
    "kiro",
    "copilot",
    "roocode",
    "kiloai",
    "minimax",
)
"""The built-in providers' names: the values a provider's `type` may take besides
`openai-compatible`. Their specs live in `llmbus.providers.registry`, which depends on
this package and so cannot be imported here; a unit test keeps the two lists equal."""

CUSTOM_TYPE = "openai-compatible"
"""The `type` of an OpenAI-compatible endpoint that is not a built-in (a local Ollama)."""


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ClientKey(_Strict, frozen=True, kw_only=True):
    """A key that clients of the gateway present."""

    key: str
    name: str = ""


class CredentialEntry(
    _Strict,
    frozen=True,
    kw_only=True,
    rename={"api_key": "api-key", "token_file": "token-file", "github_token": "github-token"},
):
    """One upstream credential of a provider: an API key, a Kiro token file, or a GitHub
    token from which Copilot tokens are minted."""

    api_key: str = ""
    name: str = ""
    token_file: str = ""
    github_token: str = ""
    limits: LimitsConfig | None = None
    """This credential's own RPM/TPM (an upstream usually limits each key), checked
    besides the provider's `limits`."""

    @property
    def usable(self) -> bool:
        return bool(self.api_key or self.token_file or self.github_token)


class ModelEntry(_Strict, frozen=True, kw_only=True):
    """A model a provider serves. `name` is what clients ask for; `upstream` is the name
    sent to the provider when it differs; `alias` adds more client-facing names (one alias
    on models of several providers, or several models of one, makes a pool: every model
    under it serves the alias); `fallback` names the models tried, in order, when none of
    this model's targets could answer."""

    name: str
    upstream: str | None = None
    alias: str | list[str] = []
    fallback: str | list[str] = []
    enabled: bool = True
    max_tokens: int | None = None
    supports_functions: bool | None = None
    supports_streaming: bool | None = None
    supports_vision: bool | None = None
    supports_embeddings: bool | None = None
    """An embedding model (served by `/v1/embeddings` only); built-in embedding models
    (`text-embedding-3-small`, `gemini-embedding-001`, ...) are known as such."""

    def aliases(self) -> list[str]:
        return [self.alias] if isinstance(self.alias, str) else list(self.alias)

    def fallbacks(self) -> list[str]:
        return [self.fallback] if isinstance(self.fallback, str) else list(self.fallback)


class FeaturesConfig(_Strict, frozen=True, kw_only=True):
    """Overrides of the built-in features; a key left out keeps the built-in value."""

    streaming: bool | None = None
    functions: bool | None = None
    vision: bool | None = None
    code_generation: bool | None = None
    multimodal: bool | None = None


class LimitsConfig(_Strict, frozen=True, kw_only=True):
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_tokens_per_request: int | None = None


class CooldownConfig(_Strict, frozen=True, kw_only=True):
    """How long a credential rests after the upstream refused it."""

    rate_limited_seconds: float = 60.0
    """After a 429 without Retry-After."""
    max_seconds: float = 3600.0
    """Upper bound, whatever Retry-After says."""
    auth_failed_seconds: float = 300.0
    """After a 401 or 403: the key is probably revoked."""


class TimeoutsConfig(_Strict, frozen=True, kw_only=True):
    """How long a request may wait on an upstream: `first_byte_seconds` until the upstream
    starts its answer (its status line; for a request that is not streamed, that is the
    whole answer), `total_seconds` for the whole call. Unset keys keep the routing
    defaults (`routing.timeouts`), then the edge's deadline. A client's
    `x-llmbus-timeout` only ever shortens them."""

    first_byte_seconds: float | None = None
    total_seconds: float | None = None

    def __post_init__(self) -> None:
        for key in ("first_byte_seconds", "total_seconds"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ValueError(f"`{key}` must be a number of seconds above 0, got {value}")

    def over(self, defaults: TimeoutsConfig) -> TimeoutsConfig:
        """These timeouts, with `defaults` for the keys left unset."""
        return TimeoutsConfig(
            first_byte_seconds=self.first_byte_seconds or defaults.first_byte_seconds,
            total_seconds=self.total_seconds or defaults.total_seconds,
        )


class HealthCheckConfig(_Strict, frozen=True, kw_only=True):
    enabled: bool = True
    interval_seconds: float = 60.0
    timeout_seconds: float = 10.0


class ProviderConfig(_Strict, frozen=True, kw_only=True):
    """One provider in the spec's form (`providers: {name: {...}}`)."""

    type: str | None = None
    """The built-in provider this entry configures (one of `BUILTIN_PROVIDERS`), or
    `openai-compatible` for a custom endpoint. Default: the entry's name when that is a
    built-in's; any other name is a custom endpoint and needs an `endpoint`. Any other
    value is refused, so that `type: anthropic` fails at start instead of becoming an
    OpenAI-compatible endpoint that speaks the wrong wire format."""
    enabled: bool = True
    auth_type: Literal["api_key", "oauth_device_flow", "token_file", "none"] | None = None
    endpoint: str | None = None
    api_key: str | None = None
    api_keys: list[str | CredentialEntry] = []
    token_file: str | None = None
    github_token: str | None = None
    """Copilot: a GitHub OAuth token (from the device flow or `gh auth token`)."""
    auth_endpoint: str | None = None
    """Where credentials are minted or refreshed, replacing the base URL of the family's
    token service: GitHub's API for Copilot (`https://api.github.com`); for Kiro both
    refresh services, Kiro's own for social logins and AWS SSO OIDC
    (`https://oidc.<region>.amazonaws.com`) for Builder ID and Identity Center logins.
    Default: the real services."""
    region: str | None = None
    """Kiro: the AWS region of the API when the token's profile ARN names none (the ARN
    wins; the token file's own `region` is the last resort)."""
    proxy_url: str | None = None
    """An HTTP(S) proxy for every call to this provider (`http://user:pass@host:port`).
    SOCKS is refused: the HTTP client is installed without SOCKS support."""
    models: list[str | ModelEntry] = []
    model_mappings: dict[str, str] = {}
    features: FeaturesConfig = FeaturesConfig()
    limits: LimitsConfig = LimitsConfig()
    cooldown: CooldownConfig = CooldownConfig()
    health_check: HealthCheckConfig = HealthCheckConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    """This provider's first-byte and total timeouts (a slow reasoning model may need
    longer than the routing defaults, a fast one fails over sooner with shorter)."""
    priority: int = 0
    prefix: str | None = None
    """Clients reach this provider's models as `<prefix>/<model>`."""
    excluded_models: list[str] = []
    """Model names (client or upstream) never served; `*` is a wildcard."""
    headers: dict[str, str] = {}
    """Extra headers sent upstream with every request."""

    def credentials(self) -> list[CredentialEntry]:
        entries = [CredentialEntry(api_key=self.api_key)] if self.api_key else []
        for item in self.api_keys:
            entries.append(CredentialEntry(api_key=item) if isinstance(item, str) else item)
        if self.token_file:
            entries.append(CredentialEntry(token_file=self.token_file))
        if self.github_token:
            entries.append(CredentialEntry(github_token=self.github_token))
        return [entry for entry in entries if entry.usable]

    def model_entries(self) -> list[ModelEntry]:
        return [ModelEntry(name=item) if isinstance(item, str) else item for item in self.models]


# --- the user-guide form -------------------------------------------------------------


class GuideModel(_Strict, frozen=True, kw_only=True):
    """`models: [{name, alias, fallback}]`: `name` is the upstream model, `alias` the client
    name, `fallback` the models tried when none of this one's targets could answer."""

    name: str
    alias: str = ""
    fallback: str | list[str] = []


class GuideEntry(_Strict, frozen=True, kw_only=True, rename="kebab"):
    """The keys every entry of a per-provider user-guide list accepts."""

    prefix: str = ""
    base_url: str = ""
    models: list[GuideModel] = []
    excluded_models: list[str] = []
    headers: dict[str, str] = {}
    priority: int = 0
    proxy_url: str = ""
    """An HTTP(S) proxy for this entry's calls; entries with different proxies become
    different providers."""


class GuideKeyEntry(GuideEntry, frozen=True, kw_only=True, rename="kebab"):
    """One entry of `claude-api-key`, `gemini-api-key`, `openai-api-key`, `openrouter`, ..."""

    api_key: str


class ApiKeyEntry(_Strict, frozen=True, kw_only=True, rename="kebab"):
    """One key of an `openai-compatibility` entry. Its `proxy-url` overrides the entry's;
    every key of one entry must end up with the same proxy (one provider, one proxy)."""

    api_key: str
    proxy_url: str = ""


class CompatEntry(GuideEntry, frozen=True, kw_only=True, rename="kebab"):
    """One entry of `openai-compatibility`: a named OpenAI-compatible endpoint."""

    name: str
    api_key_entries: list[ApiKeyEntry] = []
    auth_type: Literal["api_key", "none"] = "api_key"
    """`none`: the endpoint takes no key (a local Ollama): routable without
    `api-key-entries`, and a key listed there is still sent when it is set."""


class KiroEntry(_Strict, frozen=True, kw_only=True, rename="kebab"):
    """One entry of `kiro`: a token file written by the Kiro IDE."""

    token_file: str
    prefix: str = ""
    region: str = ""
    """The AWS region of the API, when neither the token file nor its profile ARN names one."""
    models: list[GuideModel] = []
    excluded_models: list[str] = []
    priority: int = 0
    proxy_url: str = ""


class CopilotEntry(GuideEntry, frozen=True, kw_only=True, rename="kebab"):
    """One entry of `copilot`: a GitHub OAuth token (from the device flow or
    `gh auth token`) from which Copilot tokens are minted. An empty token is ignored."""

    github_token: str


GUIDE_KEY_PROVIDERS: dict[str, str] = {
    "claude_api_key": "claude",
    "gemini_api_key": "gemini",
    "openai_api_key": "openai",
    "mistral_api_key": "mistral",
    "groq_api_key": "groq",
    "deepseek_api_key": "deepseek",
    "minimax_api_key": "minimax",
    "roocode_api_key": "roocode",
    "kiloai_api_key": "kiloai",
    "openrouter": "openrouter",
    "together": "together",
    "fireworks": "fireworks",
    "novita": "novita",
    "siliconflow": "siliconflow",
}
"""User-guide list keys (as Config field names) and the built-in provider each feeds."""


# --- the whole file ------------------------------------------------------------------

Strategy = Literal["priority", "round-robin", "fill-first"]


MAX_ATTEMPTS_LIMIT = 16

DEFAULT_TIMEOUTS = TimeoutsConfig(first_byte_seconds=120.0)
"""What neither a provider nor `routing.timeouts` sets: an upstream that has not started
its answer after two minutes is taken for hung (no total: the request's deadline)."""


class RoutingConfig(_Strict, frozen=True, kw_only=True):
    strategy: Strategy = "priority"
    """`priority`: highest priority tier first, round-robin inside a tier.
    `round-robin`: every candidate in turn, priorities ignored.
    `fill-first`: always the first candidate (priority, then file order) until it fails."""
    max_attempts: int = 3
    """The retry budget: upstream calls one request may make, the first included. A
    retryable failure before the first byte moves the request to the next target of its
    plan (the next credential, then the next provider, then the fallback models) until
    this many were tried or the request's deadline is (nearly) spent."""
    fallback_models: list[str] | dict[str, str | list[str]] = []
    """Models tried after a model's own targets: a list for every model, or a map from a
    client model name (or alias) to its fallbacks, `"*"` for every model the map does not
    name. A model's own `fallback` comes first."""
    timeouts: TimeoutsConfig = TimeoutsConfig()
    """The defaults of every provider's `timeouts`; unset: `DEFAULT_TIMEOUTS`."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValueError(
                f"`max_attempts` must be from 1 to {MAX_ATTEMPTS_LIMIT}, got {self.max_attempts}"
            )

    def fallbacks_for(self, model: str) -> list[str]:
        """The routing-wide fallbacks of a client model name."""
        chosen = self.fallback_models
        if isinstance(chosen, list):
            return list(chosen)
        named = chosen.get(model, chosen.get("*", []))
        return [named] if isinstance(named, str) else list(named)


class RemoteManagementConfig(_Strict, frozen=True, kw_only=True, rename="kebab"):
    """Who may call the management API besides loopback clients (always allowed).
    CLIProxyAPI's `remote-management.allow-remote`, plus a list of networks."""

    allow_remote: bool = False
    """False: the management API answers loopback clients only (127.0.0.0/8, ::1)."""
    allowed_cidrs: list[str] = []
    """With `allow-remote: true`, only clients in these networks; empty: any address."""

    def __post_init__(self) -> None:
        if self.allowed_cidrs and not self.allow_remote:
            raise ValueError("`allowed-cidrs` needs `allow-remote: true`")
        for cidr in self.allowed_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"`{cidr}` is not a network (expected `10.0.0.0/8` or `fd00::/8`)") from None


class ResponsesConfig(_Strict, frozen=True, kw_only=True):
    """Responses kept for the Responses API's `store` and `previous_response_id`."""

    store: bool = True
    """False: nothing is kept (`store: true` is a no-op) and a `previous_response_id` is a 400."""
    ttl_seconds: int = 2592000
    """How long a stored response is kept (30 days, as OpenAI keeps them)."""

    def __post_init__(self) -> None:
        if self.ttl_seconds < 1:
            raise ValueError(f"`ttl_seconds` must be at least 1, got {self.ttl_seconds}")


class UsageConfig(_Strict, frozen=True, kw_only=True):
    """Usage records (one per request, on the `LLMBUS_USAGE` JetStream stream) and the
    daily aggregates auth keeps of them in Redis."""

    retention_days: int = 90
    """How long records stay on the stream and daily aggregates in Redis; also the
    longest window `GET /v1/usage` may ask for."""

    def __post_init__(self) -> None:
        if not 1 <= self.retention_days <= 3660:
            raise ValueError(f"`retention_days` must be between 1 and 3660, got {self.retention_days}")


class Config(_Strict, frozen=True, kw_only=True, rename="kebab"):
    api_keys: list[str | ClientKey] = []
    management_key: str = ""
    """Authorises the management API (`/v1/keys`, provider switches, logins)."""
    remote_management: RemoteManagementConfig = RemoteManagementConfig()
    routing: RoutingConfig = RoutingConfig()
    force_model_prefix: bool = False
    """When true, a plain model name only reaches providers that have no prefix."""
    excluded_models: list[str] = []
    """Model names no provider serves; `*` is a wildcard."""
    providers: dict[str, ProviderConfig] = {}
    responses: ResponsesConfig = ResponsesConfig()
    """The Responses API's stored responses (kept by auth, in Redis)."""
    usage: UsageConfig = UsageConfig()
    """Usage records and their daily aggregates (`GET /v1/usage`)."""

    claude_api_key: list[GuideKeyEntry] = []
    gemini_api_key: list[GuideKeyEntry] = []
    openai_api_key: list[GuideKeyEntry] = []
    mistral_api_key: list[GuideKeyEntry] = []
    groq_api_key: list[GuideKeyEntry] = []
    deepseek_api_key: list[GuideKeyEntry] = []
    minimax_api_key: list[GuideKeyEntry] = []
    roocode_api_key: list[GuideKeyEntry] = []
    kiloai_api_key: list[GuideKeyEntry] = []
    openrouter: list[GuideKeyEntry] = []
    together: list[GuideKeyEntry] = []
    fireworks: list[GuideKeyEntry] = []
    novita: list[GuideKeyEntry] = []
    siliconflow: list[GuideKeyEntry] = []
    openai_compatibility: list[CompatEntry] = []
    kiro: list[KiroEntry] = []
    copilot: list[CopilotEntry] = []

    def client_keys(self) -> list[ClientKey]:
        keys: list[ClientKey] = []
        for index, item in enumerate(self.api_keys):
            key = ClientKey(key=item, name=f"key-{index + 1}") if isinstance(item, str) else item
            if key.key:
                keys.append(key if key.name else ClientKey(key=key.key, name=f"key-{index + 1}"))
        return keys
