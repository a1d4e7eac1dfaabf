"""The built-in provider registry: one entry per provider, metadata only.

An entry names the adapter family that speaks the provider's wire format; adapters live
in `llmbus.providers.adapters` and are imported only by workers. Every value here is a
default that the config file may override (endpoint, models, features).

Where the spec's example differs from what the real service does today, the entry
follows the real service and says so:
- Kiro: inference is at `q.<region>.amazonaws.com`, not `codeguru.amazonaws.com`; it
  streams (AWS event-stream) and takes tools and images, unlike the spec's matrix.
- Copilot: its chat API takes tools and images, unlike the spec's matrix.
- Roo Code and Kilo AI: the spec's hosts do not exist; their gateways are used.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from llmbus.providers.quirks import ModelParams, ParamPolicy

__all__ = [
    "BUILTIN",
    "DEFAULT_MAPPINGS",
    "AuthType",
    "Features",
    "ModelSpec",
    "ProviderKind",
    "ProviderSpec",
    "builtin",
]


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
    embeddings: bool = False
    """An embedding model (`POST /v1/embeddings`): it serves embeddings and nothing else.
    Set per model (built-in embedding models, or `supports_embeddings` in the config)."""


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    """The client-facing name."""
    max_tokens: int | None = None
    """Context window in tokens; None where the provider does not say."""
    upstream: str | None = None
    """The provider's own id, when it differs from `name`."""
    embeddings: bool = False
    """An embedding model rather than a chat model."""


class ProviderSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: ProviderKind
    family: str
    """Adapter family: openai, anthropic, gemini, copilot, kiro."""
    auth: AuthType
    endpoint: str
    models: tuple[ModelSpec, ...] = ()
    """The chat models served when the config lists none."""
    embedding_models: tuple[ModelSpec, ...] = ()
    """Embedding models the provider offers: known as such when the config lists them
    (they are not served unless listed)."""
    features: Features = Features()
    chat_path: str = "/v1/chat/completions"
    """Path of the chat API under an endpoint that carries no version segment."""
    display_name: str = ""
    params: ParamPolicy = ParamPolicy()
    """What the provider does with OpenAI's request parameters (OpenAI family only)."""


DEFAULT_MAPPINGS: dict[str, dict[str, str]] = {
    "claude-3-5-sonnet": {
        "claude": "claude-3-5-sonnet-20241022",
        "openrouter": "anthropic/claude-3.5-sonnet",
    },
    "gpt-4-turbo": {"openai": "gpt-4-turbo-preview", "openrouter": "openai/gpt-4-turbo"},
    "gemini-1.5-pro": {"gemini": "gemini-1.5-pro-preview-0514", "openrouter": "google/gemini-pro-1.5"},
}
"""The spec's default model mapping: client model → provider type → upstream model.
Applies when neither the model entry nor the provider's `model_mappings` names one."""


def _models(*specs: tuple[str, int | None] | tuple[str, int | None, str]) -> tuple[ModelSpec, ...]:
    out = []
    for spec in specs:
        name, tokens = spec[0], spec[1]
        upstream = spec[2] if len(spec) == 3 else None
        out.append(ModelSpec(name=name, max_tokens=tokens, upstream=upstream))
    return tuple(out)


_D, _A, _P = ProviderKind.DIRECT, ProviderKind.AGGREGATOR, ProviderKind.PROPRIETARY
_KEY, _OAUTH = AuthType.API_KEY, AuthType.OAUTH_DEVICE_FLOW
_K = 1_000
_M = 1_000_000


def _embedding_models(*specs: tuple[str, int]) -> tuple[ModelSpec, ...]:
    return tuple(ModelSpec(name=name, max_tokens=tokens, embeddings=True) for name, tokens in specs)


def _features(*, code: bool = False, vision: bool = True, multimodal: bool = False) -> Features:
    return Features(
        streaming=True, functions=True, vision=vision, code_generation=code, multimodal=multimodal
    )


# Parameter policies of the OpenAI family, from each provider's API reference (see
# `llmbus.providers.quirks`). OpenAI's reasoning models (o-series, gpt-5 but its chat
# variant) refuse the sampling parameters and want `max_completion_tokens`; its other
# models refuse `reasoning_effort`.
_PENALTIES = frozenset({"presence_penalty", "frequency_penalty"})
_OPENAI_PARAMS = ParamPolicy(
    unsupported=frozenset({"reasoning_effort"}),
    models=(
        ModelParams(
            prefixes=("gpt-5-chat",), params=ParamPolicy(unsupported=frozenset({"reasoning_effort"}))
        ),
        ModelParams(
            prefixes=("o1", "o3", "o4", "gpt-5"),
            params=ParamPolicy(
                unsupported=frozenset({"temperature", "top_p", *_PENALTIES}),
                renamed=(("max_tokens", "max_completion_tokens"),),
            ),
        ),
    ),
)
# Mistral's request has `random_seed`, no `user`, no `stream_options` (usage comes on the
# last chunk anyway) and `prompt_mode` rather than `reasoning_effort`.
_MISTRAL_PARAMS = ParamPolicy(
    unsupported=frozenset({"reasoning_effort"}),
    ignored=frozenset({"user"}),
    renamed=(("seed", "random_seed"),),
    stream_usage=False,
)
# Groq answers 400 to `messages[].name` (and to logprobs, logit_bias, n > 1, which the
# normalized request never carries).
_GROQ_PARAMS = ParamPolicy(message_names=False)
# DeepSeek's reasoner accepts the sampling parameters and ignores them.
_DEEPSEEK_PARAMS = ParamPolicy(
    unsupported=frozenset({"reasoning_effort"}),
    models=(
        ModelParams(
            prefixes=("deepseek-reasoner",),
            params=ParamPolicy(
                unsupported=frozenset({"reasoning_effort"}),
                ignored=frozenset({"temperature", "top_p", *_PENALTIES}),
            ),
        ),
    ),
)
# Hosts of open models take `top_k`.
_TOP_K_PARAMS = ParamPolicy(top_k=True)
# MiniMax takes `temperature` in (0, 1]; its documented request has no penalties.
_MINIMAX_PARAMS = ParamPolicy(ignored=_PENALTIES, max_temperature=1.0)


_SPECS = (
    # Direct providers.
    ProviderSpec(
        name="claude",
        display_name="Claude (Anthropic)",
        kind=_D,
        family="anthropic",
        auth=_KEY,
        endpoint="https://api.anthropic.com",
        models=_models(
            ("claude-3-5-sonnet", 200 * _K),
            ("claude-3-5-haiku", 200 * _K, "claude-3-5-haiku-20241022"),
            ("claude-3-opus", 200 * _K, "claude-3-opus-20240229"),
            ("claude-sonnet-4-5", 200 * _K),
            ("claude-haiku-4-5", 200 * _K),
        ),
        features=_features(code=True),
    ),
    ProviderSpec(
        name="gemini",
        display_name="Gemini (Google)",
        kind=_D,
        family="gemini",
        auth=_KEY,
        endpoint="https://generativelanguage.googleapis.com",
        models=_models(
            ("gemini-1.5-pro", 1 * _M),
            ("gemini-1.5-flash", 1 * _M),
            ("gemini-1.0-pro", 32 * _K),
            ("gemini-2.5-pro", 1 * _M),
            ("gemini-2.5-flash", 1 * _M),
        ),
        embedding_models=_embedding_models(("gemini-embedding-001", 2 * _K), ("text-embedding-004", 2 * _K)),
        features=_features(multimodal=True),
    ),
    ProviderSpec(
        name="openai",
        params=_OPENAI_PARAMS,
        display_name="OpenAI",
        kind=_D,
        family="openai",
        auth=_KEY,
        endpoint="https://api.openai.com",
        models=_models(
            ("gpt-4-turbo", 128 * _K),
            ("gpt-4", 8 * _K),
            ("gpt-3.5-turbo", 16 * _K),
            ("gpt-4o", 128 * _K),
            ("gpt-4o-mini", 128 * _K),
        ),
        embedding_models=_embedding_models(
            ("text-embedding-3-small", 8191),
            ("text-embedding-3-large", 8191),
            ("text-embedding-ada-002", 8191),
        ),
        features=_features(),
    ),
    ProviderSpec(
        name="mistral",
        params=_MISTRAL_PARAMS,
        display_name="Mistral AI",
        kind=_D,
        family="openai",
        auth=_KEY,
        endpoint="https://api.mistral.ai/v1",
        models=_models(
            ("mistral-large-latest", 128 * _K),
            ("mistral-small-latest", 128 * _K),
            ("codestral-latest", 256 * _K),
        ),
        features=_features(code=True),
    ),
    ProviderSpec(
        name="groq",
        params=_GROQ_PARAMS,
        display_name="Groq",
        kind=_D,
        family="openai",
        auth=_KEY,
        endpoint="https://api.groq.com/openai/v1",
        models=_models(("llama-3.3-70b-versatile", 131_072), ("llama-3.1-8b-instant", 131_072)),
        features=_features(vision=False),
    ),
    ProviderSpec(
        name="deepseek",
        params=_DEEPSEEK_PARAMS,
        display_name="DeepSeek",
        kind=_D,
        family="openai",
        auth=_KEY,
        endpoint="https://api.deepseek.com/v1",
        models=_models(("deepseek-chat", 128 * _K), ("deepseek-reasoner", 128 * _K)),
        features=_features(code=True, vision=False),
    ),
    # Aggregators.
    ProviderSpec(
        name="openrouter",
        params=_TOP_K_PARAMS,
        display_name="OpenRouter",
        kind=_A,
        family="openai",
        auth=_KEY,
        endpoint="https://openrouter.ai/api/v1",
        models=_models(
            ("claude-3-5-sonnet", 200 * _K),
            ("gpt-4-turbo", 128 * _K),
            ("gemini-1.5-pro", 1 * _M),
            ("anthropic/claude-3.5-sonnet", 200 * _K),
        ),
        features=_features(code=True, multimodal=True),
    ),
    ProviderSpec(
        name="together",
        params=_TOP_K_PARAMS,
        display_name="Together AI",
        kind=_A,
        family="openai",
        auth=_KEY,
        endpoint="https://api.together.xyz/v1",
        models=_models(
            ("meta-llama/Llama-3.3-70B-Instruct-Turbo", 131_072),
            ("Qwen/Qwen2.5-Coder-32B-Instruct", 32_768),
        ),
        features=_features(code=True),
    ),
    ProviderSpec(
        name="fireworks",
        params=_TOP_K_PARAMS,
        display_name="Fireworks AI",
        kind=_A,
        family="openai",
        auth=_KEY,
        endpoint="https://api.fireworks.ai/inference/v1",
        models=_models(
            ("accounts/fireworks/models/llama-v3p1-70b-instruct", 131_072),
            ("accounts/fireworks/models/deepseek-v3", 131_072),
        ),
        features=_features(code=True),
    ),
    ProviderSpec(
        name="novita",
        params=_TOP_K_PARAMS,
        display_name="Novita AI",
        kind=_A,
        family="openai",
        auth=_KEY,
        endpoint="https://api.novita.ai/v3/openai",
        models=_models(("meta-llama/llama-3.1-70b-instruct", 131_072), ("deepseek/deepseek-v3", 64 * _K)),
        features=_features(code=True),
    ),
    ProviderSpec(
        name="siliconflow",
        params=_TOP_K_PARAMS,
        display_name="SiliconFlow",
        kind=_A,
        family="openai",
        auth=_KEY,
        endpoint="https://api.siliconflow.cn/v1",
        models=_models(("Qwen/Qwen2.5-72B-Instruct", 32_768), ("deepseek-ai/DeepSeek-V3", 64 * _K)),
        features=_features(code=True),
    ),
    # Proprietary providers.
    ProviderSpec(
        name="kiro",
        display_name="Kiro (AWS CodeWhisperer)",
        kind=_P,
        family="kiro",
        auth=_OAUTH,
        endpoint="https://q.us-east-1.amazonaws.com",
        models=_models(
            # Kiro's current modelIds (ListAvailableModels); the legacy
            # `CLAUDE_SONNET_4_5_20250929_V1_0` form is what older clients sent.
            ("claude-sonnet-4-5", 200 * _K, "claude-sonnet-4.5"),
            ("claude-sonnet-4", 200 * _K, "claude-sonnet-4"),
            ("claude-haiku-4-5", 200 * _K, "claude-haiku-4.5"),
            ("claude-opus-4-5", 200 * _K, "claude-opus-4.5"),
        ),
        features=_features(code=True),
    ),
    ProviderSpec(
        name="copilot",
        display_name="GitHub Copilot",
        kind=_P,
        family="copilot",
        auth=_OAUTH,
        endpoint="https://api.githubcopilot.com",
        chat_path="/chat/completions",
        models=_models(
            ("gpt-4o", None), ("gpt-4.1", None), ("claude-sonnet-4", None), ("gemini-2.5-pro", None)
        ),
        features=_features(code=True),
    ),
    ProviderSpec(
        name="roocode",
        display_name="Roo Code",
        kind=_P,
        family="openai",
        auth=_KEY,
        endpoint="https://api.roocode.com/proxy/v1",
        models=_models(("xai/grok-code-fast-1", 256 * _K)),
        features=_features(code=True),
    ),
    ProviderSpec(
        name="kiloai",
        params=_TOP_K_PARAMS,
        display_name="Kilo AI",
        kind=_P,
        family="openai",
        auth=_KEY,
        endpoint="https://api.kilo.ai/api/openrouter",
        chat_path="/chat/completions",
        models=_models(("anthropic/claude-sonnet-4", 200 * _K), ("google/gemini-2.5-pro", 1 * _M)),
        features=_features(code=True),
    ),
    ProviderSpec(
        name="minimax",
        params=_MINIMAX_PARAMS,
        display_name="MiniMax",
        kind=_P,
        family="openai",
        auth=_KEY,
        endpoint="https://api.minimax.chat/v1",
        models=_models(("MiniMax-M1", 1 * _M), ("MiniMax-Text-01", 1 * _M)),
        features=_features(code=True, vision=False),
    ),
)

BUILTIN: dict[str, ProviderSpec] = {spec.name: spec for spec in _SPECS}


def builtin(name: str) -> ProviderSpec | None:
    return BUILTIN.get(name)
