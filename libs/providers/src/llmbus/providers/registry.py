"""The built-in provider registry: one entry per provider, metadata only.

An entry names the adapter family that speaks the provider's wire format; adapters live
in `llmbus.providers.adapters` and are imported only by workers.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["BUILTIN", "AuthType", "Features", "ModelSpec", "ProviderKind", "ProviderSpec", "builtin"]


class ProviderKind(StrEnum):
    DIRECT = "direct"
    AGGREGATOR = "aggregator"
    PROPRIETARY = "proprietary"
    CUSTOM = "custom"


class AuthType(StrEnum):
    API_KEY = "api_key"
    OAUTH_DEVICE_FLOW = "oauth_device_flow"
    TOKEN_FILE = "token_file"
    NONE = "none"


class Features(msgspec.Struct, frozen=True, kw_only=True):
    streaming: bool = True
    functions: bool = False
    vision: bool = False
    code_generation: bool = False
    multimodal: bool = False


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    max_tokens: int | None = None


class ProviderSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: ProviderKind
    family: str
    """Adapter family: openai, anthropic, gemini, copilot, kiro."""
    auth: AuthType
    endpoint: str
    models: tuple[ModelSpec, ...] = ()
    features: Features = Features()


def _models(*specs: tuple[str, int | None]) -> tuple[ModelSpec, ...]:
    return tuple(ModelSpec(name=name, max_tokens=tokens) for name, tokens in specs)


_D, _A, _P = ProviderKind.DIRECT, ProviderKind.AGGREGATOR, ProviderKind.PROPRIETARY
_KEY = AuthType.API_KEY
_ALL = Features(streaming=True, functions=True, vision=True, code_generation=False)

BUILTIN: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            name="openai",
            kind=_D,
            family="openai",
            auth=_KEY,
            endpoint="https://api.openai.com",
            models=_models(("gpt-4-turbo", 128_000), ("gpt-4", 8_192), ("gpt-3.5-turbo", 16_385)),
            features=_ALL,
        ),
    )
}


def builtin(name: str) -> ProviderSpec | None:
    return BUILTIN.get(name)
