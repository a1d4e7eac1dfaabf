"""What a client can make the edge hold, in process on the bus twin: bodies too large
(declared or chunked) are refused before they are buffered, bodies that never complete
get a 408, oversized requests a 400 naming the field, concurrency caps a 429 or 503, and
every place a request held is given back however it ends. The request-head limits run
in a real uvicorn server on a socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from llmbus.edge.server import PROTOCOL, HeadLimitedProtocol
from llmbus.testing import free_port
from tests.property.twin import KEY, OTHER_KEY, Twin, edge_twin

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
COUNT = "/v1/messages/count_tokens"
LIMIT = 64 * 1024
USER = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def twin() -> AsyncIterator[Twin]:
    async with edge_twin(max_body_bytes=LIMIT, body_timeout=0.3, max_messages=8, max_tools=2) as twin:
        yield twin


class Drive:
    """One request driven through the app as raw ASGI: the body in chunks (optionally
    stalling after them, or disconnecting once the body is read), every message sent back
    kept."""

    def __init__(self, chunks: list[bytes], *, stall: bool = False, leave_after: float | None = None) -> None:
        self.chunks = chunks
        self.stall = stall
        self.leave_after = leave_after
        self.pulled = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.pulled < len(self.chunks):
            self.pulled += 1
            more = self.pulled < len(self.chunks) or self.stall
            return {"type": "http.request", "body": self.chunks[self.pulled - 1], "more_body": more}
        if self.stall:
            await asyncio.Event().wait()
        if self.leave_after is not None:
            await asyncio.sleep(self.leave_after)
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def run(self, app: Any, path: str, headers: dict[str, str]) -> None:
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 5000),
            "server": ("edge", 80),
            "state": {},
        }
        receive: Receive = self.receive
        send: Send = self.send
        await asyncio.wait_for(app(scope, receive, send), 10)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


def _auth(path: str) -> dict[str, str]:
    return {"x-api-key": KEY} if path.startswith(MESSAGES) else {"authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("path", [CHAT, MESSAGES, COUNT])
async def test_a_declared_length_over_the_limit_is_413_before_any_byte_is_read(twin: Twin, path: str) -> None:
    drive = Drive([b"x" * 1024] * 10)
    await drive.run(twin.app, path, {**_auth(path), "content-length": str(100 * 1024 * 1024)})
    assert drive.status == 413
    assert drive.pulled == 0
    assert drive.headers[b"connection"] == b"close"
    if path == CHAT:
        assert drive.json()["error"]["code"] == "body_too_large"
    else:
        assert drive.json() == {
            "type": "error",
            "error": {"type": "request_too_large", "message": "The request body is larger than 65536 bytes."},
        }


@pytest.mark.parametrize("path", [CHAT, MESSAGES, COUNT])
async def test_a_chunked_body_is_refused_as_its_bytes_pass_the_limit(twin: Twin, path: str) -> None:
    chunk = b"x" * 8192
    drive = Drive([chunk] * 1600)  # 13 MB, no Content-Length
    await drive.run(twin.app, path, _auth(path))
    assert drive.status == 413
    assert drive.pulled == LIMIT // len(chunk) + 1  # not one chunk more than the limit needs
    assert drive.headers[b"connection"] == b"close"


@pytest.mark.parametrize("path", [CHAT, MESSAGES, COUNT])
async def test_a_body_that_never_completes_is_408_and_the_connection_closed(twin: Twin, path: str) -> None:
    drive = Drive([b'{"model":'], stall=True)
    await drive.run(twin.app, path, {**_auth(path), "content-length": "500"})
    assert drive.status == 408
    assert drive.headers[b"connection"] == b"close"
    if path == CHAT:
        assert drive.json()["error"]["code"] == "body_timeout"
    else:
        assert drive.json()["type"] == "error"


async def test_a_management_route_body_has_the_same_limits(twin: Twin) -> None:
    drive = Drive([b"x" * 8192] * 100)
    await drive.run(twin.app, "/v1/keys", {"authorization": "Bearer mk"})
    assert drive.status in (401, 403, 413)  # refused: never read whole
    assert drive.pulled <= LIMIT // 8192 + 1


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "ok", "messages": USER, **extra}


def _nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (_chat(messages=USER * 9), "too_many_messages", "messages"),
        (
            _chat(tools=[{"type": "function", "function": {"name": f"t{i}"}} for i in range(3)]),
            "too_many_tools",
            "tools",
        ),
        (_chat(max_tokens=1_000_001), "max_tokens_too_large", "max_tokens"),
        (_chat(model="m" * 257), "model_too_long", "model"),
        (_chat(response_format=_nested(65)), "json_too_deep", "response_format"),
        (
            _chat(tools=[{"type": "function", "function": {"name": "t", "parameters": _nested(65)}}]),
            "json_too_deep",
            "tools[0]",
        ),
    ],
)
async def test_requests_beyond_the_edge_limits_are_400_naming_the_field(
    twin: Twin, body: dict[str, Any], code: str, param: str
) -> None:
    response = await twin.http.post(CHAT, json=body, headers=_auth(CHAT))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == param
    assert twin.routed == 0


# While the decoder is at its depth limit, a finalizer that the garbage collector happens
# to run there (an object of another test's) can fail to format its own exception: Python
# reports it as "ignored" and pytest would fail this test for it. The answer is what counts.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_json_deeper_than_the_decoder_goes_is_a_400_not_a_500() -> None:
    deep = b'{"model":"ok","max_tokens":5,"messages":[{"role":"user","content":"x"}],"response_format":{"a":'
    deep += b"[" * 100_000 + b"]" * 100_000 + b"}}"
    async with edge_twin() as twin:
        for path in (CHAT, MESSAGES):
            response = await twin.http.post(path, content=deep, headers=_auth(path))
            assert response.status_code == 400, response.text
        assert twin.routed == 0


async def test_anthropic_requests_beyond_the_limits_get_anthropic_errors(twin: Twin) -> None:
    body = {"model": "ok", "max_tokens": 5, "messages": USER * 9}
    response = await twin.http.post(MESSAGES, json=body, headers=_auth(MESSAGES))
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert "9 messages" in response.json()["error"]["message"]
    response = await twin.http.post(
        MESSAGES, json={**body, "messages": USER, "max_tokens": 2_000_000}, headers=_auth(MESSAGES)
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def _until(predicate: Any) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 5 s")


def _assert_released(twin: Twin) -> None:
    assert twin.app.concurrency.total == 0
    assert twin.app.concurrency.by_key == {}


async def test_a_key_over_its_concurrency_gets_429_with_retry_after_and_others_go_on() -> None:
    async with edge_twin(max_concurrent_per_key=2) as twin:
        held = [
            asyncio.create_task(twin.http.post(CHAT, json=_chat(model="hold"), headers=_auth(CHAT)))
            for _ in range(2)
        ]
        await _until(lambda: twin.routed == 2)
        refused = await twin.http.post(CHAT, json=_chat(), headers=_auth(CHAT))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "too_many_concurrent_requests"
        anthropic = await twin.http.post(
            MESSAGES, json={"model": "ok", "max_tokens": 5, "messages": USER}, headers=_auth(MESSAGES)
        )
        assert anthropic.status_code == 429
        assert anthropic.json()["error"]["type"] == "rate_limit_error"
        embeddings = await twin.http.post(
            "/v1/embeddings", json={"model": "ok", "input": "x"}, headers=_auth(CHAT)
        )
        assert embeddings.status_code == 429, "embeddings count among the key's requests too"
        other = await twin.http.post(CHAT, json=_chat(), headers={"authorization": f"Bearer {OTHER_KEY}"})
        assert other.status_code == 200
        twin.release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        _assert_released(twin)
        assert (await twin.http.post(CHAT, json=_chat(), headers=_auth(CHAT))).status_code == 200


async def test_the_edge_over_its_total_concurrency_answers_503() -> None:
    async with edge_twin(max_concurrent_requests=2) as twin:
        held = [
            asyncio.create_task(
                twin.http.post(CHAT, json=_chat(model="hold", stream=True), headers={"x-api-key": key})
            )
            for key in (KEY, OTHER_KEY)
        ]
        await _until(lambda: twin.routed == 2)
        refused = await twin.http.post(CHAT, json=_chat(), headers=_auth(CHAT))
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "edge_overloaded"
        assert (await twin.http.get("/healthz")).status_code == 200  # not counted
        twin.release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        _assert_released(twin)


@pytest.mark.parametrize("stream", [False, True])
async def test_places_are_given_back_when_the_client_leaves(stream: bool) -> None:
    async with edge_twin(max_concurrent_per_key=1) as twin:
        body = json.dumps(_chat(model="hold", stream=stream)).encode()
        drive = Drive([body], leave_after=0.2)
        await drive.run(twin.app, CHAT, _auth(CHAT))
        assert twin.routed == 1
        _assert_released(twin)


async def test_places_are_given_back_after_every_kind_of_error(twin: Twin) -> None:
    bad = [
        (CHAT, b"{not json", _auth(CHAT)),
        (CHAT, json.dumps(_chat(model="unknown")).encode(), _auth(CHAT)),
        (CHAT, json.dumps(_chat()).encode(), {"authorization": "Bearer sk-wrong"}),
        (MESSAGES, json.dumps({"model": "ok", "messages": USER}).encode(), _auth(MESSAGES)),
        (CHAT, b"x" * (LIMIT + 1), _auth(CHAT)),
    ]
    statuses = []
    for path, body, headers in bad:
        response = await twin.http.post(path, content=body, headers=headers)
        statuses.append(response.status_code)
    assert statuses == [400, 404, 401, 400, 413]
    drive = Drive([b"{"], stall=True)
    await drive.run(twin.app, CHAT, _auth(CHAT))
    assert drive.status == 408
    _assert_released(twin)


# --- the request head, on a real socket ----------------------------------------------------


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def server() -> AsyncIterator[int]:
    port = free_port()
    saved = (
        HeadLimitedProtocol.max_header_bytes,
        HeadLimitedProtocol.max_headers,
        HeadLimitedProtocol.head_timeout,
    )
    HeadLimitedProtocol.max_header_bytes, HeadLimitedProtocol.max_headers = 16 * 1024, 20
    HeadLimitedProtocol.head_timeout = 0.5
    config = uvicorn.Config(
        _ok, host="127.0.0.1", port=port, http=PROTOCOL, lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await _until(lambda: server.started)
        yield port
    finally:
        server.should_exit = True
        await task
        (
            HeadLimitedProtocol.max_header_bytes,
            HeadLimitedProtocol.max_headers,
            HeadLimitedProtocol.head_timeout,
        ) = saved


async def _exchange(port: int, head: bytes, pieces: int = 1) -> bytes:
    """Send a request head (in `pieces` writes) and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        step = -(-len(head) // pieces)
        for start in range(0, len(head), step):
            writer.write(head[start : start + step])
            try:
                await writer.drain()
            except ConnectionError:
                break  # refused and closed mid-send
        async with asyncio.timeout(10):
            try:
                return await reader.read()
            except ConnectionResetError:
                return b""  # closed with the client's bytes unread: the answer may be lost
    finally:
        writer.close()


def _head(*headers: bytes) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n" + b"".join(headers) + b"\r\n"


async def test_a_head_within_the_limits_is_served(server: int) -> None:
    answer = await _exchange(server, _head(*(b"x-%d: v\r\n" % i for i in range(15))))
    assert answer.startswith(b"HTTP/1.1 200")


async def test_a_header_larger_than_the_head_limit_is_431(server: int) -> None:
    answer = await _exchange(server, _head(b"x-big: " + b"a" * 20_000 + b"\r\n"), pieces=7)
    assert answer.startswith(b"HTTP/1.1 431")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_header_too_large"


async def test_a_huge_header_is_refused_without_reading_it_while_others_are_served(server: int) -> None:
    huge = _head(b"x-huge: " + b"a" * (64 * 1024 * 1024) + b"\r\n")
    attacks = [asyncio.create_task(_exchange(server, huge, pieces=64)) for _ in range(4)]
    assert (await _exchange(server, _head())).startswith(b"HTTP/1.1 200")
    for answer in await asyncio.gather(*attacks):
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431")
    assert (await _exchange(server, huge[:40_000])).startswith(b"HTTP/1.1 431")


async def test_a_head_trickled_or_never_sent_is_408_and_the_connection_closed(server: int) -> None:
    for start in (b"GET /healthz HTTP/1.1\r\nhost: ed", b""):
        reader, writer = await asyncio.open_connection("127.0.0.1", server)
        writer.write(start)
        async with asyncio.timeout(10):
            answer = await reader.read()  # the end: the edge closed it
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"


async def test_more_header_fields_than_allowed_is_431(server: int) -> None:
    answer = await _exchange(server, _head(*(b"x-%d: v\r\n" % i for i in range(25))))
    assert answer.startswith(b"HTTP/1.1 431")


async def test_a_body_after_a_head_in_the_same_read_is_not_counted_as_head(server: int) -> None:
    body = b"y" * 40_000
    request = (
        b"POST /x HTTP/1.1\r\nhost: edge\r\nconnection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
        + body
    )
    assert (await _exchange(server, request)).startswith(b"HTTP/1.1 200")


async def test_a_refused_body_is_answered_not_reset_while_the_client_still_sends() -> None:
    """The edge app on a real socket: the 413 for a declared 20 MB body is sent at once,
    and the connection lingers (discarding) long enough for the client to read it."""
    async with edge_twin(max_body_bytes=LIMIT) as twin:
        port = free_port()
        config = uvicorn.Config(twin.app, host="127.0.0.1", port=port, http=PROTOCOL, lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            await _until(lambda: server.started)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            size = 20 * 1024 * 1024
            head = b"POST %s HTTP/1.1\r\nhost: edge\r\nauthorization: Bearer %s\r\ncontent-length: %d\r\n\r\n"
            writer.write(head % (CHAT.encode(), KEY.encode(), size))

            async def send_body() -> None:
                try:
                    for _ in range(size // 65536):
                        writer.write(b" " * 65536)
                        await writer.drain()
                except ConnectionError:
                    pass

            sending = asyncio.create_task(send_body())
            answer = await asyncio.wait_for(reader.read(), 10)
            await sending
            writer.close()
        finally:
            server.should_exit = True
            await task
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"body_too_large"' in answer
