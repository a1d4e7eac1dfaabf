"""Credential sources that do more than hand over a configured key: they mint or refresh
short-lived tokens, cache them and forget them when the upstream refuses them.

Each family whose credentials need network calls has a module here; `StaticKeys` (keys
used as they are) stays in `adapters.base`."""

# The adapters first: an adapter module imports its credential source, and a credential
# source imports `adapters.base`; loading the adapters package first keeps that order
# whichever of the two packages a caller imports first.
import llmbus.providers.adapters  # noqa: F401
from llmbus.providers.credentials.copilot import CopilotTokens
from llmbus.providers.credentials.kiro import KiroTokens

__all__ = ["CopilotTokens", "KiroTokens"]
