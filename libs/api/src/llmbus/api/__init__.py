"""llmbus client dialects: wire types, translation to and from the normalized request,
and client-facing errors."""

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

__all__ = [
    "ApiError",
    "AuthenticationFailed",
    "ChunkWriter",
    "CompletionBuilder",
    "GatewayTimeout",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Unavailable",
    "UpstreamFailed",
    "decode_chat_request",
    "error_from_status",
    "openai_error_body",
    "to_wire_messages",
]
