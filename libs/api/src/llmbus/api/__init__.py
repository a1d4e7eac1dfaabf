"""llmbus client dialects: wire types, translation to and from the normalized request,
and client-facing errors."""

from llmbus.api.anthropic import (
    MessageBuilder,
    MessageStreamWriter,
    anthropic_error_body,
    decode_count_tokens_request,
    decode_messages_request,
)
from llmbus.api.errors import (
    ApiError,
    AuthenticationFailed,
    GatewayTimeout,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UpstreamFailed,
    error_from_status,
    openai_error_body,
)
from llmbus.api.openai import ChunkWriter, CompletionBuilder, decode_chat_request, to_wire_messages
from llmbus.api.tokens import estimate_tokens

__all__ = [
    "ApiError",
    "AuthenticationFailed",
    "ChunkWriter",
    "CompletionBuilder",
    "GatewayTimeout",
    "InvalidRequest",
    "MessageBuilder",
    "MessageStreamWriter",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Unavailable",
    "UpstreamFailed",
    "anthropic_error_body",
    "decode_chat_request",
    "decode_count_tokens_request",
    "decode_messages_request",
    "error_from_status",
    "estimate_tokens",
    "openai_error_body",
    "to_wire_messages",
]
