"""llmbus providers: the built-in registry, configured providers, the upstream HTTP
client and its errors, and (in `.adapters`) the wire adapters."""

from llmbus.providers.registry import (
    BUILTIN,
    AuthType,
    Features,
    ModelSpec,
    ProviderKind,
    ProviderSpec,
    builtin,
)
from llmbus.providers.runtime import ConfiguredProvider, configured_providers

__all__ = [
    "BUILTIN",
    "AuthType",
    "ConfiguredProvider",
    "Features",
    "ModelSpec",
    "ProviderKind",
    "ProviderSpec",
    "builtin",
    "configured_providers",
]
