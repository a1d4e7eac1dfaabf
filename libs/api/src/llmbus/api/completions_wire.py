"""OpenAI legacy completions (`POST /v1/completions`) wire types, as clients send them."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from llmbus.api.openai_wire import TOKENS_MAX, StreamOptions

__all__ = ["CompletionRequest"]


class CompletionRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """OpenAI's `CreateCompletionRequest`. `prompt` may be a string, a list of strings,
    or token arrays (refused: a gateway in front of every family cannot pass token ids
    to a chat model); it is validated after decoding."""

    model: str
    prompt: str | list[Any] | None = None
    suffix: str | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=0, le=TOKENS_MAX)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    n: int | None = None
    best_of: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    echo: bool | None = None
    logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    presence_penalty: Annotated[float, msgspec.Meta(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, msgspec.Meta(ge=-2, le=2)] | None = None
    seed: int | None = None
    user: str | None = None
