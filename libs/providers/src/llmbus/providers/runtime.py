"""Providers as configured: the registry's built-in metadata merged with the config file.

Every built-in provider is present, configured or not: one without credentials is
registered but not routable, and `unroutable_reason` says why. Everything that can be
worked out once per configuration (upstream names, effective features, exclusions) is
worked out here, so that routing a request is a few dict reads.
"""

from __future__ import annotations

import fnmatch
import re
from functools import cached_property

import msgspec

from llmbus.config import (
    CUSTOM_TYPE,
    Config,
    CooldownConfig,
    CredentialEntry,
    FeaturesConfig,
    HealthCheckConfig,
    LimitsConfig,
    ModelEntry,
    ProviderConfig,
)
from llmbus.config.model import DEFAULT_TIMEOUTS, TimeoutsConfig
from llmbus.providers.registry import (
    BUILTIN,
    DEFAULT_MAPPINGS,
    AuthType,
    Features,
    ProviderKind,
    ProviderSpec,
    builtin,
)

__all__ = ["ConfiguredProvider", "ProviderModel", "chat_url", "configured_providers", "is_excluded"]

_VERSION_SEGMENT = re.compile(r"/v\d+[a-z0-9]*(/|$)")


class ProviderModel(msgspec.Struct, frozen=True, kw_only=True):
    """A model as one provider serves it."""

    name: str
    upstream: str
    aliases: tuple[str, ...] = ()
    max_tokens: int | None = None
    features: Features = Features()
    fallbacks: tuple[str, ...] = ()
    """Models tried when none of this model's targets could answer (config `fallback`)."""


class ConfiguredProvider(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    name: str
    type: str
    """The built-in provider's name, or `custom` for an OpenAI-compatible endpoint."""
    spec: ProviderSpec
    endpoint: str
    enabled: bool = True
    configured: bool = True
    """False for a built-in that the config file does not mention."""
    auth_type: AuthType = AuthType.API_KEY
    credentials: tuple[CredentialEntry, ...] = ()
    models: tuple[ProviderModel, ...] = ()
    features: Features = Features()
    priority: int = 0
    prefix: str | None = None
    excluded_models: tuple[str, ...] = ()
    limits: LimitsConfig = LimitsConfig()
    cooldown: CooldownConfig = CooldownConfig()
    health_check: HealthCheckConfig = HealthCheckConfig()
    timeouts: TimeoutsConfig = DEFAULT_TIMEOUTS
    """First-byte and total timeouts of a call: the provider's, else the routing
    defaults, else `DEFAULT_TIMEOUTS`."""
    headers: dict[str, str] = {}
    auth_endpoint: str | None = None
    """Where credentials are minted or refreshed (Copilot, Kiro); None: the family's default."""
    region: str | None = None
    proxy_url: str | None = None

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def kind(self) -> ProviderKind:
        return self.spec.kind

    @cached_property
    def chat_url(self) -> str:
        return chat_url(self.endpoint, self.spec.chat_path)

    @property
    def max_tokens(self) -> int | None:
        known = [m.max_tokens for m in self.models if m.max_tokens]
        return max(known) if known else None

    @property
    def unroutable_reason(self) -> str | None:
        """Why requests cannot reach this provider, or None when they can."""
        if not self.enabled:
            return "disabled"
        if not self.credentials:
            if self.auth_type is AuthType.OAUTH_DEVICE_FLOW:
                return f"no credentials: sign in with the device flow at /v0/oauth/{self.type}"
            if self.auth_type is AuthType.TOKEN_FILE:
                return "no credentials: configure a token file"
            return "no credentials: configure an API key"
        if not self.models:
            return "no models"
        return None

    def credential(self, name: str) -> CredentialEntry | None:
        for entry in self.credentials:
            if entry.name == name:
                return entry
        return None

    def model(self, name: str) -> ProviderModel | None:
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, ProviderModel]:
        return {m.name: m for m in self.models}


def chat_url(endpoint: str, chat_path: str = "/v1/chat/completions") -> str:
    """`{endpoint}/chat/completions` when the endpoint carries a version segment
    (`.../v1`, `.../api/v1`, `.../v3/openai`), else `{endpoint}{chat_path}`."""
    base = endpoint.rstrip("/")
    path = base.split("://", 1)[-1].partition("/")[2]
    if _VERSION_SEGMENT.search("/" + path):
        return f"{base}/chat/completions"
    return f"{base}{chat_path}"


def is_excluded(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Whether `name` matches an exclusion: exact, or with `*` wildcards."""
    for pattern in patterns:
        if "*" in pattern:
            if fnmatch.fnmatchcase(name, pattern.replace("[", "[[]")):
                return True
        elif name == pattern:
            return True
    return False


def _features(base: Features, override: FeaturesConfig) -> Features:
    changes = {k: v for k in override.__struct_fields__ if (v := getattr(override, k)) is not None}
    return msgspec.structs.replace(base, **changes) if changes else base


def _custom_spec(name: str, entry: ProviderConfig) -> ProviderSpec:
    return ProviderSpec(
        name="custom",
        display_name=name,
        kind=ProviderKind.CUSTOM,
        family="openai",
        auth=AuthType.API_KEY,
        endpoint=entry.endpoint or "",
        features=Features(streaming=True, functions=True, vision=True),
    )


def _spec_for(name: str, entry: ProviderConfig) -> ProviderSpec:
    if entry.type == CUSTOM_TYPE:
        known = builtin(name)
        return known if known is not None and known.family == "openai" else _custom_spec(name, entry)
    if entry.type is None:
        return builtin(name) or _custom_spec(name, entry)
    spec = builtin(entry.type)
    if spec is None:
        # The config loader refuses this; a Config built in code may not have been checked.
        raise ValueError(f"provider `{name}`: unknown type `{entry.type}`")
    return spec


_EMBEDDING_FEATURES = Features(streaming=False, functions=False, vision=False, embeddings=True)
"""What an embedding model does: embeddings, nothing else."""


def _models(spec: ProviderSpec, entry: ProviderConfig, features: Features) -> tuple[ProviderModel, ...]:
    defaults = {m.name: m for m in (*spec.models, *spec.embedding_models)}
    entries = entry.model_entries() or [
        ModelEntry(name=m.name, upstream=m.upstream, max_tokens=m.max_tokens) for m in spec.models
    ]
    listed = {e.name for e in entries}
    entries += [ModelEntry(name=name) for name in entry.model_mappings if name not in listed]
    out: list[ProviderModel] = []
    for model in entries:
        if not model.enabled:
            continue
        known = defaults.get(model.name)
        upstream = (
            model.upstream
            or entry.model_mappings.get(model.name)
            or DEFAULT_MAPPINGS.get(model.name, {}).get(spec.name)
            or (known.upstream if known else None)
            or model.name
        )
        overrides = {
            key: value
            for key, value in (
                ("functions", model.supports_functions),
                ("streaming", model.supports_streaming),
                ("vision", model.supports_vision),
            )
            if value is not None
        }
        embeds = model.supports_embeddings
        if embeds is None:
            embeds = bool(known and known.embeddings)
        out.append(
            ProviderModel(
                name=model.name,
                upstream=upstream,
                aliases=tuple(model.aliases()),
                fallbacks=tuple(model.fallbacks()),
                max_tokens=model.max_tokens or (known.max_tokens if known else None),
                features=_EMBEDDING_FEATURES
                if embeds
                else msgspec.structs.replace(features, **overrides)
                if overrides
                else features,
            )
        )
    return tuple(out)


def _configured(name: str, entry: ProviderConfig, config: Config) -> ConfiguredProvider:
    spec = _spec_for(name, entry)
    features = _features(spec.features, entry.features)
    credentials = tuple(
        c if c.name else msgspec.structs.replace(c, name=f"key-{i + 1}")
        for i, c in enumerate(entry.credentials())
    )
    excluded = (*config.excluded_models, *entry.excluded_models)
    models = tuple(
        msgspec.structs.replace(m, aliases=tuple(a for a in m.aliases if not is_excluded(a, excluded)))
        for m in _models(spec, entry, features)
        if not is_excluded(m.name, excluded) and not is_excluded(m.upstream, excluded)
    )
    if any(c.token_file for c in credentials):
        auth = AuthType.TOKEN_FILE
    else:
        auth = AuthType(entry.auth_type) if entry.auth_type else spec.auth
    if auth is AuthType.NONE and not credentials:
        # A keyless upstream (a local Ollama): one credential with no secret, so that
        # selection, cooldowns and status work as for any other provider.
        credentials = (CredentialEntry(name="none"),)
    return ConfiguredProvider(
        name=name,
        type=spec.name,
        spec=spec,
        endpoint=(entry.endpoint or spec.endpoint).rstrip("/"),
        enabled=entry.enabled,
        auth_type=auth,
        credentials=credentials,
        models=models,
        features=features,
        priority=entry.priority,
        prefix=entry.prefix or None,
        excluded_models=excluded,
        limits=entry.limits,
        cooldown=entry.cooldown,
        health_check=entry.health_check,
        timeouts=entry.timeouts.over(config.routing.timeouts).over(DEFAULT_TIMEOUTS),
        headers=dict(entry.headers),
        auth_endpoint=entry.auth_endpoint.rstrip("/") if entry.auth_endpoint else None,
        region=entry.region or None,
        proxy_url=entry.proxy_url or None,
    )


def configured_providers(config: Config) -> dict[str, ConfiguredProvider]:
    """Every provider: the config file's, then each built-in it does not configure."""
    out = {name: _configured(name, entry, config) for name, entry in config.providers.items()}
    for name in BUILTIN:
        if name not in out:
            provider = _configured(name, ProviderConfig(), config)
            out[name] = msgspec.structs.replace(provider, configured=False)
    return out
