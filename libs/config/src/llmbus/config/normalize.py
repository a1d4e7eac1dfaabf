"""Fold the user-guide keys into the `providers:` map, so the rest of llmbus sees one form.

- `claude-api-key`, `openrouter`, ... (one list per provider): entries that share their
  prefix, base URL, models, exclusions, headers and priority become one provider with one
  credential per entry. The provider is named after its built-in type (`claude`), or
  `<type>-<prefix>` when the entries have a prefix (`claude-prod`); other differences
  number it (`claude-2`).
- `openai-compatibility`: one custom OpenAI-compatible provider per entry, named by its
  `name`, with a credential per `api-key-entries` item.
- `kiro`: token files; entries that share a prefix become one provider.

An instance that the `providers:` map already declares receives the entries' credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from llmbus.config.errors import ConfigProblem
from llmbus.config.model import (
    GUIDE_KEY_PROVIDERS,
    CompatEntry,
    Config,
    CredentialEntry,
    GuideKeyEntry,
    GuideModel,
    KiroEntry,
    ModelEntry,
    ProviderConfig,
)

__all__ = ["normalize"]


def _models(models: Sequence[GuideModel]) -> list[str | ModelEntry]:
    """`name` is the upstream model, sent as it is; `alias` the name clients use."""
    return [ModelEntry(name=m.alias or m.name, upstream=m.name) for m in models]


def _kebab(field: str) -> str:
    return field.replace("_", "-")


def _instance_name(
    kind: str, prefix: str, taken: set[str], shape: object, shapes: dict[str, object], declared: set[str]
) -> str:
    base = kind if not prefix else (prefix if prefix.startswith(f"{kind}-") else f"{kind}-{prefix}")
    if base in declared:
        return base  # the `providers:` entry receives the credentials (or a conflict is reported)
    name, n = base, 1
    while name in taken and shapes.get(name) != shape:
        n += 1
        name = f"{base}-{n}"
    return name


def normalize(config: Config, file: str, problems: list[ConfigProblem]) -> Config:
    providers: dict[str, ProviderConfig] = dict(config.providers)
    declared = set(providers)
    shapes: dict[str, object] = {}

    def add(name: str, where: str, provider: ProviderConfig, shape: object) -> None:
        existing = providers.get(name)
        if existing is None:
            providers[name] = provider
            shapes[name] = shape
            return
        if name in declared:
            overrides = [
                key
                for key in ("endpoint", "models", "excluded_models", "headers", "prefix")
                if getattr(provider, key) and getattr(provider, key) != getattr(existing, key)
            ]
            if overrides:
                problems.append(
                    ConfigProblem(
                        file,
                        where,
                        f"`providers.{name}` already configures {', '.join(overrides)}: "
                        "give this entry a prefix, or move its credentials to `providers`",
                    )
                )
                return
        providers[name] = msgspec.structs.replace(existing, api_keys=[*existing.api_keys, *provider.api_keys])

    for field, kind in GUIDE_KEY_PROVIDERS.items():
        entries: list[GuideKeyEntry] = getattr(config, field)
        for index, entry in enumerate(entries):
            where = f"{_kebab(field)}[{index}]"
            if not entry.api_key:
                continue  # `${KEY:-}` left empty: not configured
            shape: object = (
                entry.prefix,
                entry.base_url,
                entry.models,
                entry.excluded_models,
                entry.headers,
                entry.priority,
            )
            name = _instance_name(kind, entry.prefix, set(providers), shape, shapes, declared)
            add(
                name,
                where,
                ProviderConfig(
                    type=kind,
                    endpoint=entry.base_url or None,
                    api_keys=[
                        CredentialEntry(api_key=entry.api_key, name=f"{field.replace('_', '-')}-{index + 1}")
                    ],
                    models=_models(entry.models),
                    excluded_models=list(entry.excluded_models),
                    headers=dict(entry.headers),
                    prefix=entry.prefix or None,
                    priority=entry.priority,
                ),
                shape,
            )

    for index, compat in enumerate(config.openai_compatibility):
        where = f"openai-compatibility[{index}]"
        _add_compat(compat, where, file, providers, declared, problems)

    for index, kiro in enumerate(config.kiro):
        where = f"kiro[{index}]"
        kiro_shape: object = (kiro.prefix, kiro.region, kiro.models, kiro.excluded_models, kiro.priority)
        name = _instance_name("kiro", kiro.prefix, set(providers), kiro_shape, shapes, declared)
        add(name, where, _kiro_provider(kiro, index), kiro_shape)

    return msgspec.structs.replace(config, providers=providers)


def _add_compat(
    compat: CompatEntry,
    where: str,
    file: str,
    providers: dict[str, ProviderConfig],
    declared: set[str],
    problems: list[ConfigProblem],
) -> None:
    if compat.name in providers:
        problems.append(
            ConfigProblem(file, f"{where}.name", f"a provider named `{compat.name}` is already configured")
        )
        return
    if not compat.base_url:
        problems.append(ConfigProblem(file, f"{where}.base-url", "expected the endpoint's base URL"))
        return
    credentials: list[str | CredentialEntry] = [
        CredentialEntry(api_key=item.api_key, name=f"key-{i + 1}")
        for i, item in enumerate(compat.api_key_entries)
        if item.api_key
    ]
    extra: dict[str, Any] = {}
    if compat.prefix:
        extra["prefix"] = compat.prefix
    providers[compat.name] = ProviderConfig(
        type="openai-compatible",
        endpoint=compat.base_url,
        api_keys=credentials,
        models=_models(compat.models),
        excluded_models=list(compat.excluded_models),
        headers=dict(compat.headers),
        priority=compat.priority,
        **extra,
    )


def _kiro_provider(kiro: KiroEntry, index: int) -> ProviderConfig:
    return ProviderConfig(
        type="kiro",
        auth_type="token_file",
        api_keys=[CredentialEntry(token_file=kiro.token_file, name=f"token-file-{index + 1}")],
        models=_models(kiro.models),
        excluded_models=list(kiro.excluded_models),
        prefix=kiro.prefix or None,
        priority=kiro.priority,
    )
