"""The AWS event-stream decoder and encoder.

`fixtures/eventstream/frames.bin` is independent of our encoder: its first three frames
are the published AWS event-stream test vectors (as botocore's own tests carry them:
an empty message, one header of every type, an error message), the fourth a Kiro
`assistantResponseEvent` laid out field by field from the documented layout.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmbus.providers.errors import UpstreamProtocolError
from llmbus.providers.eventstream import (
    Byte,
    EventStreamDecoder,
    Frame,
    HeaderValue,
    Long,
    Short,
    aiter_frames,
    encode_frame,
)

FIXTURE = (Path(__file__).parent / "fixtures" / "eventstream" / "frames.bin").read_bytes()
EMPTY_VECTOR = FIXTURE[:16]
ALL_TYPES_VECTOR = FIXTURE[16 : 16 + 0x62]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

EVERY_TYPE: dict[str, HeaderValue] = {
    "true": True,
    "false": False,
    "byte": Byte(-7),
    "short": Short(-300),
    "int": 70000,
    "long": Long(-(2**40)),
    "bytes": b"\x00\xffraw",
    "string": "héllo",
    "timestamp": EPOCH + timedelta(milliseconds=1_700_000_000_123),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
}


def decode_all(data: bytes, step: int | None = None) -> list[Frame]:
    decoder = EventStreamDecoder()
    frames: list[Frame] = []
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        frames += decoder.feed(data[i : i + step])
    decoder.close()
    return frames


def test_fixture_decodes_to_the_published_vectors_and_the_kiro_frame() -> None:
    empty, all_types, error, kiro = decode_all(FIXTURE)
    assert empty == Frame({}, b"")
    assert all_types.headers == {
        "0": True,
        "1": False,
        "2": 2,
        "3": 3,
        "4": 4,
        "5": 5,
        "6": b"bytes",
        "7": "utf8",
        "8": EPOCH + timedelta(milliseconds=8),
        "9": uuid.UUID(bytes=b"0123456789abcdef"),
    }
    assert [type(all_types.headers[k]) for k in "2345"] == [Byte, Short, int, Long]
    assert error.headers == {":message-type": "error", ":error-code": "code", ":error-message": "message"}
    assert kiro.header(":event-type") == "assistantResponseEvent"
    assert kiro.header(":message-type") == "event"
    assert kiro.payload == b'{"content":"Hello"}'


def test_encoder_reproduces_the_published_vectors_byte_for_byte() -> None:
    assert encode_frame({}) == EMPTY_VECTOR
    (decoded,) = decode_all(ALL_TYPES_VECTOR)
    assert encode_frame(decoded.headers, decoded.payload) == ALL_TYPES_VECTOR


def test_every_header_type_round_trips_with_its_width() -> None:
    (frame,) = decode_all(encode_frame(EVERY_TYPE, b"payload"))
    assert frame.headers == EVERY_TYPE
    assert {k: type(v) for k, v in frame.headers.items()} == {k: type(v) for k, v in EVERY_TYPE.items()}
    assert frame.payload == b"payload"


@pytest.mark.parametrize("step", [1, 2, 3, 5, 11, 12, 13, 64])
def test_frames_split_at_any_chunk_boundary_decode_the_same(step: int) -> None:
    data = FIXTURE + encode_frame(EVERY_TYPE, b"x" * 300)
    assert decode_all(data, step) == decode_all(data)


def test_a_bad_prelude_crc_is_refused() -> None:
    data = bytearray(encode_frame({":event-type": "x"}, b"{}"))
    data[8] ^= 0x01
    with pytest.raises(UpstreamProtocolError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(data))


def test_a_corrupted_payload_fails_the_message_crc() -> None:
    data = bytearray(encode_frame({":event-type": "x"}, b'{"content":"hi"}'))
    data[-6] ^= 0x20
    with pytest.raises(UpstreamProtocolError, match="message CRC"):
        EventStreamDecoder().feed(bytes(data))


def test_a_stream_that_ends_inside_a_frame_is_truncated() -> None:
    data = encode_frame({":event-type": "x"}, b"{}")
    decoder = EventStreamDecoder()
    assert decoder.feed(data[:-3]) == []
    with pytest.raises(UpstreamProtocolError, match="ended inside a frame"):
        decoder.close()


def test_a_frame_longer_than_the_limit_is_refused_before_it_is_buffered() -> None:
    prelude = struct.pack(">II", 1 << 20, 0)
    with pytest.raises(UpstreamProtocolError, match="impossible length"):
        EventStreamDecoder(max_frame=64 << 10).feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_headers_longer_than_the_frame_are_refused() -> None:
    prelude = struct.pack(">II", 16, 4)
    with pytest.raises(UpstreamProtocolError, match="impossible length"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_a_duplicate_header_is_refused() -> None:
    header = b"\x04test\x07\x00\x04asdf"
    prelude = struct.pack(">II", 16 + 2 * len(header), 2 * len(header))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + header * 2
    with pytest.raises(UpstreamProtocolError, match="twice"):
        EventStreamDecoder().feed(body + struct.pack(">I", zlib.crc32(body)))


def test_an_unknown_header_type_is_refused() -> None:
    header = b"\x01x\x0a"
    prelude = struct.pack(">II", 16 + len(header), len(header))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + header
    with pytest.raises(UpstreamProtocolError, match="unknown type 10"):
        EventStreamDecoder().feed(body + struct.pack(">I", zlib.crc32(body)))


async def test_aiter_frames_reads_chunks_and_fails_on_a_truncated_tail() -> None:
    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    frames = [frame async for frame in aiter_frames(chunks(FIXTURE))]
    assert len(frames) == 4
    with pytest.raises(UpstreamProtocolError):
        _ = [frame async for frame in aiter_frames(chunks(FIXTURE[:-1]))]
