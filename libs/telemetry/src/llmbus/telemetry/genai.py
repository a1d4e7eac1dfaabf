"""The OpenTelemetry GenAI semantic conventions on the span of an upstream model call.

The worker's call to a provider is an HTTP client span (`llmbus.providers.http`); it is
also the GenAI inference span of the conventions (kind CLIENT, one per attempt). We
follow the conventions as of semconv 1.37+: `gen_ai.provider.name` (which replaced
`gen_ai.system`), `gen_ai.operation.name`, the request's model and parameters, the
answer's model, token usage and finish reasons. Callers set them only on a span that
records (`Span.is_recording()`), so a process that exports nothing builds nothing.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.trace import Span

from llmbus.proto import Usage

__all__ = ["PROVIDER_NAMES", "provider_name", "record_answer", "record_request"]

PROVIDER_NAMES: Final[dict[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    # Not among the conventions' well-known values: named the way they name theirs.
    "copilot": "github.copilot",
    "kiro": "aws.kiro",
}
"""`gen_ai.provider.name` by adapter family (an OpenAI-compatible upstream speaks the
`openai` API, which is what the attribute names)."""


def provider_name(family: str) -> str:
    return PROVIDER_NAMES.get(family, family)


def record_request(
    span: Span,
    *,
    operation: str,
    family: str,
    model: str,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> None:
    """What the call asks: `operation` is `chat` or `embeddings`, `model` the upstream's
    name of the model called."""
    span.set_attribute("gen_ai.operation.name", operation)
    span.set_attribute("gen_ai.provider.name", provider_name(family))
    span.set_attribute("gen_ai.request.model", model)
    if max_tokens is not None:
        span.set_attribute("gen_ai.request.max_tokens", max_tokens)
    if temperature is not None:
        span.set_attribute("gen_ai.request.temperature", temperature)


def record_answer(span: Span, *, model: str, usage: Usage | None, finish_reason: str) -> None:
    """What the answer came to: the model that answered, the tokens it counted (when the
    upstream reported them) and why it stopped (when it said)."""
    span.set_attribute("gen_ai.response.model", model)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    if finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", (finish_reason,))
