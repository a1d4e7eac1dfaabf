"""Credential sources that do more than hand over a configured key: they mint or refresh
short-lived tokens, cache them and forget them when the upstream refuses them.

Each family whose credentials need network calls has a module here; `base` holds the
protocol, the usable `Credential` and `StaticKeys` (keys used as they are)."""

from llmbus.providers.credentials.base import Credential, CredentialSource, StaticKeys
from llmbus.providers.credentials.copilot import CopilotTokens
from llmbus.providers.credentials.kiro import KiroTokens

__all__ = ["CopilotTokens", "Credential", "CredentialSource", "KiroTokens", "StaticKeys"]
