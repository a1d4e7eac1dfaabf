"""Tokens at rest: AES-GCM-256 with a key id and the credential's name as associated data.

A sealed value is `[key id length u8][key id][nonce 12][ciphertext + tag 16]`. The key
id names which key sealed it, so keys can be rotated: the first key seals, every loaded
key opens what it sealed. The associated data (`<provider>/<credential id>`) binds each
ciphertext to its credential: a sealed secret copied onto another credential's record
does not open there.

Keys come from `LLMBUS_TOKEN_KEY` (base64 of 32 bytes) or the file `LLMBUS_TOKEN_KEY_FILE`
(docker secrets); several keys, separated by commas or whitespace, list the sealing key
first and older ones after it. Without a key a service refuses to start, except in
development mode, where a fixed and publicly known key (`DEV_KEY_ID`) is used and said so.

    VaultError
    ├── MissingKey       no key configured outside development mode
    ├── BadKey           a configured key is not base64 of 32 bytes
    └── SealBroken       a sealed value does not open (unknown key id, tampered, moved)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["DEV_KEY_ID", "BadKey", "MissingKey", "SealBroken", "Vault", "VaultError", "key_id"]

log = logging.getLogger(__name__)

DEV_KEY_ID = "dev-insecure"
"""The key id of the development key: every sealed value that names it can be opened by
anyone who has read this file."""
_DEV_KEY = hashlib.sha256(b"llmbus development token key: not a secret, never for production").digest()
_NONCE = 12
_SEPARATORS = re.compile(r"[\s,]+")


class VaultError(Exception):
    """Base of the vault's errors; messages never carry a key or a plaintext."""


class MissingKey(VaultError):
    pass


class BadKey(VaultError):
    pass


class SealBroken(VaultError):
    pass


def key_id(key: bytes) -> str:
    """A short public name of a key (it reveals nothing usable about the key)."""
    return hashlib.sha256(b"llmbus-token-key-id\n" + key).hexdigest()[:12]


def _parse_keys(text: str, origin: str) -> list[bytes]:
    keys: list[bytes] = []
    for number, item in enumerate(filter(None, _SEPARATORS.split(text.strip())), start=1):
        try:
            key = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise BadKey(f"{origin}: key {number} is not base64") from None
        if len(key) != 32:
            raise BadKey(f"{origin}: key {number} is {len(key)} bytes, AES-256 needs 32")
        keys.append(key)
    return keys


class Vault:
    """Seals and opens credential secrets; one instance per process."""

    def __init__(self, keys: Mapping[str, bytes], sealing: str) -> None:
        if sealing not in keys:
            raise ValueError("the sealing key must be one of the keys")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self.sealing = sealing

    @classmethod
    def from_keys(cls, keys: list[bytes]) -> Vault:
        """The first key seals; all of them open."""
        if not keys:
            raise MissingKey("no token key")
        return cls({key_id(key): key for key in keys}, key_id(keys[0]))

    @classmethod
    def development(cls) -> Vault:
        return cls({DEV_KEY_ID: _DEV_KEY}, DEV_KEY_ID)

    @classmethod
    def from_settings(cls, key: str, key_file: str, *, dev: bool) -> Vault:
        """The vault of a service: `key` (the environment's), else `key_file`'s, else in
        development mode the development key; else MissingKey."""
        if key.strip():
            return cls.from_keys(_parse_keys(key, "LLMBUS_TOKEN_KEY"))
        if key_file:
            try:
                text = Path(key_file).read_text()
            except OSError as exc:
                raise MissingKey(
                    f"LLMBUS_TOKEN_KEY_FILE {key_file}: {exc.strerror or type(exc).__name__}"
                ) from None
            return cls.from_keys(_parse_keys(text, f"LLMBUS_TOKEN_KEY_FILE {key_file}"))
        if dev:
            log.warning(
                "tokens at rest are sealed with the DEVELOPMENT key (%s, LLMBUS_DEV is set): "
                "anyone can open them; set LLMBUS_TOKEN_KEY or LLMBUS_TOKEN_KEY_FILE outside development",
                DEV_KEY_ID,
            )
            return cls.development()
        raise MissingKey(
            "no token key: set LLMBUS_TOKEN_KEY (base64 of 32 random bytes, e.g. "
            "`openssl rand -base64 32`) or LLMBUS_TOKEN_KEY_FILE, or LLMBUS_DEV=1 for development"
        )

    def seal(self, credential: str, plaintext: bytes) -> bytes:
        """Encrypt `plaintext` for `credential` (`<provider>/<id>`) with the sealing key."""
        kid = self.sealing.encode()
        nonce = os.urandom(_NONCE)
        sealed = self._ciphers[self.sealing].encrypt(nonce, plaintext, credential.encode())
        return bytes([len(kid)]) + kid + nonce + sealed

    def open(self, credential: str, sealed: bytes) -> bytes:
        if not sealed:
            raise SealBroken(f"no sealed secret for {credential}")
        size = sealed[0]
        kid = sealed[1 : 1 + size].decode("ascii", errors="replace")
        body = sealed[1 + size :]
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealBroken(f"the secret of {credential} was sealed with key {kid!r}, which is not loaded")
        try:
            return cipher.decrypt(body[:_NONCE], body[_NONCE:], credential.encode())
        except (InvalidTag, ValueError):
            raise SealBroken(
                f"the secret of {credential} does not open: tampered with, or not its own"
            ) from None
