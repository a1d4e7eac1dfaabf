"""Stored responses of the OpenAI Responses API (`store`, `previous_response_id`): the
edge asks, auth keeps them in Redis for a configured time, each under the client key
that made it.

    auth.v1.responses.put      ResponsePut → ResponseStored
    auth.v1.responses.get      ResponseGet → ResponseRecord (error 404 unknown, 400 store off)
    auth.v1.responses.delete   ResponseGet → ResponseDeleted
"""

from __future__ import annotations

from llmbus.proto.base import Msg
from llmbus.proto.chat import Message

__all__ = ["ResponseDeleted", "ResponseGet", "ResponsePut", "ResponseRecord", "ResponseStored"]


class ResponseRecord(Msg, frozen=True, kw_only=True):
    """One stored response: the Response object as the client saw it (JSON, for
    `GET /v1/responses/{id}`) and the conversation in normalized messages, its input
    and output included, that a request naming it as `previous_response_id` continues."""

    response_id: str
    client_id: str
    response: bytes = b""
    messages: list[Message] = []
    created_at: float = 0.0


class ResponsePut(Msg, frozen=True, kw_only=True):
    record: ResponseRecord


class ResponseStored(Msg, frozen=True, kw_only=True):
    """`stored` is false when the store is switched off in the config."""

    stored: bool = True
    ttl_seconds: int = 0


class ResponseGet(Msg, frozen=True, kw_only=True):
    """A stored response of one client key: another key's is unknown to it."""

    client_id: str
    response_id: str


class ResponseDeleted(Msg, frozen=True, kw_only=True):
    response_id: str
    deleted: bool = True
