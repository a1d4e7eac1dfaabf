"""Credentials as adapters use them, and the sources that produce them.

A `CredentialSource` turns a configured credential (`CredentialEntry`) into a usable
`Credential`: API keys as they are (`StaticKeys`), Copilot tokens minted from a GitHub
token, Kiro tokens read from the IDE's file and refreshed. Adapters only read the result.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from llmbus.config import CredentialEntry
from llmbus.providers.runtime import ConfiguredProvider

__all__ = ["Credential", "CredentialSource", "StaticKeys"]


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """A credential ready for use: what the adapter puts on the wire.

    `token` is an API key or an access token (empty for `auth_type: none`); the other
    fields exist for credentials that dictate more than a key: Copilot's token names the
    API host to use (`endpoint`), Kiro's names a profile ARN and a region.
    """

    name: str
    token: str
    endpoint: str | None = None
    profile_arn: str | None = None
    region: str | None = None
    expires_at: float | None = None
    """Unix seconds; None for keys that do not expire."""


class CredentialSource(Protocol):
    """Turns a configured credential into a usable one; may call the network (to mint or
    refresh a token) and caches what it gets. Failures are `UpstreamError`s (retryable,
    so the request fails over to another credential)."""

    async def get(self, provider: ConfiguredProvider, entry: CredentialEntry) -> Credential: ...

    def invalidate(self, provider: ConfiguredProvider, entry: CredentialEntry) -> None:
        """The upstream refused the credential (401): forget what is cached for it."""
        ...


class StaticKeys:
    """API keys from the config file, used as they are (and no key for `auth_type: none`)."""

    async def get(self, provider: ConfiguredProvider, entry: CredentialEntry) -> Credential:
        return Credential(name=entry.name, token=entry.api_key)

    def invalidate(self, provider: ConfiguredProvider, entry: CredentialEntry) -> None:
        return None
