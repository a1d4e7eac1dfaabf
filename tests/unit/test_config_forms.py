"""The two configuration forms (the spec's `providers:` map and the user-guide keys)
normalising into one model, their errors, and reloading the file at run time."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import pytest

from llmbus.config import (
    BUILTIN_PROVIDERS,
    Config,
    ConfigError,
    ConfigWatcher,
    CredentialEntry,
    ProviderConfig,
    load_config,
    parse_config,
)
from llmbus.proto import ChatRequest, Message, Needs, Target
from llmbus.providers import BUILTIN, AuthType, ProviderKind, configured_providers
from llmbus.providers.adapters import OpenAICompatible
from llmbus.providers.adapters.base import StaticKeys
from llmbus.routing import Catalog, LiveState

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBLEM_LINE = re.compile(r"^cfg\.yaml:\d+:\d+: \S+: .+$")


def parse(text: str, environ: dict[str, str] | None = None) -> Config:
    return parse_config(text, "cfg.yaml", environ=environ or {})


def api_keys(config: Config, provider: str) -> list[str]:
    return [c.api_key for c in config.providers[provider].credentials()]


def problem(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, environ)
    return str(caught.value)


# --- claude-api-key and the other per-provider lists -------------------------------------


def test_a_claude_api_key_entry_without_prefix_becomes_the_claude_provider() -> None:
    config = parse("claude-api-key:\n  - api-key: sk-a\n")
    assert set(config.providers) == {"claude"}
    claude = config.providers["claude"]
    assert claude.type == "claude"
    assert claude.prefix is None
    assert api_keys(config, "claude") == ["sk-a"]
    assert [c.name for c in claude.credentials()] == ["claude-api-key-1"]


def test_a_claude_api_key_entry_with_a_prefix_becomes_claude_dash_prefix() -> None:
    config = parse("claude-api-key:\n  - api-key: sk-p\n    prefix: prod\n")
    assert set(config.providers) == {"claude-prod"}
    assert config.providers["claude-prod"].prefix == "prod"
    assert config.providers["claude-prod"].type == "claude"


def test_a_prefix_that_already_names_the_type_is_not_doubled() -> None:
    config = parse("claude-api-key:\n  - api-key: sk-p\n    prefix: claude-prod\n")
    assert set(config.providers) == {"claude-prod"}
    assert config.providers["claude-prod"].prefix == "claude-prod"


def test_claude_entries_with_and_without_prefix_become_two_providers() -> None:
    config = parse("claude-api-key:\n  - api-key: sk-a\n  - api-key: sk-p\n    prefix: claude-prod\n")
    assert set(config.providers) == {"claude", "claude-prod"}
    assert api_keys(config, "claude") == ["sk-a"]
    assert api_keys(config, "claude-prod") == ["sk-p"]


def test_entries_of_the_same_shape_merge_into_one_provider_with_several_credentials() -> None:
    config = parse("claude-api-key:\n  - api-key: sk-1\n  - api-key: sk-2\n  - api-key: sk-3\n")
    assert set(config.providers) == {"claude"}
    assert api_keys(config, "claude") == ["sk-1", "sk-2", "sk-3"]
    provider = configured_providers(config)["claude"]
    assert [c.name for c in provider.credentials] == [
        "claude-api-key-1",
        "claude-api-key-2",
        "claude-api-key-3",
    ]


def test_entries_of_different_shapes_become_numbered_providers() -> None:
    config = parse(
        "claude-api-key:\n"
        "  - api-key: sk-1\n"
        "  - api-key: sk-2\n    base-url: https://proxy.example.com\n"
        "  - api-key: sk-3\n"
        "  - api-key: sk-4\n    base-url: https://proxy.example.com\n"
    )
    assert set(config.providers) == {"claude", "claude-2"}
    assert api_keys(config, "claude") == ["sk-1", "sk-3"]
    assert api_keys(config, "claude-2") == ["sk-2", "sk-4"]
    assert config.providers["claude-2"].endpoint == "https://proxy.example.com"
    assert config.providers["claude"].endpoint is None


def test_guide_entries_become_routable_builtin_providers() -> None:
    config = parse("claude-api-key:\n  - api-key: sk-a\n  - api-key: sk-p\n    prefix: prod\n")
    providers = configured_providers(config)
    for name in ("claude", "claude-prod"):
        assert providers[name].unroutable_reason is None, name
        assert providers[name].kind is ProviderKind.DIRECT
        assert providers[name].endpoint == "https://api.anthropic.com"
        assert "claude-3-5-sonnet" in {m.name for m in providers[name].models}


@pytest.mark.parametrize(
    ("key", "provider"),
    [
        ("gemini-api-key", "gemini"),
        ("openai-api-key", "openai"),
        ("mistral-api-key", "mistral"),
        ("groq-api-key", "groq"),
        ("deepseek-api-key", "deepseek"),
        ("minimax-api-key", "minimax"),
        ("roocode-api-key", "roocode"),
        ("kiloai-api-key", "kiloai"),
        ("openrouter", "openrouter"),
        ("together", "together"),
        ("fireworks", "fireworks"),
        ("novita", "novita"),
        ("siliconflow", "siliconflow"),
    ],
)
def test_each_guide_list_key_feeds_its_builtin(key: str, provider: str) -> None:
    config = parse(f"{key}:\n  - api-key: sk-x\n")
    assert set(config.providers) == {provider}
    assert config.providers[provider].type == provider
    assert configured_providers(config)[provider].unroutable_reason is None


def test_an_aggregator_entry_carries_base_url_prefix_headers_and_aliased_models() -> None:
    config = parse(
        "openrouter:\n"
        "  - api-key: sk-or\n"
        "    base-url: https://openrouter.example.com/api/v1\n"
        "    prefix: or\n"
        "    headers: {X-Title: llmbus}\n"
        "    models:\n"
        "      - name: anthropic/claude-3.5-sonnet\n"
        "        alias: sonnet\n"
        "      - name: openai/gpt-4o\n"
        "        alias: gpt4o\n"
    )
    assert set(config.providers) == {"openrouter-or"}
    provider = configured_providers(config)["openrouter-or"]
    assert provider.type == "openrouter"
    assert provider.kind is ProviderKind.AGGREGATOR
    assert provider.endpoint == "https://openrouter.example.com/api/v1"
    assert provider.prefix == "or"
    assert provider.headers == {"X-Title": "llmbus"}
    assert [(m.name, m.upstream) for m in provider.models] == [
        ("sonnet", "anthropic/claude-3.5-sonnet"),
        ("gpt4o", "openai/gpt-4o"),
    ]


def test_a_guide_model_without_alias_is_served_under_its_own_name() -> None:
    config = parse("openrouter:\n  - api-key: k\n    models: [{name: meta-llama/llama-3-70b}]\n")
    provider = configured_providers(config)["openrouter"]
    assert [(m.name, m.upstream) for m in provider.models] == [
        ("meta-llama/llama-3-70b", "meta-llama/llama-3-70b")
    ]


def test_a_guide_model_name_is_sent_upstream_verbatim() -> None:
    config = parse("openai-api-key:\n  - api-key: k\n    models: [{name: gpt-4-turbo}]\n")
    provider = configured_providers(config)["openai"]
    assert [(m.name, m.upstream) for m in provider.models] == [("gpt-4-turbo", "gpt-4-turbo")]


def test_guide_excluded_models_reach_the_provider() -> None:
    config = parse('openrouter:\n  - api-key: k\n    excluded-models: ["*:free"]\n')
    provider = configured_providers(config)["openrouter"]
    assert provider.excluded_models == ("*:free",)


# --- openai-compatibility ----------------------------------------------------------------


def test_an_openai_compatibility_entry_becomes_a_custom_provider_with_a_key_per_entry() -> None:
    config = parse(
        "openai-compatibility:\n"
        "  - name: local-llm\n"
        "    prefix: local\n"
        "    base-url: http://127.0.0.1:11434/v1\n"
        "    api-key-entries:\n"
        "      - api-key: k1\n"
        "      - api-key: k2\n"
        "    models:\n"
        "      - name: llama3.1:8b\n"
        "        alias: llama\n"
    )
    assert set(config.providers) == {"local-llm"}
    assert config.providers["local-llm"].type == "openai-compatible"
    provider = configured_providers(config)["local-llm"]
    assert provider.kind is ProviderKind.CUSTOM
    assert provider.type == "custom"
    assert provider.endpoint == "http://127.0.0.1:11434/v1"
    assert provider.chat_url == "http://127.0.0.1:11434/v1/chat/completions"
    assert provider.prefix == "local"
    assert [c.api_key for c in provider.credentials] == ["k1", "k2"]
    assert len({c.name for c in provider.credentials}) == 2
    assert [(m.name, m.upstream) for m in provider.models] == [("llama", "llama3.1:8b")]
    assert provider.unroutable_reason is None


def test_an_openai_compatibility_entry_without_keys_is_registered_but_not_routable() -> None:
    config = parse(
        "openai-compatibility:\n  - name: local\n    base-url: http://h/v1\n"
        "    api-key-entries: [{api-key: ''}]\n    models: [{name: m}]\n"
    )
    provider = configured_providers(config)["local"]
    assert provider.credentials == ()
    assert provider.unroutable_reason == "no credentials: configure an API key"


def test_an_openai_compatibility_entry_needs_a_base_url() -> None:
    assert problem("openai-compatibility:\n  - name: loc\n") == (
        "cfg.yaml:2:5: openai-compatibility[0].base-url: expected the endpoint's base URL"
    )


# --- kiro ---------------------------------------------------------------------------------


def test_a_kiro_token_file_entry_makes_a_token_file_provider() -> None:
    config = parse("kiro:\n  - token-file: /home/me/.aws/sso/cache/kiro-auth-token.json\n")
    assert set(config.providers) == {"kiro"}
    kiro = configured_providers(config)["kiro"]
    assert kiro.auth_type is AuthType.TOKEN_FILE
    assert [c.token_file for c in kiro.credentials] == ["/home/me/.aws/sso/cache/kiro-auth-token.json"]
    assert kiro.unroutable_reason is None
    assert kiro.kind is ProviderKind.PROPRIETARY
    assert "claude-sonnet-4-5" in {m.name for m in kiro.models}


def test_kiro_entries_with_a_prefix_get_their_own_provider() -> None:
    config = parse(
        "kiro:\n  - token-file: /a.json\n  - token-file: /b.json\n    prefix: work\n  - token-file: /c.json\n"
    )
    assert set(config.providers) == {"kiro", "kiro-work"}
    providers = configured_providers(config)
    assert [c.token_file for c in providers["kiro"].credentials] == ["/a.json", "/c.json"]
    assert [c.token_file for c in providers["kiro-work"].credentials] == ["/b.json"]
    assert providers["kiro-work"].prefix == "work"
    assert providers["kiro-work"].auth_type is AuthType.TOKEN_FILE


def test_a_token_file_in_the_providers_map_also_switches_auth_to_token_file() -> None:
    config = parse("providers:\n  kiro:\n    token_file: /t.json\n")
    assert configured_providers(config)["kiro"].auth_type is AuthType.TOKEN_FILE


# --- secrets from the environment --------------------------------------------------------


def test_secret_references_resolve_from_the_given_environment() -> None:
    config = parse(
        "claude-api-key:\n  - api-key: ${CLAUDE_KEY}\n"
        "openai-compatibility:\n  - name: loc\n    base-url: ${LOC_URL:-http://fallback/v1}\n"
        "    api-key-entries: [{api-key: '${LOC_KEY}'}]\n",
        environ={"CLAUDE_KEY": "sk-env", "LOC_KEY": "lk"},
    )
    assert api_keys(config, "claude") == ["sk-env"]
    assert config.providers["loc"].endpoint == "http://fallback/v1"
    assert api_keys(config, "loc") == ["lk"]


def test_a_reference_inside_a_longer_string_is_replaced_in_place() -> None:
    config = parse("claude-api-key:\n  - api-key: pre-${K}-post\n", environ={"K": "mid"})
    assert api_keys(config, "claude") == ["pre-mid-post"]


def test_an_entry_whose_api_key_resolves_empty_is_ignored() -> None:
    config = parse(
        "claude-api-key:\n  - api-key: ${CLAUDE_KEY:-}\n  - api-key: ${OTHER:-}\n    prefix: prod\n"
        "openrouter:\n  - api-key: ''\n",
    )
    assert config.providers == {}
    providers = configured_providers(config)
    assert "claude-prod" not in providers
    assert providers["claude"].configured is False
    assert providers["claude"].unroutable_reason is not None


def test_an_empty_entry_does_not_stop_a_later_one_from_configuring_the_provider() -> None:
    config = parse("claude-api-key:\n  - api-key: ${A:-}\n  - api-key: ${B}\n", environ={"B": "sk-b"})
    assert api_keys(config, "claude") == ["sk-b"]


def test_a_variable_set_to_the_empty_string_counts_as_unset() -> None:
    assert problem("claude-api-key:\n  - api-key: ${K}\n", environ={"K": ""}) == (
        "cfg.yaml:2:14: claude-api-key[0].api-key: environment variable K is not set"
    )


# --- both forms together -----------------------------------------------------------------


def test_both_forms_mix_into_one_providers_map() -> None:
    config = parse(
        "providers:\n  openai:\n    api_key: sk-o\n"
        "claude-api-key:\n  - api-key: sk-c\n"
        "kiro:\n  - token-file: /k.json\n"
        "openai-compatibility:\n  - name: loc\n    base-url: http://loc/v1\n"
    )
    assert set(config.providers) == {"openai", "claude", "kiro", "loc"}
    providers = configured_providers(config)
    assert all(providers[n].configured for n in ("openai", "claude", "kiro", "loc"))


def test_an_openai_compatibility_name_taken_by_the_providers_map_is_reported() -> None:
    text = "providers:\n  openai: {}\nopenai-compatibility:\n  - name: openai\n    base-url: http://x\n"
    assert problem(text) == (
        "cfg.yaml:4:11: openai-compatibility[0].name: a provider named `openai` is already configured"
    )


def test_an_openai_compatibility_name_taken_by_a_guide_list_is_reported() -> None:
    text = (
        "claude-api-key:\n  - api-key: a\nopenai-compatibility:\n  - name: claude\n    base-url: http://x\n"
    )
    assert problem(text) == (
        "cfg.yaml:4:11: openai-compatibility[0].name: a provider named `claude` is already configured"
    )


def test_a_guide_entry_adds_its_credentials_to_the_same_provider_in_the_providers_map() -> None:
    config = parse("providers:\n  claude:\n    api_key: sk-0\nclaude-api-key:\n  - api-key: sk-1\n")
    assert set(config.providers) == {"claude"}
    assert api_keys(config, "claude") == ["sk-0", "sk-1"]


def test_a_guide_entry_overriding_a_declared_providers_endpoint_is_reported() -> None:
    text = (
        "providers:\n  claude:\n    endpoint: https://a.example.com\n"
        "claude-api-key:\n  - api-key: sk-1\n    base-url: https://b.example.com\n"
    )
    message = problem(text)
    assert message.startswith("cfg.yaml:")
    assert "claude-api-key[0]" in message
    assert "`providers.claude` already configures endpoint" in message


def test_a_prefixed_guide_entry_sits_beside_a_declared_provider() -> None:
    config = parse(
        "providers:\n  claude:\n    api_key: sk-0\nclaude-api-key:\n  - api-key: sk-1\n    prefix: prod\n"
    )
    assert set(config.providers) == {"claude", "claude-prod"}
    assert api_keys(config, "claude") == ["sk-0"]
    assert api_keys(config, "claude-prod") == ["sk-1"]


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bogus: 1\n", "cfg.yaml:1:1: <top>: unknown key `bogus`"),
        (
            "claude-api-keys:\n  - api-key: x\n",
            "cfg.yaml:1:1: <top>: unknown key `claude-api-keys`; did you mean `claude-api-key`?",
        ),
        (
            "providers:\n  openai:\n    bogus: 1\n",
            "cfg.yaml:3:5: providers.openai: unknown key `bogus`",
        ),
        (
            "providers:\n  openai:\n    features:\n      telepathy: true\n",
            "cfg.yaml:4:7: providers.openai.features: unknown key `telepathy`",
        ),
        (
            "claude-api-key:\n  - api-key: x\n    bogus: 1\n",
            "cfg.yaml:3:5: claude-api-key[0]: unknown key `bogus`",
        ),
        (
            "kiro:\n  - token_file: /t\n",
            "cfg.yaml:2:5: kiro[0]: unknown key `token_file`; did you mean `token-file`?",
        ),
        (
            "openai-compatibility:\n  - name: a\n    base-url: http://a/v1\n"
            "    api-key-entries:\n      - api-key: k\n        secret: 1\n",
            "cfg.yaml:6:9: openai-compatibility[0].api-key-entries[0]: unknown key `secret`",
        ),
        (
            "routing:\n  strategy: priority\n  mode: x\n",
            "cfg.yaml:3:3: routing: unknown key `mode`",
        ),
        (
            "claude-api-key:\n  - prefix: p\n",
            "cfg.yaml:2:5: claude-api-key[0]: missing required key `api-key`",
        ),
    ],
)
def test_an_unknown_or_missing_key_is_one_line_naming_file_position_and_key_path(
    text: str, expected: str
) -> None:
    assert problem(text) == expected


def test_problems_in_several_providers_are_one_line_each() -> None:
    message = problem("providers:\n  a:\n    bogus: 1\n  b:\n    models: [{name: x, upstrem: y}]\n")
    lines = message.splitlines()
    assert lines == [
        "cfg.yaml:3:5: providers.a: unknown key `bogus`",
        "cfg.yaml:5:24: providers.b.models[0]: unknown key `upstrem`; did you mean `upstream`?",
    ]
    assert all(PROBLEM_LINE.match(line) for line in lines)


@pytest.mark.parametrize("strategy", ["priority", "round-robin", "fill-first"])
def test_each_routing_strategy_is_accepted(strategy: str) -> None:
    assert parse(f"routing:\n  strategy: {strategy}\n").routing.strategy == strategy


def test_the_routing_strategy_defaults_to_priority() -> None:
    assert parse("").routing.strategy == "priority"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "random",
            "cfg.yaml:2:13: routing.strategy: invalid value 'random'; "
            "expected one of: priority, round-robin, fill-first",
        ),
        (
            "round_robin",
            "cfg.yaml:2:13: routing.strategy: invalid value 'round_robin'; "
            "expected one of: priority, round-robin, fill-first",
        ),
        ("3", "cfg.yaml:2:13: routing.strategy: Expected `str`, got `int`"),
    ],
)
def test_any_other_routing_strategy_is_refused(value: str, expected: str) -> None:
    assert problem(f"routing:\n  strategy: {value}\n") == expected


# --- provider types -----------------------------------------------------------------------


def test_the_config_knows_exactly_the_builtins_the_registry_defines() -> None:
    assert BUILTIN_PROVIDERS == tuple(BUILTIN)


def test_a_type_that_is_no_builtin_is_refused_with_the_valid_types() -> None:
    message = problem("providers:\n  mine:\n    type: anthropic\n    api_key: k\n")
    assert message.startswith("cfg.yaml:3:11: providers.mine.type: unknown provider type `anthropic`: ")
    assert f"expected a built-in ({', '.join(BUILTIN_PROVIDERS)})" in message
    assert "or `openai-compatible` for any other OpenAI-compatible endpoint" in message


def test_a_misspelt_type_suggests_the_builtin_it_resembles() -> None:
    assert problem("providers:\n  mine:\n    type: claud\n").endswith("; did you mean `claude`?")


def test_a_type_naming_a_builtin_configures_that_builtin_under_another_name() -> None:
    provider = configured_providers(parse("providers:\n  work:\n    type: claude\n    api_key: k\n"))["work"]
    assert provider.type == "claude"
    assert provider.family == "anthropic"
    assert provider.unroutable_reason is None


def test_openai_compatible_with_an_endpoint_is_a_custom_provider() -> None:
    config = parse(
        "providers:\n  local:\n    type: openai-compatible\n    endpoint: http://h/v1\n"
        "    api_key: k\n    models: [m]\n"
    )
    provider = configured_providers(config)["local"]
    assert provider.kind is ProviderKind.CUSTOM
    assert provider.chat_url == "http://h/v1/chat/completions"


def test_openai_compatible_without_an_endpoint_is_refused() -> None:
    assert problem("providers:\n  local:\n    type: openai-compatible\n    api_key: k\n") == (
        "cfg.yaml:3:5: providers.local: expected `endpoint`: the base URL of the openai-compatible endpoint"
    )


def test_a_name_that_is_no_builtin_without_type_or_endpoint_is_explained() -> None:
    assert problem("providers:\n  claud:\n    api_key: k\n") == (
        "cfg.yaml:3:5: providers.claud: `claud` is not a built-in provider: set `type` to the built-in "
        "this entry configures, or `type: openai-compatible` and `endpoint` for a custom endpoint; "
        "did you mean `claude`?"
    )


def test_a_name_that_is_no_builtin_with_an_endpoint_stays_a_custom_endpoint() -> None:
    config = parse(
        "providers:\n  ollama:\n    endpoint: http://h:11434/v1\n    api_key: k\n    models: [m]\n"
    )
    provider = configured_providers(config)["ollama"]
    assert provider.kind is ProviderKind.CUSTOM
    assert provider.unroutable_reason is None


def test_a_config_built_in_code_with_an_unknown_type_fails_instead_of_becoming_custom() -> None:
    config = Config(providers={"mine": ProviderConfig(type="anthropic", api_key="k", endpoint="http://h")})
    with pytest.raises(ValueError, match="unknown type `anthropic`"):
        configured_providers(config)


# --- keyless providers (auth_type: none) ---------------------------------------------------


def resolve(config: Config, model: str) -> list[Target]:
    catalog = Catalog(configured_providers(config))
    candidates = catalog.resolve(model, Needs(), LiveState(), now=0.0)
    return [t for tier in candidates.tiers for t in tier] + candidates.fallback


def test_a_keyless_provider_with_auth_type_none_is_routable() -> None:
    config = parse(
        "providers:\n  ollama:\n    type: openai-compatible\n    endpoint: http://127.0.0.1:11434/v1\n"
        "    auth_type: none\n    models: [llama3.1:8b]\n"
    )
    provider = configured_providers(config)["ollama"]
    assert provider.auth_type is AuthType.NONE
    assert provider.credentials == (CredentialEntry(name="none"),)
    assert provider.unroutable_reason is None
    assert resolve(config, "llama3.1:8b") == [
        Target(provider="ollama", credential="none", upstream_model="llama3.1:8b")
    ]


def test_a_builtin_switched_to_auth_type_none_is_routable_without_a_key() -> None:
    config = parse("providers:\n  openai:\n    auth_type: none\n    endpoint: http://local:8000/v1\n")
    assert configured_providers(config)["openai"].unroutable_reason is None
    assert [t.credential for t in resolve(config, "gpt-4o")] == ["none"]


async def test_a_keyless_provider_sends_no_authorization_header() -> None:
    config = parse(
        "providers:\n  ollama:\n    type: openai-compatible\n    endpoint: http://h/v1\n"
        "    auth_type: none\n    models: [m]\n"
    )
    provider = configured_providers(config)["ollama"]
    credential = await StaticKeys().get(provider, provider.credentials[0])
    chat = ChatRequest(model="m", messages=[Message(role="user", content="hi")])
    request = OpenAICompatible().build(provider, chat, "m", credential)
    assert "Authorization" not in request.headers


COMPAT_NONE = (
    "openai-compatibility:\n  - name: ollama\n    base-url: http://127.0.0.1:11434/v1\n"
    "    auth-type: none\n    models: [{name: 'llama3.1:8b', alias: llama}]\n"
)


def test_an_openai_compatibility_entry_with_auth_type_none_is_routable_without_keys() -> None:
    config = parse(COMPAT_NONE)
    provider = configured_providers(config)["ollama"]
    assert provider.auth_type is AuthType.NONE
    assert provider.unroutable_reason is None
    assert resolve(config, "llama") == [
        Target(provider="ollama", credential="none", upstream_model="llama3.1:8b")
    ]


def test_an_openai_compatibility_entry_with_auth_type_none_still_sends_a_key_that_is_set() -> None:
    text = COMPAT_NONE + "    api-key-entries: [{api-key: '${OLLAMA_KEY:-}'}]\n"
    assert [c.name for c in configured_providers(parse(text))["ollama"].credentials] == ["none"]
    keyed = configured_providers(parse(text, {"OLLAMA_KEY": "sk-o"}))["ollama"]
    assert [(c.name, c.api_key) for c in keyed.credentials] == [("key-1", "sk-o")]


def test_an_openai_compatibility_auth_type_other_than_api_key_or_none_is_refused() -> None:
    assert problem(COMPAT_NONE.replace("auth-type: none", "auth-type: oauth")) == (
        "cfg.yaml:4:16: openai-compatibility[0].auth-type: invalid value 'oauth'; "
        "expected one of: api_key, none"
    )


# --- proxies -------------------------------------------------------------------------------


def test_a_guide_entry_proxy_url_reaches_the_provider() -> None:
    config = parse("claude-api-key:\n  - api-key: k\n    proxy-url: http://proxy.internal:3128\n")
    assert config.providers["claude"].proxy_url == "http://proxy.internal:3128"
    assert configured_providers(config)["claude"].proxy_url == "http://proxy.internal:3128"


def test_guide_entries_with_different_proxies_are_not_merged() -> None:
    config = parse(
        "claude-api-key:\n"
        "  - api-key: k1\n    proxy-url: http://p1:3128\n"
        "  - api-key: k2\n    proxy-url: http://p2:3128\n"
        "  - api-key: k3\n    proxy-url: http://p1:3128\n"
        "  - api-key: k4\n"
    )
    assert {name: p.proxy_url for name, p in config.providers.items()} == {
        "claude": "http://p1:3128",
        "claude-2": "http://p2:3128",
        "claude-3": None,
    }
    assert api_keys(config, "claude") == ["k1", "k3"]


def test_a_guide_entry_with_a_proxy_cannot_join_a_declared_provider_without_one() -> None:
    message = problem(
        "providers:\n  claude:\n    api_key: k0\nclaude-api-key:\n  - api-key: k1\n    proxy-url: http://p:1\n"
    )
    assert "cfg.yaml:5:5: claude-api-key[0]: `providers.claude` already configures proxy_url differently" in (
        message
    )


def test_the_providers_map_proxy_url_reaches_the_provider() -> None:
    config = parse("providers:\n  openai:\n    api_key: k\n    proxy_url: https://u:p@proxy:8443\n")
    assert configured_providers(config)["openai"].proxy_url == "https://u:p@proxy:8443"


def test_openai_compatibility_keys_sharing_one_proxy_give_the_provider_that_proxy() -> None:
    config = parse(
        "openai-compatibility:\n  - name: c\n    base-url: http://h/v1\n    proxy-url: http://entry:1\n"
        "    api-key-entries:\n      - api-key: k1\n      - api-key: k2\n        proxy-url: http://entry:1\n"
    )
    assert config.providers["c"].proxy_url == "http://entry:1"


def test_a_per_key_proxy_url_applies_when_every_key_has_it() -> None:
    config = parse(
        "openai-compatibility:\n  - name: c\n    base-url: http://h/v1\n"
        "    api-key-entries:\n      - api-key: k1\n        proxy-url: http://key:1\n"
        "      - api-key: ''\n        proxy-url: http://ignored-with-its-empty-key:1\n"
    )
    assert config.providers["c"].proxy_url == "http://key:1"


def test_openai_compatibility_keys_with_different_proxies_are_refused() -> None:
    message = problem(
        "openai-compatibility:\n  - name: c\n    base-url: http://h/v1\n"
        "    api-key-entries:\n      - api-key: k1\n        proxy-url: http://p1:1\n      - api-key: k2\n"
    )
    assert message.startswith(
        "cfg.yaml:5:7: openai-compatibility[0].api-key-entries: these keys go through different proxies"
    )
    assert "give each proxy an `openai-compatibility` entry of its own" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("socks5://u:secret@proxy:1080", "SOCKS proxies (`socks5://`) are not supported"),
        ("ftp://u:secret@proxy:21", "expected an http:// or https:// proxy URL"),
        ("proxy.internal:3128", "expected an http:// or https:// proxy URL"),
        ("u:secret@proxy:3128", "expected an http:// or https:// proxy URL"),
        ("http://", "expected a host in the proxy URL"),
        ("http://u:secret@proxy:99999", "port is not a number from 0 to 65535"),
    ],
)
def test_a_proxy_url_that_is_not_http_is_refused_without_repeating_it(url: str, expected: str) -> None:
    for text, path in (
        (f"providers:\n  openai:\n    proxy_url: '{url}'\n", "providers.openai.proxy_url"),
        (f"claude-api-key:\n  - api-key: k\n    proxy-url: '{url}'\n", "claude-api-key[0].proxy-url"),
        (f"copilot:\n  - github-token: t\n    proxy-url: '{url}'\n", "copilot[0].proxy-url"),
        (f"kiro:\n  - token-file: /t\n    proxy-url: '{url}'\n", "kiro[0].proxy-url"),
        (
            f"openai-compatibility:\n  - name: c\n    base-url: http://h\n    proxy-url: '{url}'\n",
            "openai-compatibility[0].proxy-url",
        ),
        (
            "openai-compatibility:\n  - name: c\n    base-url: http://h\n"
            f"    api-key-entries: [{{api-key: k, proxy-url: '{url}'}}]\n",
            "openai-compatibility[0].api-key-entries[0].proxy-url",
        ),
    ):
        message = problem(text)
        assert f" {path}: " in message, text
        assert expected in message, text
        assert "secret" not in message


# --- copilot and kiro guide entries --------------------------------------------------------


def test_a_copilot_entry_becomes_the_copilot_provider_with_a_github_token() -> None:
    config = parse("copilot:\n  - github-token: gho_a\n  - github-token: gho_b\n")
    assert set(config.providers) == {"copilot"}
    provider = configured_providers(config)["copilot"]
    assert [(c.name, c.github_token) for c in provider.credentials] == [
        ("copilot-1", "gho_a"),
        ("copilot-2", "gho_b"),
    ]
    assert provider.family == "copilot"
    assert provider.unroutable_reason is None
    assert "gpt-4o" in {m.name for m in provider.models}


def test_a_copilot_entry_with_an_empty_token_is_ignored() -> None:
    config = parse("copilot:\n  - github-token: ${GH_TOKEN:-}\n")
    assert config.providers == {}
    assert configured_providers(config)["copilot"].configured is False


def test_a_copilot_entry_carries_prefix_base_url_models_exclusions_priority_and_proxy() -> None:
    config = parse(
        "copilot:\n  - github-token: gho_w\n    prefix: work\n    base-url: https://copilot.example.com\n"
        "    models: [{name: gpt-4.1, alias: fast}, {name: claude-sonnet-4}]\n"
        "    excluded-models: [claude-*]\n    priority: 5\n    proxy-url: http://p:3128\n"
    )
    provider = configured_providers(config)["copilot-work"]
    assert provider.prefix == "work"
    assert provider.endpoint == "https://copilot.example.com"
    assert [(m.name, m.upstream) for m in provider.models] == [("fast", "gpt-4.1")]
    assert provider.priority == 5
    assert provider.proxy_url == "http://p:3128"


def test_a_copilot_entry_adds_its_token_to_a_declared_copilot_provider() -> None:
    config = parse(
        "providers:\n  copilot:\n    github_token: gho_0\n    auth_endpoint: https://ghe.example.com/api/v3\n"
        "copilot:\n  - github-token: gho_1\n"
    )
    provider = configured_providers(config)["copilot"]
    assert [c.github_token for c in provider.credentials] == ["gho_1", "gho_0"]
    assert provider.auth_endpoint == "https://ghe.example.com/api/v3"


def test_a_copilot_entry_needs_a_github_token_key() -> None:
    assert problem("copilot:\n  - prefix: p\n") == (
        "cfg.yaml:2:5: copilot[0]: missing required key `github-token`"
    )


def test_a_kiro_entry_carries_its_region_and_proxy() -> None:
    config = parse("kiro:\n  - token-file: /t.json\n    region: eu-central-1\n    proxy-url: http://p:1\n")
    provider = configured_providers(config)["kiro"]
    assert provider.region == "eu-central-1"
    assert provider.proxy_url == "http://p:1"
    assert [c.token_file for c in provider.credentials] == ["/t.json"]


def test_kiro_entries_in_different_regions_are_different_providers() -> None:
    config = parse(
        "kiro:\n  - token-file: /a.json\n    region: us-east-1\n"
        "  - token-file: /b.json\n    region: eu-central-1\n"
    )
    assert {name: p.region for name, p in config.providers.items()} == {
        "kiro": "us-east-1",
        "kiro-2": "eu-central-1",
    }


def test_a_kiro_entry_with_an_empty_token_file_is_ignored() -> None:
    assert parse("kiro:\n  - token-file: ${KIRO_TOKEN_FILE:-}\n").providers == {}


# --- wording of key and value errors -------------------------------------------------------


def test_an_unknown_key_is_placed_on_its_own_line_with_the_nearest_valid_key() -> None:
    assert problem("providers:\n  openai:\n    api_key: k\n    endpont: http://h\n") == (
        "cfg.yaml:4:5: providers.openai: unknown key `endpont`; did you mean `endpoint`?"
    )


def test_a_snake_case_key_in_the_guide_form_suggests_its_kebab_spelling() -> None:
    assert problem("claude-api-key:\n  - api-key: k\n    base_url: http://h\n") == (
        "cfg.yaml:3:5: claude-api-key[0]: unknown key `base_url`; did you mean `base-url`?"
    )


def test_an_unknown_key_inside_a_credential_entry_suggests_from_that_entrys_keys() -> None:
    assert problem("providers:\n  openai:\n    api_keys: [{api-key: k, nmae: ops}]\n") == (
        "cfg.yaml:3:29: providers.openai.api_keys[0]: unknown key `nmae`; did you mean `name`?"
    )


def test_an_auth_type_outside_its_set_lists_the_set() -> None:
    assert problem("providers:\n  openai:\n    auth_type: apikey\n") == (
        "cfg.yaml:3:16: providers.openai.auth_type: invalid value 'apikey'; "
        "expected one of: api_key, oauth_device_flow, token_file, none"
    )


# --- the shipped example -----------------------------------------------------------------


def test_the_shipped_example_parses_without_any_environment() -> None:
    config = load_config(REPO_ROOT / "config.example.yaml", environ={})
    # Guide entries whose key variable is unset stay inert; the compat entry is declared.
    assert set(config.providers) == {"openai", "copilot", "kiro", "local-llm"}
    assert config.routing.strategy == "priority"
    providers = configured_providers(config)
    openai = providers["openai"]
    assert openai.unroutable_reason == "no credentials: configure an API key"
    assert {m.name: m.upstream for m in openai.models} == {
        "gpt-4o-mini": "gpt-4o-mini",
        "gpt-4-turbo": "gpt-4-turbo-preview",
        "text-embedding-3-small": "text-embedding-3-small",
        "gpt-4": "gpt-4-0613",
    }
    local = providers["local-llm"]
    assert local.prefix == "local"
    assert local.endpoint == "http://127.0.0.1:11434/v1"
    assert local.unroutable_reason == "no credentials: configure an API key"
    assert providers["claude"].configured is False


def test_the_shipped_example_turns_on_its_guide_entries_when_their_keys_are_set() -> None:
    config = load_config(
        REPO_ROOT / "config.example.yaml",
        environ={"CLAUDE_API_KEY": "a", "CLAUDE_PROD_API_KEY": "b", "OPENROUTER_API_KEY": "c"},
    )
    assert {"claude", "claude-prod", "openrouter-or"} <= set(config.providers)
    openrouter = configured_providers(config)["openrouter-or"]
    assert openrouter.prefix == "or"
    assert [(m.name, m.upstream) for m in openrouter.models] == [("sonnet", "anthropic/claude-3.5-sonnet")]
    assert openrouter.excluded_models == ("*:free",)


def test_the_shipped_kiro_and_copilot_examples_work_once_uncommented() -> None:
    text = (REPO_ROOT / "config.example.yaml").read_text(encoding="utf-8")
    text = text.replace("kiro: []\n#  - token-file", "kiro:\n  - token-file").replace(
        "\n#    region", "\n    region"
    )
    text = text.replace("copilot: []\n#  - github-token", "copilot:\n  - github-token")
    text = text.replace("\n#    prefix: work", "\n    prefix: work")
    config = parse_config(
        text, "example", {"KIRO_WORK_TOKEN_FILE": "/k.json", "COPILOT_WORK_GITHUB_TOKEN": "gho_w"}
    )
    providers = configured_providers(config)
    assert providers["kiro-work"].region == "eu-central-1"
    assert [c.token_file for c in providers["kiro-work"].credentials] == ["/k.json"]
    assert [c.github_token for c in providers["copilot-work"].credentials] == ["gho_w"]


# --- reloading ---------------------------------------------------------------------------

GOOD = "routing:\n  strategy: fill-first\nproviders:\n  openai:\n    api_key: sk-1\n"
BAD = "routing:\n  strategy: sometimes\n"


async def test_reload_applies_a_good_file_through_the_callback(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(GOOD, encoding="utf-8")
    applied: list[Config] = []

    async def apply(config: Config) -> None:
        applied.append(config)

    watcher = ConfigWatcher(path, apply)
    assert await watcher.reload() is True
    assert len(applied) == 1
    assert applied[0].routing.strategy == "fill-first"
    assert api_keys(applied[0], "openai") == ["sk-1"]
    assert (watcher.reloads, watcher.refusals) == (1, 0)


async def test_reload_refuses_a_bad_file_and_keeps_the_previous_config(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(GOOD, encoding="utf-8")
    applied: list[Config] = []

    async def apply(config: Config) -> None:
        applied.append(config)

    watcher = ConfigWatcher(path, apply)
    assert await watcher.reload() is True
    path.write_text(BAD, encoding="utf-8")
    assert await watcher.reload() is False
    assert len(applied) == 1
    assert (watcher.reloads, watcher.refusals) == (1, 1)
    path.write_text(GOOD.replace("sk-1", "sk-2"), encoding="utf-8")
    assert await watcher.reload() is True
    assert api_keys(applied[-1], "openai") == ["sk-2"]
    assert (watcher.reloads, watcher.refusals) == (2, 1)


async def test_reload_refuses_a_missing_file(tmp_path: Path) -> None:
    calls: list[Config] = []

    async def apply(config: Config) -> None:
        calls.append(config)

    watcher = ConfigWatcher(tmp_path / "absent.yaml", apply)
    assert await watcher.reload() is False
    assert await watcher.reload() is False
    assert calls == []
    assert watcher.refusals == 2


async def test_config_watcher_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("api-keys: [k1]\n")
    seen: list[list[str]] = []
    applied = asyncio.Event()

    async def apply(config: Config) -> None:
        seen.append([k.key for k in config.client_keys()])
        applied.set()

    watcher = ConfigWatcher(path, apply, poll_interval=0.05)
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.sleep(0.1)
        path.write_text("api-keys: [k1, k2-longer]\n")
        async with asyncio.timeout(5):
            await applied.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen == [["k1", "k2-longer"]]
