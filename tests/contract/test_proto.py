"""The bus contract: the committed JSON Schema matches the Structs, and every committed
encoded sample (the wire bytes of an earlier version) still decodes."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from llmbus.proto import (
    AnyEvent,
    Delta,
    Done,
    Error,
    ExecRequest,
    Heartbeat,
    RouteRequest,
    Started,
    Usage,
    chat_codec,
)
from llmbus.proto.schema import MESSAGES, schema_document

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((Path(__file__).parent / "samples" / "v1").glob("*.msgpack"))


def test_committed_schema_matches_the_structs() -> None:
    committed = json.loads((ROOT / "proto" / "schema" / "v1.json").read_text())
    assert committed == json.loads(json.dumps(schema_document())), (
        "proto/schema/v1.json is out of date: regenerate it with `make proto-schema` "
        "and check that the change is additive (new fields with defaults only)"
    )


def test_every_message_has_a_sample() -> None:
    names = {path.stem.split(".")[0] for path in SAMPLES}
    assert names == set(MESSAGES)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_samples_of_the_previous_contract_still_decode(path: Path) -> None:
    message_type = MESSAGES[path.stem.split(".")[0]]
    decoded = msgspec.msgpack.decode(path.read_bytes(), type=message_type)
    again = msgspec.msgpack.decode(msgspec.msgpack.encode(decoded), type=message_type)
    assert again == decoded


def test_route_request_body_is_forwarded_without_decoding() -> None:
    route = msgspec.msgpack.decode(
        (Path(__file__).parent / "samples/v1/RouteRequest.msgpack").read_bytes(), type=RouteRequest
    )
    assert isinstance(route.body, msgspec.Raw)
    assert chat_codec.decode(route.body).model == "gpt-4o-mini"


def test_exec_request_is_a_route_request_plus_target() -> None:
    route_fields = set(RouteRequest.__struct_fields__)
    assert route_fields < set(ExecRequest.__struct_fields__)


@pytest.mark.parametrize("event_type", [Started, Delta, Usage, Done, Error, Heartbeat])
def test_events_decode_by_their_tag(event_type: type[msgspec.Struct]) -> None:
    assert event_type.__struct_config__.tag in {"started", "delta", "usage", "done", "error", "heartbeat"}
    assert event_type in AnyEvent.__args__
