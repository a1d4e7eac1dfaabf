"""The two configuration forms (the spec's `providers:` map and the user-guide keys)
normalising into one model, their errors, and reloading the file at run time."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import pytest

from llmbus.config import Config, ConfigError, ConfigWatcher, load_config, parse_config
from llmbus.providers import AuthType, ProviderKind, configured_providers

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
