"""What a client key allows a single request, checked at the edge before it is routed:
the models it may use and the largest completion it may ask for. (Its RPM and TPM are
admitted by auth, which counts across every edge.)"""

from __future__ import annotations

from fnmatch import fnmatchcase

import msgspec

from llmbus.api import InvalidRequest, PermissionDenied
from llmbus.proto import ChatRequest, ClientLimits

__all__ = ["apply_key_limits"]


def apply_key_limits(chat: ChatRequest, limits: ClientLimits) -> ChatRequest:
    """The request as the key may send it: refused when it names a model outside the
    key's `models` (403) or asks for more than its `max_tokens` (400); a request that
    asks for no limit gets the key's, so leaving `max_tokens` out is no way around it."""
    if limits.models and not any(fnmatchcase(chat.model, pattern) for pattern in limits.models):
        raise PermissionDenied(
            f"This API key may not use the model `{chat.model}`.", code="model_not_allowed", param="model"
        )
    if limits.max_tokens:
        if chat.max_tokens is None:
            return msgspec.structs.replace(chat, max_tokens=limits.max_tokens)
        if chat.max_tokens > limits.max_tokens:
            raise InvalidRequest(
                f"`max_tokens` is {chat.max_tokens}, more than this API key allows ({limits.max_tokens}).",
                code="max_tokens_exceeded",
                param="max_tokens",
            )
    return chat
