"""The edge's transport wrapper: what uvicorn writes in one loop pass leaves in one send,
and nothing written is lost to a close."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from llmbus.edge.server import HeadLimitedProtocol, _LingeringTransport


class _Socket:
    """The transport under the wrapper: records what reaches the socket."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.eof = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.sent.append(data)

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _wrapped(request_complete: bool = True) -> tuple[_LingeringTransport, _Socket]:
    socket = _Socket()
    protocol = cast(HeadLimitedProtocol, SimpleNamespace(request_complete=request_complete, lingering=False))
    return _LingeringTransport(cast(asyncio.Transport, socket), protocol), socket


async def test_a_head_a_body_and_a_chunked_end_written_in_one_pass_are_one_send() -> None:
    transport, socket = _wrapped()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"5\r\nhello\r\n")
    transport.write(b"0\r\n\r\n")
    assert socket.sent == []  # not yet: at the end of this pass
    await asyncio.sleep(0)
    assert socket.sent == [b"HTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert socket.sent[-1] == b"next"


async def test_a_close_sends_what_was_written_first() -> None:
    transport, socket = _wrapped()
    transport.write(b"the answer")
    transport.close()
    assert socket.sent == [b"the answer"]
    assert socket.closed
    await asyncio.sleep(0)  # the pass's own flush finds nothing left
    assert socket.sent == [b"the answer"]


async def test_a_lingering_close_sends_the_refusal_before_its_fin() -> None:
    transport, socket = _wrapped(request_complete=False)
    transport.write(b"HTTP/1.1 413 Content Too Large\r\n\r\n")
    transport.close()
    assert socket.sent == [b"HTTP/1.1 413 Content Too Large\r\n\r\n"]
    assert socket.eof
    assert not socket.closed
    transport.close_now()
    assert socket.closed
