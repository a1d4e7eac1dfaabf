"""Request bodies decoded the same way for every client API: msgspec's validation error
turned into an `InvalidRequest` that names the offending field (`param`), and bodies that
are not JSON, not UTF-8 or nested too deep refused with their own codes."""

from __future__ import annotations

import re
from typing import Final, TypeVar

import msgspec

from llmbus.api.errors import InvalidRequest

__all__ = ["decode_body", "invalid_value"]

T = TypeVar("T")

_AT_PATH: Final = re.compile(r" - at `\$\.?(.*)`$")
_MISSING: Final = re.compile(r"missing required field `([^`]+)`")


def decode_body(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """`decoder.decode(body)`, or the InvalidRequest a client can act on."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_value(exc) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not valid UTF-8", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequest("the body's JSON nests too deep", code="json_too_deep") from None


def invalid_value(exc: msgspec.ValidationError) -> InvalidRequest:
    """msgspec's "Expected `int`, got `str` - at `$.messages[0].role`" as "Expected `int`,
    got `str` at `messages[0].role`" with that path as `param`; a missing field as
    "missing required field `messages[0].role`"."""
    message = str(exc)
    at = _AT_PATH.search(message)
    path = at.group(1) if at else ""
    if at is not None:
        message = message[: at.start()]
    param: str | None
    if missing := _MISSING.search(message):
        param = f"{path}.{missing.group(1)}" if path else missing.group(1)
        message = f"missing required field `{param}`"
    elif path:
        param = path
        message = f"{message} at `{param}`"
    else:
        param = None
    return InvalidRequest(message, param=param, code="invalid_value")
