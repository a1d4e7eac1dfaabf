"""Providers as configured: the registry's built-in metadata merged with the config file."""

from __future__ import annotations

import msgspec

from llmbus.config import Config, CredentialEntry, ModelEntry
from llmbus.providers.registry import AuthType, Features, ProviderKind, ProviderSpec, builtin

__all__ = ["ConfiguredProvider", "configured_providers"]


class ConfiguredProvider(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    spec: ProviderSpec
    endpoint: str
    enabled: bool
    credentials: tuple[CredentialEntry, ...]
    models: tuple[ModelEntry, ...]
    model_mappings: dict[str, str]
    priority: int = 0

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def features(self) -> Features:
        return self.spec.features

    def secret(self, credential: str) -> str | None:
        for entry in self.credentials:
            if entry.name == credential:
                return entry.api_key
        return None


def configured_providers(config: Config) -> dict[str, ConfiguredProvider]:
    out: dict[str, ConfiguredProvider] = {}
    for name, entry in config.providers.items():
        spec = builtin(entry.type or name) or ProviderSpec(
            name=name,
            kind=ProviderKind.CUSTOM,
            family="openai",
            auth=AuthType.API_KEY,
            endpoint=entry.endpoint or "",
            features=Features(streaming=True, functions=True, vision=True),
        )
        credentials = tuple(
            CredentialEntry(api_key=c.api_key, name=c.name or f"key-{i + 1}")
            for i, c in enumerate(entry.credentials())
        )
        models = tuple(entry.model_entries()) or tuple(ModelEntry(name=m.name) for m in spec.models)
        out[name] = ConfiguredProvider(
            name=name,
            spec=spec,
            endpoint=(entry.endpoint or spec.endpoint).rstrip("/"),
            enabled=entry.enabled,
            credentials=credentials,
            models=models,
            model_mappings=dict(entry.model_mappings),
            priority=entry.priority,
        )
    return out
