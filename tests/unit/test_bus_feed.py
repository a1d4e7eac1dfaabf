"""The bus client's read path: nats-py's parser run on every read as the socket delivers
it (`llmbus.bus.client._Feed`), in order even when the parser has to wait."""

from __future__ import annotations

import asyncio

import pytest

from llmbus.bus.client import _Feed


class _Parser:
    """Stands for nats-py's `Parser.parse`: records what it parsed; a read whose bytes
    start with `wait` waits for `release` before it ends (nats-py waits so on a forced
    flush), one that starts with `bad` fails as a malformed message would."""

    def __init__(self) -> None:
        self.parsed: list[bytes] = []
        self.release = asyncio.Event()

    async def parse(self, data: bytes) -> None:
        if data.startswith(b"bad"):
            raise ValueError("malformed")
        self.parsed.append(b"start " + data)
        if data.startswith(b"wait"):
            await self.release.wait()
        self.parsed.append(b"end " + data)


async def test_a_read_is_parsed_at_once_within_the_call() -> None:
    parser = _Parser()
    feed = _Feed(parser.parse, asyncio.StreamReader())
    feed(b"one")
    feed(b"two")
    assert parser.parsed == [b"start one", b"end one", b"start two", b"end two"]


async def test_reads_behind_a_waiting_parser_wait_their_turn_in_order() -> None:
    parser = _Parser()
    feed = _Feed(parser.parse, asyncio.StreamReader())
    feed(b"wait-1")
    feed(b"two")
    feed(b"wait-3")
    feed(b"four")
    await asyncio.sleep(0.01)
    assert parser.parsed == [b"start wait-1"]
    parser.release.set()
    for _ in range(50):
        if len(parser.parsed) == 8:
            break
        await asyncio.sleep(0.001)
    assert parser.parsed == [
        b"start wait-1",
        b"end wait-1",
        b"start two",
        b"end two",
        b"start wait-3",
        b"end wait-3",
        b"start four",
        b"end four",
    ]
    # Once the backlog is done, reads are parsed at once again.
    feed(b"five")
    assert parser.parsed[-2:] == [b"start five", b"end five"]


async def test_a_parser_error_reaches_the_read_loop_as_a_read_error() -> None:
    reader = asyncio.StreamReader()
    feed = _Feed(_Parser().parse, reader)
    feed(b"bad")
    with pytest.raises(ValueError, match="malformed"):
        await reader.read(100)


async def test_a_parser_error_after_a_wait_reaches_the_read_loop_too() -> None:
    parser = _Parser()
    reader = asyncio.StreamReader()
    feed = _Feed(parser.parse, reader)
    feed(b"wait")
    feed(b"bad")
    parser.release.set()
    with pytest.raises(ValueError, match="malformed"):
        await asyncio.wait_for(reader.read(100), 1)


async def test_stopping_cancels_a_waiting_parse_and_drops_the_backlog() -> None:
    parser = _Parser()
    feed = _Feed(parser.parse, asyncio.StreamReader())
    feed(b"wait")
    feed(b"two")
    await asyncio.sleep(0)
    feed.stop()
    parser.release.set()
    await asyncio.sleep(0.01)
    assert parser.parsed == [b"start wait"]
