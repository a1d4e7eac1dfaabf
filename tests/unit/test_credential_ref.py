"""Credentials are named in usage records and traces by a short, stable hash of their id."""

from __future__ import annotations

import hashlib

from llmbus.telemetry import credential_ref


def test_a_credential_is_named_by_the_first_16_hex_digits_of_the_sha256_of_its_id() -> None:
    ref = credential_ref("work@example.com")
    assert ref == hashlib.sha256(b"work@example.com").hexdigest()[:16]
    assert "work" not in ref
    assert credential_ref("work@example.com") == ref


def test_different_credentials_get_different_names_and_none_gets_none() -> None:
    assert credential_ref("openai#0") != credential_ref("openai#1")
    assert credential_ref("") == ""
