"""Secrets from files (`*_FILE`), the refusals outside development mode, and the log scan
that fails a run whose logs hold a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbus.config import ServiceSettings, SettingsError, parse_config
from llmbus.config.guard import EXAMPLE_KEYS, UnsafeSettings, refuse_unsafe, unsafe_settings
from llmbus.edge.settings import EdgeSettings
from llmbus.testing.leaks import SecretBook

ROOT = Path(__file__).resolve().parents[2]
SAFE = parse_config("api-keys: [sk-team-0123456789]\nmanagement-key: mk-team-0123456789\n", environ={})


def test_a_setting_comes_from_the_file_its_file_variable_names(tmp_path: Path) -> None:
    secret = tmp_path / "nats_password"
    secret.write_text("s3cret-from-a-docker-secret\n")
    settings = EdgeSettings.from_env({"LLMBUS_NATS_PASSWORD_FILE": str(secret)})
    assert settings.nats_password == "s3cret-from-a-docker-secret"
    assert settings.nats_user == "edge"
    assert "LLMBUS_NATS_PASSWORD_FILE" in EdgeSettings.env_vars()


def test_a_setting_given_twice_or_from_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    both = {"LLMBUS_NATS_PASSWORD": "a", "LLMBUS_NATS_PASSWORD_FILE": str(tmp_path / "x")}
    with pytest.raises(SettingsError, match="LLMBUS_NATS_PASSWORD and LLMBUS_NATS_PASSWORD_FILE"):
        ServiceSettings.from_env(both)
    with pytest.raises(SettingsError, match=r"LLMBUS_NATS_PASSWORD_FILE: cannot read .*/missing"):
        ServiceSettings.from_env({"LLMBUS_NATS_PASSWORD_FILE": str(tmp_path / "missing")})


def test_a_config_reference_is_satisfied_by_its_file_variable(tmp_path: Path) -> None:
    key = tmp_path / "client_key"
    key.write_text("sk-from-a-file-0123456789\n")
    config = parse_config("api-keys: ['${CLIENT_KEY}']\n", environ={"CLIENT_KEY_FILE": str(key)})
    assert [k.key for k in config.client_keys()] == ["sk-from-a-file-0123456789"]


def test_the_example_keys_are_exactly_the_example_files_defaults() -> None:
    example = parse_config((ROOT / "config.example.yaml").read_text(), environ={})
    assert {k.key for k in example.client_keys()} | {example.management_key} == EXAMPLE_KEYS


def test_outside_dev_mode_the_example_keys_and_an_open_bus_are_refused_naming_the_setting() -> None:
    example = parse_config((ROOT / "config.example.yaml").read_text(), environ={})
    settings = ServiceSettings(config="config.example.yaml", nats_user="router")
    with pytest.raises(UnsafeSettings) as refused:
        refuse_unsafe(settings, example)
    message = str(refused.value)
    assert "set LLMBUS_CLIENT_KEY" in message
    assert "set LLMBUS_MANAGEMENT_KEY" in message
    assert "LLMBUS_NATS_PASSWORD (or LLMBUS_NATS_PASSWORD_FILE) is not set" in message
    assert "LLMBUS_DEV=1" in message
    assert not any(key in message for key in EXAMPLE_KEYS), "the refusal names settings, not keys"


def test_dev_mode_or_own_keys_and_a_bus_password_start() -> None:
    example = parse_config((ROOT / "config.example.yaml").read_text(), environ={})
    assert unsafe_settings(ServiceSettings(dev=True), example) == []
    assert unsafe_settings(ServiceSettings(nats_password="p0123456789"), SAFE) == []


def test_the_log_scan_names_the_file_and_line_and_masks_the_secret(tmp_path: Path) -> None:
    book = SecretBook()
    book.add("sk-upstream-0123456789", "OPENAI_API_KEY")
    book.add("short", "too short to scan")
    # `.txt`, not `.log`: the suite's own scan at the end of the run would find these.
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "worker.txt").write_text("ok\nsent Bearer sk-upstream-0123456789 upstream\nshort\n")
    (tmp_path / "token.json").write_text('{"accessToken": "sk-upstream-0123456789"}')
    minted = "sk-llmbus-" + "A" * 43
    (tmp_path / "edge.txt").write_text(f"created {minted}\n")
    leaks = sorted(book.scan([tmp_path], glob="*.txt"), key=lambda leak: leak.path.name)
    assert [(leak.path.name, leak.line) for leak in leaks] == [("edge.txt", 1), ("worker.txt", 2)]
    assert str(leaks[1]).endswith("worker.txt:2: OPENAI_API_KEY: sent Bearer <OPENAI_API_KEY> upstream")
    assert minted not in str(leaks[0])
    assert "a client key minted by the gateway" in str(leaks[0])


def test_the_scan_takes_secrets_from_an_environment_and_its_token_files(tmp_path: Path) -> None:
    token_file = tmp_path / "kiro.json"
    token_file.write_text(
        '{"accessToken": "aoa-access-0123456789", "refreshToken": "aor-refresh-0123456789"}'
    )
    book = SecretBook()
    book.add_env(
        {
            "OPENAI_API_KEY": "sk-0123456789",
            "KIRO_TOKEN_FILE": str(token_file),
            "OPENAI_BASE_URL": "http://x",
        },
        "a stack",
    )
    for secret in ("sk-0123456789", "aoa-access-0123456789", "aor-refresh-0123456789"):
        assert secret in book
    assert "http://x" not in book
    assert str(token_file) not in book
