"""What an OpenAI-compatible provider does with the parameters of OpenAI's chat API, as data.

"OpenAI-compatible" providers differ in the parameters they take: some reject one with a
400 (Groq and `messages[].name`), some name it differently (Mistral's `random_seed`),
some accept one and ignore it (DeepSeek's reasoner and `temperature`), some take more
than OpenAI does (`top_k` on the aggregators). A `ParamPolicy` on each `ProviderSpec`
says which, so the adapter never sends a parameter the provider would refuse and never
drops one without saying so:

- `unsupported`: a request that sets it is refused with a clear 400 (`Unsupported`);
- `ignored`: documented as accepted without effect, or absent from the provider's API
  schema while harmless to leave out (`user`): dropped, with a log line;
- `renamed`: sent under the provider's name for it;
- `top_k`, `message_names`, `stream_usage`, `max_temperature`: what the provider takes
  beyond or short of OpenAI's own request.

Names are those of the OpenAI request body (`temperature`, `seed`, `max_tokens`, ...),
plus `thinking_budget` from the normalized request. `thinking_budget` goes out as
`reasoning_effort` where the provider takes that and the request did not set it
(`effort_for_budget`); elsewhere it is refused.

Some rules hold for a family of models only (OpenAI's reasoning models want
`max_completion_tokens` and refuse `temperature`): `models` lists policies by model-name
prefix, the first match replacing the provider's own. Finding the policy of a request
is a few `startswith` calls, and applying it a few set lookups.
"""

from __future__ import annotations

import logging

import msgspec

__all__ = ["ModelParams", "ParamPolicy", "effort_for_budget"]


class ModelParams(msgspec.Struct, frozen=True, kw_only=True):
    """The policy for the upstream models whose name starts with one of `prefixes`."""

    prefixes: tuple[str, ...]
    params: ParamPolicy


class ParamPolicy(msgspec.Struct, frozen=True, kw_only=True):
    unsupported: frozenset[str] = frozenset()
    """Parameters the provider rejects: refused with a 400 naming the provider."""
    ignored: frozenset[str] = frozenset()
    """Parameters the provider ignores or does not know: dropped, with a log line."""
    renamed: tuple[tuple[str, str], ...] = ()
    """(OpenAI name, provider's name) pairs."""
    top_k: bool = False
    """Takes `top_k` (OpenAI has none; most aggregators and open-model hosts do)."""
    message_names: bool = True
    """Takes `messages[].name`; where it does not, names are dropped (with a log line)."""
    stream_usage: bool = True
    """Takes `stream_options.include_usage`; where it does not, the stream's last chunk
    carries the usage unasked."""
    max_temperature: float = 2.0
    """Highest `temperature` it accepts; above it the request is refused."""
    models: tuple[ModelParams, ...] = ()
    """Policies for families of models, by name prefix; the first match wins."""

    def for_model(self, model: str) -> ParamPolicy:
        """The policy for `model`: the first of `models` whose prefix it has, else this one."""
        for rule in self.models:
            if model.startswith(rule.prefixes):
                return rule.params
        return self


def effort_for_budget(budget: int) -> str:
    """`reasoning_effort` for a thinking budget in tokens, the inverse of the budgets that
    LiteLLM gives the efforts when it goes the other way (low 1024, medium 2048, high 4096):
    below 2048 is low, below 4096 medium, the rest high."""
    if budget < 2048:
        return "low"
    if budget < 4096:
        return "medium"
    return "high"


log = logging.getLogger(__name__)
_announced: set[tuple[str, str, str]] = set()


def dropped(name: str, provider: str, model: str) -> None:
    """Say once per provider, model and parameter that a parameter was left out: every
    adapter that drops what its upstream does not take says so here, never silently."""
    key = (name, provider, model)
    if key not in _announced:
        _announced.add(key)
        log.info("leaving out `%s`: %s does not take it for %s", name, provider, model)
