"""The configuration file's model.

One YAML file, read by every service at start. Keys are spelled as in the spec: the
`providers:` map uses snake_case keys, top-level user-guide keys use kebab-case.
"""

from __future__ import annotations

import msgspec

__all__ = ["ClientKey", "Config", "CredentialEntry", "ModelEntry", "ProviderConfig"]


class ClientKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key that clients of the gateway present."""

    key: str
    name: str = ""


class CredentialEntry(msgspec.Struct, frozen=True, kw_only=True, rename={"api_key": "api-key"}):
    """One upstream credential of a provider."""

    api_key: str
    name: str = ""


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A model a provider serves. `upstream` is the name sent to the provider when it
    differs from `name`."""

    name: str
    upstream: str | None = None
    enabled: bool = True
    max_tokens: int | None = None


class ProviderConfig(msgspec.Struct, frozen=True, kw_only=True):
    type: str | None = None
    """The built-in provider this entry configures; defaults to the entry's name."""
    enabled: bool = True
    endpoint: str | None = None
    api_key: str | None = None
    api_keys: list[str | CredentialEntry] = []
    models: list[str | ModelEntry] = []
    model_mappings: dict[str, str] = {}
    priority: int = 0

    def credentials(self) -> list[CredentialEntry]:
        entries = [CredentialEntry(api_key=self.api_key)] if self.api_key else []
        for item in self.api_keys:
            entries.append(CredentialEntry(api_key=item) if isinstance(item, str) else item)
        return [entry for entry in entries if entry.api_key]

    def model_entries(self) -> list[ModelEntry]:
        return [ModelEntry(name=item) if isinstance(item, str) else item for item in self.models]


class Config(msgspec.Struct, frozen=True, kw_only=True, rename="kebab"):
    api_keys: list[str | ClientKey] = []
    providers: dict[str, ProviderConfig] = {}

    def client_keys(self) -> list[ClientKey]:
        keys: list[ClientKey] = []
        for index, item in enumerate(self.api_keys):
            key = ClientKey(key=item, name=f"key-{index + 1}") if isinstance(item, str) else item
            if key.key:
                keys.append(key if key.name else ClientKey(key=key.key, name=f"key-{index + 1}"))
        return keys
