"""`make run`'s choice of upstreams: the mock serves what the environment leaves
unconfigured, and a key or URL the environment sets always wins."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from llmbus.config import load_config
from llmbus.devstack.upstreams import MOCKED, mock_environment
from llmbus.providers import configured_providers

MOCK = "http://127.0.0.1:8319"
EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def test_every_provider_of_the_example_is_served_by_the_mock_without_keys(tmp_path: Path) -> None:
    env = mock_environment(MOCK, tmp_path, {})
    providers = configured_providers(load_config(EXAMPLE, env))
    for upstream in MOCKED:
        provider = providers[upstream.provider]
        assert provider.unroutable_reason is None, upstream.provider
        assert MOCK in (provider.auth_endpoint or provider.endpoint)


def test_a_key_in_the_environment_reaches_the_real_provider(tmp_path: Path) -> None:
    env = mock_environment(MOCK, tmp_path, {"OPENAI_API_KEY": "sk-real"})
    assert "OPENAI_API_KEY" not in env
    assert "OPENAI_BASE_URL" not in env
    openai = configured_providers(load_config(EXAMPLE, {**env, "OPENAI_API_KEY": "sk-real"}))["openai"]
    assert openai.endpoint == "https://api.openai.com"
    assert openai.credentials[0].api_key == "sk-real"


def test_a_base_url_in_the_environment_wins_over_the_mock(tmp_path: Path) -> None:
    mine = "http://127.0.0.1:11434/v1"
    env = mock_environment(MOCK, tmp_path, {"OPENAI_BASE_URL": mine})
    assert "OPENAI_BASE_URL" not in env
    openai = configured_providers(load_config(EXAMPLE, {**env, "OPENAI_BASE_URL": mine}))["openai"]
    assert openai.endpoint == mine


def test_the_kiro_token_file_is_the_ides_format_and_already_expired(tmp_path: Path) -> None:
    env = mock_environment(MOCK, tmp_path, {})
    token = json.loads(Path(env["KIRO_TOKEN_FILE"]).read_text())
    assert {"accessToken", "refreshToken", "expiresAt", "authMethod", "profileArn"} <= set(token)
    expires = datetime.fromisoformat(token["expiresAt"].replace("Z", "+00:00"))
    assert expires < datetime.now(UTC), "the first request refreshes it at the mock"
    assert Path(env["KIRO_TOKEN_FILE"]).stat().st_mode & 0o077 == 0, "a token file is private"
