"""The token vault: AES-GCM-256, key ids, the credential as associated data, keys from the
environment or a file, and no start without a key outside development mode."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest

from llmbus.auth.vault import DEV_KEY_ID, BadKey, MissingKey, SealBroken, Vault, key_id

KEY = os.urandom(32)
OLD = os.urandom(32)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_a_sealed_secret_opens_for_its_credential_and_hides_the_plaintext() -> None:
    vault = Vault.from_keys([KEY])
    sealed = vault.seal("copilot/alice", b"gho_secret")
    assert b"gho_secret" not in sealed
    assert vault.open("copilot/alice", sealed) == b"gho_secret"


def test_the_same_plaintext_seals_differently_each_time() -> None:
    vault = Vault.from_keys([KEY])
    assert vault.seal("copilot/alice", b"x") != vault.seal("copilot/alice", b"x")


def test_a_secret_moved_to_another_credential_does_not_open() -> None:
    vault = Vault.from_keys([KEY])
    sealed = vault.seal("copilot/alice", b"gho_secret")
    with pytest.raises(SealBroken) as raised:
        vault.open("copilot/mallory", sealed)
    assert "gho_secret" not in str(raised.value)


def test_a_tampered_secret_does_not_open() -> None:
    vault = Vault.from_keys([KEY])
    sealed = bytearray(vault.seal("kiro/a", b"aoa-token"))
    sealed[-1] ^= 1
    with pytest.raises(SealBroken):
        vault.open("kiro/a", bytes(sealed))


def test_the_sealed_value_names_its_key_so_an_old_key_still_opens_after_rotation() -> None:
    before = Vault.from_keys([OLD])
    sealed = before.seal("kiro/a", b"aoa-token")
    assert sealed[1 : 1 + sealed[0]].decode() == key_id(OLD)
    rotated = Vault.from_settings(f"{_b64(KEY)},{_b64(OLD)}", "", dev=False)
    assert rotated.sealing == key_id(KEY)
    assert rotated.open("kiro/a", sealed) == b"aoa-token"
    with pytest.raises(SealBroken, match="not loaded"):
        Vault.from_keys([KEY]).open("kiro/a", sealed)


def test_the_key_may_come_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "token_key"
    path.write_text(_b64(KEY) + "\n")
    vault = Vault.from_settings("", str(path), dev=False)
    assert vault.sealing == key_id(KEY)


def test_without_a_key_outside_development_the_service_refuses_to_start() -> None:
    with pytest.raises(MissingKey, match="LLMBUS_TOKEN_KEY"):
        Vault.from_settings("", "", dev=False)


def test_a_missing_key_file_is_named_in_the_refusal(tmp_path: Path) -> None:
    with pytest.raises(MissingKey, match="token_key"):
        Vault.from_settings("", str(tmp_path / "token_key"), dev=False)


@pytest.mark.parametrize("value", ["not base64!", _b64(os.urandom(16))])
def test_a_malformed_key_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(BadKey) as raised:
        Vault.from_settings(value, "", dev=False)
    assert value not in str(raised.value)


def test_development_mode_uses_the_named_development_key_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmbus.auth.vault"):
        vault = Vault.from_settings("", "", dev=True)
    assert vault.sealing == DEV_KEY_ID
    assert "DEVELOPMENT key" in caplog.text
    assert Vault.development().open("x/y", vault.seal("x/y", b"t")) == b"t"


def test_a_configured_key_wins_over_development_mode() -> None:
    assert Vault.from_settings(_b64(KEY), "", dev=True).sealing == key_id(KEY)
