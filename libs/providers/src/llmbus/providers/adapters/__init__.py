"""Adapter families: normalized request ⇄ provider wire format. Imported by workers only."""

from llmbus.providers.adapters.base import Adapter, Output
from llmbus.providers.adapters.openai import OpenAICompatible

__all__ = ["ADAPTERS", "Adapter", "OpenAICompatible", "Output", "adapter_for"]

ADAPTERS: dict[str, Adapter] = {"openai": OpenAICompatible()}


def adapter_for(family: str) -> Adapter:
    try:
        return ADAPTERS[family]
    except KeyError:
        raise ValueError(
            f"no adapter family named {family!r}; known: {', '.join(sorted(ADAPTERS))}"
        ) from None
