"""Check the `providers:` map, and fold the user-guide keys into it, so the rest of llmbus
sees one form.

- `providers:` entries: `type` must name a built-in or be `openai-compatible`; a name
  that is not a built-in's is a custom endpoint and needs `endpoint`; `proxy_url` must be
  an http(s) URL.
- `claude-api-key`, `openrouter`, ... (one list per provider) and `copilot`: entries that
  share their prefix, base URL, models, exclusions, headers, priority and proxy become
  one provider with one credential per entry. The provider is named after its built-in
  type (`claude`), or `<type>-<prefix>` when the entries have a prefix (`claude-prod`);
  other differences number it (`claude-2`). An entry whose key or token is empty is
  ignored (`${KEY:-}` left unset).
- `openai-compatibility`: one custom OpenAI-compatible provider per entry, named by its
  `name`, with a credential per `api-key-entries` item; `auth-type: none` makes it
  routable without a key. Its keys must share one proxy.
- `kiro`: token files; entries that share a prefix, region, models and proxy become one
  provider. An entry whose token file is empty is ignored.
- fallbacks (a model's `fallback`, `routing.fallback_models`): each name must be one a
  provider serves (a model, an alias, `prefix/model` or `provider/model`) and not the
  model itself. When some provider lists no models of its own (it serves its built-in
  list, which this package does not know), names that no listed model has are left to
  the router, which logs them.

An instance that the `providers:` map already declares receives the entries' credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import msgspec

from llmbus.config.errors import ConfigProblem, did_you_mean
from llmbus.config.model import (
    BUILTIN_PROVIDERS,
    CUSTOM_TYPE,
    GUIDE_KEY_PROVIDERS,
    CompatEntry,
    Config,
    CopilotEntry,
    CredentialEntry,
    GuideEntry,
    GuideKeyEntry,
    GuideModel,
    KiroEntry,
    ModelEntry,
    ProviderConfig,
)

__all__ = ["normalize", "proxy_problem"]

_MERGE_CONFLICTS = (
    "endpoint",
    "models",
    "excluded_models",
    "headers",
    "prefix",
    "priority",
    "proxy_url",
    "region",
)
"""What a guide entry may not set differently from the `providers:` entry it joins."""


def proxy_problem(url: str) -> str | None:
    """What is wrong with a proxy URL, or None. The URL itself is never repeated: it may
    carry a user and password."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme.startswith("socks"):
        return (
            f"SOCKS proxies (`{scheme}://`) are not supported (the HTTP client is installed "
            "without SOCKS support): use an http:// or https:// proxy"
        )
    if scheme not in ("http", "https"):
        got = f", got `{scheme}://`" if scheme and "://" in url else ""  # `user:pw@host` parses as a scheme
        return f"expected an http:// or https:// proxy URL, such as http://proxy.internal:3128{got}"
    if not parts.hostname:
        return "expected a host in the proxy URL, such as http://proxy.internal:3128"
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return "the proxy URL's port is not a number from 0 to 65535"
    return None


def _models(models: Sequence[GuideModel]) -> list[str | ModelEntry]:
    """`name` is the upstream model, sent as it is; `alias` the name clients use."""
    return [ModelEntry(name=m.alias or m.name, upstream=m.name, fallback=m.fallback) for m in models]


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


def _check_declared(name: str, provider: ProviderConfig, file: str, problems: list[ConfigProblem]) -> None:
    where = f"providers.{name}"
    kind = provider.type
    if kind is not None and kind != CUSTOM_TYPE and kind not in BUILTIN_PROVIDERS:
        problems.append(
            ConfigProblem(
                file,
                f"{where}.type",
                f"unknown provider type `{kind}`: expected a built-in ({', '.join(BUILTIN_PROVIDERS)}) "
                f"or `{CUSTOM_TYPE}` for any other OpenAI-compatible endpoint"
                + did_you_mean(kind, (*BUILTIN_PROVIDERS, CUSTOM_TYPE)),
            )
        )
    elif kind in (None, CUSTOM_TYPE) and name not in BUILTIN_PROVIDERS and not provider.endpoint:
        if kind is None:
            message = (
                f"`{name}` is not a built-in provider: set `type` to the built-in this entry "
                f"configures, or `type: {CUSTOM_TYPE}` and `endpoint` for a custom endpoint"
                + did_you_mean(name, BUILTIN_PROVIDERS)
            )
        else:
            message = f"expected `endpoint`: the base URL of the {CUSTOM_TYPE} endpoint"
        problems.append(ConfigProblem(file, where, message))
    if provider.proxy_url and (why := proxy_problem(provider.proxy_url)):
        problems.append(ConfigProblem(file, f"{where}.proxy_url", why))


def _guide_shape(entry: GuideEntry) -> object:
    """What makes two entries of one list the same provider (everything but the key)."""
    return (
        entry.prefix,
        entry.base_url,
        entry.models,
        entry.excluded_models,
        entry.headers,
        entry.priority,
        entry.proxy_url,
    )


def _guide_provider(kind: str, entry: GuideEntry, credential: CredentialEntry) -> ProviderConfig:
    return ProviderConfig(
        type=kind,
        endpoint=entry.base_url or None,
        api_keys=[credential],
        models=_models(entry.models),
        excluded_models=list(entry.excluded_models),
        headers=dict(entry.headers),
        prefix=entry.prefix or None,
        priority=entry.priority,
        proxy_url=entry.proxy_url or None,
    )


def normalize(config: Config, file: str, problems: list[ConfigProblem]) -> Config:
    providers: dict[str, ProviderConfig] = dict(config.providers)
    declared = set(providers)
    shapes: dict[str, object] = {}
    for name, provider in config.providers.items():
        _check_declared(name, provider, file, problems)

    def add(name: str, where: str, provider: ProviderConfig, shape: object) -> None:
        existing = providers.get(name)
        if existing is None:
            providers[name] = provider
            shapes[name] = shape
            return
        if name in declared:
            overrides = [
                key
                for key in _MERGE_CONFLICTS
                if getattr(provider, key) and getattr(provider, key) != getattr(existing, key)
            ]
            if overrides:
                problems.append(
                    ConfigProblem(
                        file,
                        where,
                        f"`providers.{name}` already configures {', '.join(overrides)} differently: "
                        "give this entry a prefix, or move its credentials to `providers`",
                    )
                )
                return
        providers[name] = msgspec.structs.replace(existing, api_keys=[*existing.api_keys, *provider.api_keys])

    def proxy_ok(url: str, where: str) -> bool:
        why = proxy_problem(url) if url else None
        if why:
            problems.append(ConfigProblem(file, where, why))
        return why is None

    for field, kind in GUIDE_KEY_PROVIDERS.items():
        entries: list[GuideKeyEntry] = getattr(config, field)
        for index, entry in enumerate(entries):
            where = f"{_kebab(field)}[{index}]"
            if not entry.api_key:
                continue  # `${KEY:-}` left empty: not configured
            if not proxy_ok(entry.proxy_url, f"{where}.proxy-url"):
                continue
            shape = _guide_shape(entry)
            name = _instance_name(kind, entry.prefix, set(providers), shape, shapes, declared)
            credential = CredentialEntry(api_key=entry.api_key, name=f"{_kebab(field)}-{index + 1}")
            add(name, where, _guide_provider(kind, entry, credential), shape)

    for index, copilot in enumerate(config.copilot):
        where = f"copilot[{index}]"
        if not copilot.github_token or not proxy_ok(copilot.proxy_url, f"{where}.proxy-url"):
            continue  # an empty token: not configured
        shape = _guide_shape(copilot)
        name = _instance_name("copilot", copilot.prefix, set(providers), shape, shapes, declared)
        add(name, where, _copilot_provider(copilot, index), shape)

    for index, compat in enumerate(config.openai_compatibility):
        where = f"openai-compatibility[{index}]"
        _add_compat(compat, where, file, providers, problems)

    for index, kiro in enumerate(config.kiro):
        where = f"kiro[{index}]"
        if not kiro.token_file or not proxy_ok(kiro.proxy_url, f"{where}.proxy-url"):
            continue  # an empty token file: not configured
        kiro_shape: object = (
            kiro.prefix,
            kiro.region,
            kiro.models,
            kiro.excluded_models,
            kiro.priority,
            kiro.proxy_url,
        )
        name = _instance_name("kiro", kiro.prefix, set(providers), kiro_shape, shapes, declared)
        add(name, where, _kiro_provider(kiro, index), kiro_shape)

    _check_fallbacks(config, providers, file, problems)
    return msgspec.structs.replace(config, providers=providers)


def _served_names(providers: dict[str, ProviderConfig]) -> tuple[set[str], bool]:
    """Every client model name the providers list (plain, `prefix/`, `provider/`), and
    whether that is all of them (False when a provider serves its built-in list)."""
    names: set[str] = set()
    complete = True
    for name, provider in providers.items():
        entries = provider.model_entries()
        if not entries and not provider.model_mappings:
            complete = False
        listed = [n for entry in entries for n in (entry.name, *entry.aliases())]
        listed += list(provider.model_mappings)
        for model in listed:
            names.update({model, f"{name}/{model}"})
            if provider.prefix:
                names.add(f"{provider.prefix}/{model}")
    return names, complete


def _check_fallbacks(
    config: Config, providers: dict[str, ProviderConfig], file: str, problems: list[ConfigProblem]
) -> None:
    served, complete = _served_names(providers)

    def check(where: str, own: tuple[str, ...], fallbacks: list[str]) -> None:
        for index, fallback in enumerate(fallbacks):
            at = f"{where}[{index}]" if len(fallbacks) > 1 else where
            if not fallback.strip():
                problems.append(ConfigProblem(file, at, "expected a model name, got an empty one"))
            elif fallback in own:
                problems.append(
                    ConfigProblem(file, at, f"`{fallback}` cannot be its own fallback: name another model")
                )
            elif complete and fallback not in served:
                problems.append(
                    ConfigProblem(
                        file,
                        at,
                        f"no provider serves `{fallback}`: a fallback must be a model name, an alias, "
                        "`prefix/model` or `provider/model` of a configured provider"
                        + did_you_mean(fallback, served),
                    )
                )

    for name, provider in providers.items():
        for index, entry in enumerate(provider.model_entries()):
            where = f"providers.{name}.models[{index}].fallback"
            check(where, (entry.name, *entry.aliases()), entry.fallbacks())
    chosen = config.routing.fallback_models
    if isinstance(chosen, list):
        check("routing.fallback_models", (), chosen)
    else:
        for model, named in chosen.items():
            listed = [named] if isinstance(named, str) else list(named)
            check(f"routing.fallback_models.{model}", () if model == "*" else (model,), listed)


def _add_compat(
    compat: CompatEntry,
    where: str,
    file: str,
    providers: dict[str, ProviderConfig],
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
    found = len(problems)
    if compat.proxy_url and (why := proxy_problem(compat.proxy_url)):
        problems.append(ConfigProblem(file, f"{where}.proxy-url", why))
    keys = [(i, item) for i, item in enumerate(compat.api_key_entries) if item.api_key]
    for i, item in keys:
        if item.proxy_url and (why := proxy_problem(item.proxy_url)):
            problems.append(ConfigProblem(file, f"{where}.api-key-entries[{i}].proxy-url", why))
    proxies = {item.proxy_url or compat.proxy_url for _, item in keys}
    if len(proxies) > 1:
        problems.append(
            ConfigProblem(
                file,
                f"{where}.api-key-entries",
                "these keys go through different proxies (a key's proxy-url, else the entry's), "
                "but one entry is one provider with one proxy: give each proxy an "
                "`openai-compatibility` entry of its own",
            )
        )
    if len(problems) > found:
        return
    providers[compat.name] = ProviderConfig(
        type=CUSTOM_TYPE,
        endpoint=compat.base_url,
        auth_type="none" if compat.auth_type == "none" else None,
        api_keys=[CredentialEntry(api_key=item.api_key, name=f"key-{i + 1}") for i, item in keys],
        models=_models(compat.models),
        excluded_models=list(compat.excluded_models),
        headers=dict(compat.headers),
        priority=compat.priority,
        prefix=compat.prefix or None,
        proxy_url=proxies.pop() if proxies else (compat.proxy_url or None),
    )


def _copilot_provider(copilot: CopilotEntry, index: int) -> ProviderConfig:
    credential = CredentialEntry(github_token=copilot.github_token, name=f"copilot-{index + 1}")
    return _guide_provider("copilot", copilot, credential)


def _kiro_provider(kiro: KiroEntry, index: int) -> ProviderConfig:
    return ProviderConfig(
        type="kiro",
        auth_type="token_file",
        api_keys=[CredentialEntry(token_file=kiro.token_file, name=f"token-file-{index + 1}")],
        models=_models(kiro.models),
        excluded_models=list(kiro.excluded_models),
        prefix=kiro.prefix or None,
        priority=kiro.priority,
        region=kiro.region or None,
        proxy_url=kiro.proxy_url or None,
    )
