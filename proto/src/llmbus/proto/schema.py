"""The contract as a JSON Schema document, committed at `proto/schema/v1.json`; a
contract test fails when the Structs drift from it."""

from __future__ import annotations

from typing import Any

import msgspec

from llmbus.proto import auth
from llmbus.proto.chat import ChatRequest
from llmbus.proto.control import (
    Cooldown,
    ProviderEnabled,
    ProviderToggle,
    RegistryQuery,
    RegistryReply,
    RuntimeState,
    RuntimeStateRequest,
    WorkerStatus,
)
from llmbus.proto.embeddings import EmbedRequest
from llmbus.proto.messages import (
    AnyEvent,
    BusError,
    CancelRequest,
    ExecRequest,
    KeyEvent,
    KeyVerifyReply,
    KeyVerifyRequest,
    RouteRequest,
    ServiceHeartbeat,
)
from llmbus.proto.responses import ResponseDeleted, ResponseGet, ResponsePut, ResponseRecord, ResponseStored

__all__ = ["MESSAGES", "schema_document"]

MESSAGES: dict[str, Any] = {
    "ChatRequest": ChatRequest,
    "EmbedRequest": EmbedRequest,
    "RouteRequest": RouteRequest,
    "ExecRequest": ExecRequest,
    "Event": AnyEvent,
    "CancelRequest": CancelRequest,
    "BusError": BusError,
    "KeyVerifyRequest": KeyVerifyRequest,
    "KeyVerifyReply": KeyVerifyReply,
    "KeyEvent": KeyEvent,
    "ServiceHeartbeat": ServiceHeartbeat,
    "ProviderToggle": ProviderToggle,
    "ProviderEnabled": ProviderEnabled,
    "Cooldown": Cooldown,
    "RuntimeStateRequest": RuntimeStateRequest,
    "RuntimeState": RuntimeState,
    "WorkerStatus": WorkerStatus,
    "RegistryQuery": RegistryQuery,
    "RegistryReply": RegistryReply,
    "ResponsePut": ResponsePut,
    "ResponseStored": ResponseStored,
    "ResponseGet": ResponseGet,
    "ResponseRecord": ResponseRecord,
    "ResponseDeleted": ResponseDeleted,
    **{
        name: getattr(auth, name)
        for name in auth.__all__
        if name not in {"ClientLimits", "QuotaScope", "UsageCounts", "UsageDimension", "UsageRow"}
    },
}


def schema_document() -> dict[str, Any]:
    names = list(MESSAGES)
    schemas, components = msgspec.json.schema_components([MESSAGES[n] for n in names])
    return {
        "title": "llmbus bus contract v1",
        "messages": dict(zip(names, schemas, strict=True)),
        "$defs": dict(sorted(components.items())),
    }
