"""Reading the upstreams' JSON answers: typed, or None when they do not fit; an error's
one-line reason that names the upstream's error code but never echoes the body."""

from __future__ import annotations

from typing import TypeVar

import msgspec

__all__ = ["read", "reason"]

T = TypeVar("T")


class _Error(msgspec.Struct):
    error: str = ""
    message: str = ""


def read(body: bytes, kind: type[T]) -> T | None:
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def reason(status: int, body: bytes) -> str:
    """`HTTP 400, invalid_client`: the status and the upstream's error code or message
    (cut short), never the rest of a body that may echo what was sent."""
    error = read(body, _Error)
    detail = (error.error or error.message) if error is not None else ""
    return f"HTTP {status}" + (f", {detail[:100]}" if detail else "")
