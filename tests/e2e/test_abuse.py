"""What a client can make the real edge process hold: an edge of its own on the e2e stack,
with small limits, attacked over real sockets.

- a chunked 100 MB body is refused (413) after about its limit, without the edge
  buffering it; a body that stalls (Content-Length longer than what is sent, or a chunked
  body that stops) gets a 408 and its connection is closed;
- four 64 MB headers are refused (431) while `/healthz` answers on other connections;
- concurrent requests beyond a key's cap get 429 with Retry-After, beyond the edge's
  total a 503; every place is given back once the requests end or their clients leave.

Outcomes are counted: succeeded, clean error, hung (which must be 0). No timed
assertion: each exchange only has a generous client timeout."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from llmbus.testing import Stack, free_port
from tests.e2e.conftest import CLIENT_KEY

SECOND_KEY = "sk-test-second"
BODY_LIMIT = 1024 * 1024
PER_KEY = 3
TOTAL = 5
HUNG = 60.0
"""A client timeout no healthy exchange comes near: past it, the exchange counts as hung."""

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def edge(stack: Stack) -> Iterator[tuple[str, int]]:
    """An edge with small limits on the e2e stack: its URL and its process id."""
    port = free_port()
    process = stack.start_service(
        "edge-abuse",
        "edge",
        {
            "LLMBUS_PORT": str(port),
            "LLMBUS_HOST": "127.0.0.1",
            "LLMBUS_MAX_BODY_BYTES": str(BODY_LIMIT),
            "LLMBUS_BODY_TIMEOUT": "2",
            "LLMBUS_MAX_HEADER_BYTES": str(32 * 1024),
            "LLMBUS_MAX_CONCURRENT_PER_KEY": str(PER_KEY),
            "LLMBUS_MAX_CONCURRENT_REQUESTS": str(TOTAL),
        },
    )
    try:
        stack.wait_ready("edge-abuse")
        assert process.popen is not None
        yield f"http://127.0.0.1:{port}", process.popen.pid
    finally:
        process.stop()
        stack.processes.pop("edge-abuse", None)
    assert "Traceback" not in process.log_text()


def _port(edge: tuple[str, int]) -> int:
    return int(edge[0].rsplit(":", 1)[1])


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        match = re.search(r"VmRSS:\s+(\d+) kB", status.read())
    assert match
    return int(match.group(1)) / 1024


class Exchange:
    """One raw HTTP/1.1 exchange: the request written in pieces while the answer is read,
    so that an answer sent before the request is complete is not lost."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self.answer = b""

    async def run(self, head: bytes, pieces: Any = (), stall: bool = False) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def write() -> None:
            try:
                writer.write(head)
                await writer.drain()
                self.sent += len(head)
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                    self.sent += len(piece)
                if stall:
                    await asyncio.sleep(HUNG * 2)
            except ConnectionError:
                pass  # refused and closed before the request was complete

        async def read() -> None:
            try:
                while chunk := await reader.read(65536):
                    self.answer += chunk  # kept as it comes: a reset after it loses nothing
            except ConnectionError:
                pass

        writing = asyncio.create_task(write())
        try:
            await asyncio.wait_for(read(), HUNG)
        finally:
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
            writer.close()
        return self.answer

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1]) if self.answer.startswith(b"HTTP/1.1 ") else 0

    def json(self) -> Any:
        head, _, body = self.answer.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in head.lower():
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        return json.loads(body)

    def header(self, name: bytes) -> bytes | None:
        for line in self.answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                return value.strip()
        return None


def _post_head(path: str, *headers: bytes) -> bytes:
    auth = b"x-api-key: %s\r\n" % CLIENT_KEY.encode()
    return (
        b"POST %s HTTP/1.1\r\nhost: edge\r\ncontent-type: application/json\r\n%s" % (path.encode(), auth)
        + b"".join(headers)
        + b"\r\n"
    )


def _chunked(total: int, size: int) -> Iterator[bytes]:
    piece = b"%x\r\n" % size + b" " * size + b"\r\n"
    for _ in range(total // size):
        yield piece


async def test_a_chunked_100mb_body_is_refused_without_being_buffered(edge: tuple[str, int]) -> None:
    pid = edge[1]
    before = _rss_mb(pid)
    exchanges = [Exchange(_port(edge)) for _ in range(3)]
    head = _post_head("/v1/chat/completions", b"transfer-encoding: chunked\r\n")
    await asyncio.gather(*(e.run(head, _chunked(100 * 1024 * 1024, 256 * 1024)) for e in exchanges))
    for exchange in exchanges:
        assert exchange.status == 413, exchange.answer[:300]
        assert exchange.json()["error"]["code"] == "body_too_large"
        assert exchange.header(b"connection") == b"close"
    # Refused at the limit and the rest discarded as it came (for the lingering close's
    # 2 s, then the connection closed): three 100 MB bodies were never held.
    assert _rss_mb(pid) - before < 60


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(edge: tuple[str, int]) -> None:
    exchange = Exchange(_port(edge))
    head = _post_head("/v1/messages", b"content-length: %d\r\n" % (100 * 1024 * 1024))
    await exchange.run(head, stall=True)
    assert exchange.status == 413
    assert exchange.json()["type"] == "error"  # Anthropic's format under /v1/messages
    assert exchange.json()["error"]["type"] == "request_too_large"


@pytest.mark.parametrize(
    ("path", "framing", "start"),
    [
        ("/v1/chat/completions", b"content-length: 5000\r\n", b'{"model":"gpt-4o-mini",'),
        ("/v1/messages", b"content-length: 5000\r\n", b'{"model":'),
        ("/v1/chat/completions", b"transfer-encoding: chunked\r\n", b'8\r\n{"model"\r\n'),
        ("/v1/messages/count_tokens", b"content-length: 5000\r\n", b"{"),
    ],
)
async def test_a_body_that_never_completes_is_408_and_the_connection_freed(
    edge: tuple[str, int], path: str, framing: bytes, start: bytes
) -> None:
    exchanges = [Exchange(_port(edge)) for _ in range(PER_KEY)]  # a stalled body holds its place
    await asyncio.gather(*(e.run(_post_head(path, framing), [start], stall=True) for e in exchanges))
    for exchange in exchanges:
        assert exchange.status == 408, exchange.answer[:300]
        assert exchange.header(b"connection") == b"close"  # and read() saw the end of it
        body = exchange.json()
        if path.startswith("/v1/messages"):
            assert body["type"] == "error"
        else:
            assert body["error"]["code"] == "body_timeout"


async def test_a_head_that_never_completes_is_408(edge: tuple[str, int]) -> None:
    exchanges = [Exchange(_port(edge)) for _ in range(4)]
    starts = [b"POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\nx-api", b"GET /hea", b"", b"G"]
    await asyncio.gather(*(e.run(start, stall=True) for e, start in zip(exchanges, starts, strict=True)))
    for exchange in exchanges:
        assert exchange.status == 408, exchange.answer[:300]
        assert exchange.json()["error"]["code"] == "request_timeout"


async def test_huge_headers_are_refused_while_healthz_answers(edge: tuple[str, int]) -> None:
    huge = b"GET /healthz HTTP/1.1\r\nhost: edge\r\nx-huge: "
    piece = b"a" * (1024 * 1024)
    attacks = [Exchange(_port(edge)) for _ in range(4)]
    running = [asyncio.create_task(a.run(huge, [piece] * 64 + [b"\r\n\r\n"])) for a in attacks]
    answered = 0
    async with httpx.AsyncClient(base_url=edge[0], timeout=HUNG) as http:
        for _ in range(10):
            answered += (await http.get("/healthz")).status_code == 200
    await asyncio.gather(*running)
    assert answered == 10
    for attack in attacks:
        # A 431, or the connection reset by the close (the attacker's bytes unread).
        assert attack.status == 431, attack.answer[:300]
    many = Exchange(_port(edge))
    await many.run(b"GET /healthz HTTP/1.1\r\nhost: edge\r\n" + b"x-a: b\r\n" * 150 + b"\r\n")
    assert many.status == 431
    assert many.json()["error"]["code"] == "request_header_too_large"


async def _in_flight(base_url: str) -> float:
    async with httpx.AsyncClient(timeout=HUNG) as http:
        text = (await http.get(f"{base_url}/metrics")).text
    match = re.search(r"^llmbus_edge_requests_in_flight ([0-9.e+]+)$", text, re.M)
    assert match, "no in-flight gauge"
    return float(match.group(1))


async def _drained(base_url: str) -> float:
    """The in-flight gauge once it stops falling (polled, not timed)."""
    value = await _in_flight(base_url)
    for _ in range(200):
        if value == 0:
            break
        await asyncio.sleep(0.05)
        value = await _in_flight(base_url)
    return value


OVER_KEY = "429 too_many_concurrent_requests retry-after 1"
OVERLOADED = "503 edge_overloaded retry-after 1"


async def _slow(client: openai.AsyncOpenAI) -> str:
    """A request that holds its place for the mock's slow start; its outcome."""
    try:
        stream = await client.chat.completions.create(
            model="slow-start", messages=[{"role": "user", "content": "hold"}], stream=True
        )
        async for _ in stream:
            pass
        return "ok"
    except openai.APIStatusError as exc:
        return f"{exc.status_code} {exc.code} retry-after {exc.response.headers.get('retry-after')}"


def _client(edge: tuple[str, int], key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{edge[0]}/v1", api_key=key, max_retries=0, timeout=HUNG)


async def test_a_key_beyond_its_concurrency_cap_gets_429_and_every_place_comes_back(
    edge: tuple[str, int],
) -> None:
    async with _client(edge, CLIENT_KEY) as client:
        outcomes = await asyncio.gather(*(_slow(client) for _ in range(10)), return_exceptions=True)
    # None hung, none failed otherwise.
    assert sorted(map(str, outcomes)) == [OVER_KEY] * 7 + ["ok"] * PER_KEY
    assert await _drained(edge[0]) == 0


async def test_the_edge_beyond_its_total_cap_answers_503(edge: tuple[str, int]) -> None:
    async with _client(edge, CLIENT_KEY) as first, _client(edge, SECOND_KEY) as second:
        tasks = [asyncio.create_task(_slow(c)) for c in (first, second) for _ in range(PER_KEY)]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    counted = {name: sum(1 for o in outcomes if o == name) for name in ("ok", OVER_KEY, OVERLOADED)}
    assert sum(counted.values()) == len(outcomes), outcomes  # nothing hung or failed otherwise
    assert counted["ok"] == TOTAL
    assert counted[OVERLOADED] == 2 * PER_KEY - TOTAL
    assert await _drained(edge[0]) == 0


async def test_places_come_back_when_clients_leave(edge: tuple[str, int]) -> None:
    async with _client(edge, CLIENT_KEY) as client:
        leaving = [asyncio.create_task(_slow(client)) for _ in range(PER_KEY)]
        for _ in range(200):
            if await _in_flight(edge[0]) == PER_KEY:
                break
            await asyncio.sleep(0.05)
        for task in leaving:
            task.cancel()
        await asyncio.gather(*leaving, return_exceptions=True)
    assert await _drained(edge[0]) == 0
    async with anthropic.AsyncAnthropic(
        base_url=edge[0], api_key=CLIENT_KEY, max_retries=0, timeout=HUNG
    ) as c:
        message = await c.messages.create(
            model="gpt-4o-mini", max_tokens=16, messages=[{"role": "user", "content": "after"}]
        )
    assert message.content
