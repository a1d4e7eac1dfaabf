"""Gemini's `generateContent` wire format, shared with the Gemini-native client API:
the Structs live in `llmbus.api.gemini_wire` (the edge decodes clients' requests and
writes their answers with them); this module keeps the adapter's imports."""

from __future__ import annotations

from llmbus.api.gemini_wire import (
    Blob,
    Candidate,
    Content,
    ErrorBody,
    ErrorDetail,
    FileData,
    FunctionCall,
    FunctionCallingConfig,
    FunctionDeclaration,
    FunctionResponse,
    GenerateContentRequest,
    GenerateContentResponse,
    GenerationConfig,
    Part,
    PromptFeedback,
    SafetyRating,
    Status,
    StreamChunk,
    ThinkingConfig,
    Tool,
    ToolConfig,
    UsageMetadata,
)

__all__ = [
    "Blob",
    "Candidate",
    "Content",
    "ErrorBody",
    "ErrorDetail",
    "FileData",
    "FunctionCall",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "FunctionResponse",
    "GenerateContentRequest",
    "GenerateContentResponse",
    "GenerationConfig",
    "Part",
    "PromptFeedback",
    "SafetyRating",
    "Status",
    "StreamChunk",
    "ThinkingConfig",
    "Tool",
    "ToolConfig",
    "UsageMetadata",
]
