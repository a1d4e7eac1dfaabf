"""Adapter families: normalized request ⇄ provider wire format. Imported by workers only.

A new family is one module here, one entry in `ADAPTERS` and one fixture folder under
`tests/contract/fixtures/`."""

from llmbus.providers.adapters.anthropic import Anthropic
from llmbus.providers.adapters.base import (
    FAMILIES,
    Adapter,
    Credential,
    CredentialSource,
    Family,
    Output,
    StaticKeys,
    UpstreamRequest,
)
from llmbus.providers.adapters.copilot import Copilot
from llmbus.providers.adapters.gemini import Gemini
from llmbus.providers.adapters.kiro import Kiro
from llmbus.providers.adapters.openai import OpenAICompatible

__all__ = [
    "ADAPTERS",
    "FAMILIES",
    "Adapter",
    "Anthropic",
    "Credential",
    "CredentialSource",
    "Family",
    "Gemini",
    "Kiro",
    "OpenAICompatible",
    "Output",
    "StaticKeys",
    "UpstreamRequest",
    "adapter_for",
]

ADAPTERS: dict[Family, Adapter] = {
    "anthropic": Anthropic(),
    "gemini": Gemini(),
    "openai": OpenAICompatible(),
    "copilot": Copilot(),
    "kiro": Kiro(),
}


def adapter_for(family: str) -> Adapter:
    for name, adapter in ADAPTERS.items():
        if name == family:
            return adapter
    raise ValueError(f"no adapter family named {family!r}; known: {', '.join(sorted(ADAPTERS))}")
