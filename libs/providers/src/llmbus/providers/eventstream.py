"""AWS event-stream framing (`application/vnd.amazon.eventstream`), as Kiro streams.

A frame is `[total length u32][headers length u32][prelude CRC32][headers][payload]
[message CRC32]`, big-endian; the prelude CRC covers bytes 0-7, the message CRC every
byte before it. A header is `[name length u8][name][type u8][value]`; the value's type:

    0 true, 1 false (no value bytes)    5 int64           → `Long`
    2 int8            → `Byte`          6 bytes (u16 len) → `bytes`
    3 int16           → `Short`         7 string (u16 len) → `str`
    4 int32           → `int`           8 timestamp (int64 ms) → `datetime` (UTC)
                                        9 uuid (16 bytes) → `uuid.UUID`

Decoded integers keep their width as a type, so `encode_frame(decode(x)) == x`. Ours
rather than botocore's: botocore is 32 MB and copies its buffer on every chunk.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from llmbus.providers.errors import UpstreamProtocolError

__all__ = [
    "MAX_FRAME",
    "Byte",
    "EventStreamDecoder",
    "Frame",
    "HeaderValue",
    "Long",
    "Short",
    "aiter_frames",
    "encode_frame",
]

MAX_FRAME = 16 << 20
"""Largest frame accepted (botocore's limit on a payload); bigger means corruption."""
_PRELUDE = 12
_MIN_FRAME = _PRELUDE + 4
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class Byte(int):
    """A header integer sent as int8 (type 2)."""


class Short(int):
    """A header integer sent as int16 (type 3)."""


class Long(int):
    """A header integer sent as int64 (type 5); a plain `int` is sent as int32 (type 4)."""


HeaderValue = bool | int | bytes | str | datetime | uuid.UUID


@dataclass(frozen=True, slots=True)
class Frame:
    headers: dict[str, HeaderValue] = field(default_factory=dict)
    payload: bytes = b""

    def header(self, name: str) -> str:
        """A string header's value ('' when absent or not a string)."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else ""


_FIXED = {2: (">b", Byte), 3: (">h", Short), 4: (">i", int), 5: (">q", Long)}


def _headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    at = 0
    try:
        while at < len(data):
            size = data[at]
            name = data[at + 1 : at + 1 + size].decode("utf-8")
            kind = data[at + 1 + size]
            at += 2 + size
            value: HeaderValue
            if kind in (0, 1):
                value = kind == 0
            elif kind in _FIXED:
                fmt, cast = _FIXED[kind]
                value = cast(struct.unpack_from(fmt, data, at)[0])
                at += struct.calcsize(fmt)
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", data, at)
                raw = data[at + 2 : at + 2 + length]
                if len(raw) != length:
                    raise UpstreamProtocolError("event-stream header value runs past its headers")
                value = raw.decode("utf-8") if kind == 7 else bytes(raw)
                at += 2 + length
            elif kind == 8:
                (millis,) = struct.unpack_from(">q", data, at)
                value = _EPOCH + timedelta(milliseconds=millis)
                at += 8
            elif kind == 9:
                if at + 16 > len(data):
                    raise UpstreamProtocolError("event-stream header value runs past its headers")
                value = uuid.UUID(bytes=bytes(data[at : at + 16]))
                at += 16
            else:
                raise UpstreamProtocolError(f"event-stream header of unknown type {kind}")
            if name in headers:
                raise UpstreamProtocolError(f"event-stream header {name!r} appears twice")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError):
        raise UpstreamProtocolError("event-stream headers are malformed") from None
    return headers


class EventStreamDecoder:
    """Frames from bytes that arrive in arbitrary pieces. Raises `UpstreamProtocolError`
    on a bad CRC, an impossible length or malformed headers."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, chunk: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += chunk
        frames: list[Frame] = []
        while len(buffer) >= _PRELUDE:
            total, header_length, prelude_crc = struct.unpack_from(">III", buffer)
            if zlib.crc32(buffer[:8]) != prelude_crc:
                raise UpstreamProtocolError("event-stream prelude CRC mismatch")
            if total < _MIN_FRAME or total > self._max_frame or header_length > total - _MIN_FRAME:
                raise UpstreamProtocolError(f"event-stream frame of impossible length {total}")
            if len(buffer) < total:
                break
            view = memoryview(buffer)
            try:
                (message_crc,) = struct.unpack_from(">I", view, total - 4)
                if zlib.crc32(view[: total - 4]) != message_crc:
                    raise UpstreamProtocolError("event-stream message CRC mismatch")
                headers = _headers(bytes(view[_PRELUDE : _PRELUDE + header_length]))
                payload = bytes(view[_PRELUDE + header_length : total - 4])
            finally:
                view.release()
            del buffer[:total]
            frames.append(Frame(headers, payload))
        return frames

    def close(self) -> None:
        """The body ended: anything left over is a truncated frame."""
        if self._buffer:
            raise UpstreamProtocolError(
                f"event-stream ended inside a frame ({len(self._buffer)} bytes left over)"
            )


async def aiter_frames(chunks: AsyncIterator[bytes], max_frame: int = MAX_FRAME) -> AsyncIterator[Frame]:
    decoder = EventStreamDecoder(max_frame)
    async for chunk in chunks:
        for frame in decoder.feed(chunk):
            yield frame
    decoder.close()


def _header_bytes(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode("utf-8")
    head = struct.pack(">B", len(raw_name)) + raw_name
    if isinstance(value, bool):
        return head + (b"\x00" if value else b"\x01")
    if isinstance(value, Byte):
        return head + struct.pack(">Bb", 2, value)
    if isinstance(value, Short):
        return head + struct.pack(">Bh", 3, value)
    if isinstance(value, Long):
        return head + struct.pack(">Bq", 5, value)
    if isinstance(value, int):
        return head + struct.pack(">Bi", 4, value)
    if isinstance(value, bytes):
        return head + struct.pack(">BH", 6, len(value)) + value
    if isinstance(value, str):
        data = value.encode("utf-8")
        return head + struct.pack(">BH", 7, len(data)) + data
    if isinstance(value, datetime):
        millis = (value - _EPOCH) // _MILLISECOND
        return head + struct.pack(">Bq", 8, millis)
    return head + b"\x09" + value.bytes


def encode_frame(headers: Mapping[str, HeaderValue], payload: bytes = b"") -> bytes:
    """One frame (the mock's answers, tests)."""
    header_block = b"".join(_header_bytes(name, value) for name, value in headers.items())
    total = _PRELUDE + len(header_block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(header_block))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + header_block + payload
    return body + struct.pack(">I", zlib.crc32(body))
