"""Configuration parsing: the file's forms, env references and every error message."""

from __future__ import annotations

import pytest

from llmbus.config import ConfigError, CredentialEntry, ModelEntry, load_config, parse_config
from llmbus.config.settings import ServiceSettings, SettingsError


def test_example_config_parses_with_its_defaults() -> None:
    config = load_config("config.example.yaml", environ={})
    assert [k.key for k in config.client_keys()] == ["sk-llmbus-dev"]
    openai = config.providers["openai"]
    assert openai.endpoint == "https://api.openai.com"
    assert [m.name for m in openai.model_entries()] == [
        "gpt-4o-mini",
        "gpt-4-turbo",
        "text-embedding-3-small",
    ]


def test_env_references_are_replaced_and_defaults_apply() -> None:
    config = parse_config(
        "providers:\n  openai:\n    api_key: ${KEY}\n    endpoint: ${URL:-http://x}\n",
        environ={"KEY": "sk-real"},
    )
    assert config.providers["openai"].credentials() == [CredentialEntry(api_key="sk-real")]
    assert config.providers["openai"].endpoint == "http://x"


def test_models_accept_names_and_mappings() -> None:
    config = parse_config("providers:\n  openai:\n    models: [a, {name: b, upstream: c}]\n", environ={})
    assert config.providers["openai"].model_entries() == [
        ModelEntry(name="a"),
        ModelEntry(name="b", upstream="c"),
    ]


def test_client_keys_accept_strings_and_named_entries() -> None:
    config = parse_config("api-keys: [k1, {key: k2, name: ops}]\n", environ={})
    assert [(k.key, k.name) for k in config.client_keys()] == [("k1", "key-1"), ("k2", "ops")]


def test_the_management_api_is_local_only_unless_remote_management_allows_more() -> None:
    assert not load_config("config.example.yaml", environ={}).remote_management.allow_remote
    config = parse_config(
        "remote-management:\n  allow-remote: true\n  allowed-cidrs: [10.0.0.0/8, fd00::/8]\n", environ={}
    )
    assert config.remote_management.allowed_cidrs == ["10.0.0.0/8", "fd00::/8"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "remote-management:\n  allowed-cidrs: [10.0.0.0/8]\n",
            "cfg.yaml:2:3: remote-management: `allowed-cidrs` needs `allow-remote: true`",
        ),
        (
            "remote-management:\n  allow-remote: true\n  allowed-cidrs: [office]\n",
            "cfg.yaml:2:3: remote-management: `office` is not a network "
            "(expected `10.0.0.0/8` or `fd00::/8`)",
        ),
        (
            "providers:\n  openai:\n    models: [1]\n",
            "cfg.yaml:3:14: providers.openai.models[0]: Expected `str | object`, got `int`",
        ),
        (
            "providers:\n  x:\n    priority: high\n",
            "cfg.yaml:3:15: providers.x.priority: Expected `int`, got `str`",
        ),
        ("api-keys: 3\n", "cfg.yaml:1:11: api-keys: Expected `array`, got `int`"),
        (
            "providers:\n  x:\n    api_key: ${MISSING}\n",
            "cfg.yaml:3:14: providers.x.api_key: environment variable MISSING is not set",
        ),
        ("providers: [a]\n", "cfg.yaml:1:12: providers: expected a mapping of provider names"),
        ("- a\n", "cfg.yaml: <top>: expected a mapping of keys at the top level"),
        (
            "a: [\n",
            "cfg.yaml:2:1: <top>: not valid YAML: expected the node content, but found '<stream end>'",
        ),
    ],
)
def test_each_problem_is_one_line_naming_file_key_and_expectation(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml", environ={})
    assert str(caught.value) == expected


def test_every_bad_provider_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("providers:\n  a:\n    priority: x\n  b:\n    enabled: 3\n", "c.yaml", environ={})
    assert len(caught.value.problems) == 2


def test_a_missing_file_is_one_clear_line() -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: <top>: cannot read the file"):
        load_config("nope.yaml")


def test_settings_fail_fast_naming_the_variable() -> None:
    class Settings(ServiceSettings, frozen=True, kw_only=True):
        port: int = 1

    assert Settings.from_env({"LLMBUS_PORT": "9"}).port == 9
    with pytest.raises(SettingsError, match="LLMBUS_PORT"):
        Settings.from_env({"LLMBUS_PORT": "nine"})
