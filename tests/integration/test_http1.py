"""The lean HTTP/1.1 upstream client (`llmbus.providers.http1`, through `HttpClient`)
against servers over real sockets that answer byte for byte as each test scripts: framing,
keep-alive, compression, timeouts, failures and TLS."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

from llmbus.providers.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnreachable
from llmbus.providers.http import HttpClient
from llmbus.providers.http1 import Http1Pool
from llmbus.testing import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A TCP server that hands each connection to `handler`; counts connections and
    keeps every request head it read (through `read_request`)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []


async def read_request(server: Server, reader: asyncio.StreamReader) -> bytes | None:
    """One request (head and Content-Length body), or None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    server.requests.append(head + body)
    return head + body


@asynccontextmanager
async def serving(
    handler: Callable[[Server, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[Server, str]]:
    state = Server()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            await handler(state, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(on_connection, "127.0.0.1", port, ssl=tls)
    try:
        yield state, f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.close()


def answer(body: bytes, *, headers: str = "", status: str = "200 OK") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


def chunked(*pieces: bytes, headers: str = "") -> list[bytes]:
    """A chunked answer: the head, then one write per piece, then the terminator."""
    head = f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{headers}\r\n".encode()
    return [head, *(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces), b"0\r\n\r\n"]


def keep_answering(
    reply: Callable[[bytes], bytes],
) -> Callable[[Server, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(server, reader)) is not None:
            writer.write(reply(request))
            await writer.drain()

    return handler


async def call(client: HttpClient, url: str, body: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    async with client.stream("POST", url, headers={"Authorization": "Bearer sk-test"}, content=body) as r:
        return r.status, {name.lower(): value for name, value in r.headers.items()}, await r.read()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient(read_timeout=2.0, connect_timeout=2.0)
    yield http
    await http.aclose()


async def test_keep_alive_connections_are_reused_and_the_request_is_framed_by_the_client(
    client: HttpClient,
) -> None:
    async with serving(keep_answering(lambda _: answer(b'{"ok":true}'))) as (server, url):
        for _ in range(3):
            status, headers, body = await call(client, f"{url}/v1/chat?x=1", b'{"a":1}')
            assert (status, body) == (200, b'{"ok":true}')
            assert headers["content-length"] == "11"
        assert server.connections == 1
        head = server.requests[0]
        port = url.rsplit(":", 1)[1]
        assert head.startswith(b"POST /v1/chat?x=1 HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{port}\r\n".encode() in head
        assert b"Authorization: Bearer sk-test\r\n" in head
        assert b"Accept-Encoding: gzip, deflate\r\n" in head
        assert b"Content-Length: 7\r\n" in head
        assert head.endswith(b'\r\n\r\n{"a":1}')


async def test_the_callers_framing_headers_are_ignored_and_line_breaks_refused(client: HttpClient) -> None:
    async with serving(keep_answering(lambda _: answer(b"ok"))) as (server, url):
        headers = {"Content-Length": "999", "Host": "evil", "Transfer-Encoding": "chunked"}
        async with client.stream("POST", url, headers=headers, content=b"abc") as response:
            assert await response.read() == b"ok"
        head = server.requests[0]
        assert b"Content-Length: 3\r\n" in head
        assert b"999" not in head
        assert b"evil" not in head
        assert b"chunked" not in head
        with pytest.raises(ValueError, match="line break"):
            async with client.stream("POST", url, headers={"X-A": "1\r\nX-Injected: 1"}, content=b""):
                pass
        assert len(server.requests) == 1


async def test_a_chunked_answer_arrives_piece_by_piece() -> None:
    release = asyncio.Event()

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(server, reader)
        head, first, second, end = chunked(b"data: one\n\n", b"data: two\n\n")
        writer.write(head + first)
        await writer.drain()
        await release.wait()
        writer.write(second + end)
        await writer.drain()
        await read_request(server, reader)

    client = HttpClient(read_timeout=2.0)
    try:
        async with serving(handler) as (_, url):
            async with client.stream("POST", url, headers={}, content=b"{}") as response:
                pieces = response.aiter_bytes()
                assert await anext(pieces) == b"data: one\n\n"  # before the rest was sent
                release.set()
                assert await anext(pieces) == b"data: two\n\n"
                assert await anext(pieces, None) is None
    finally:
        await client.aclose()


async def test_an_answer_without_framing_ends_when_the_server_closes(client: HttpClient) -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(server, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    async with serving(handler) as (server, url):
        assert await call(client, url) == (200, {"connection": "close"}, b"all of it")
        assert await call(client, url) == (200, {"connection": "close"}, b"all of it")
        assert server.connections == 2  # `Connection: close` is not reused


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ],
    ids=["gzip", "deflate", "raw-deflate"],
)
async def test_compressed_answers_are_decompressed(
    client: HttpClient, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    data = b'{"choices":[]}' * 200
    squeezed = compress(data)

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(server, reader)
        # In pieces, so that decompression works across them.
        third = len(squeezed) // 3
        pieces = squeezed[:third], squeezed[third : 2 * third], squeezed[2 * third :]
        for part in chunked(*pieces, headers=f"Content-Encoding: {encoding}\r\n"):
            writer.write(part)
            await writer.drain()
        await read_request(server, reader)

    async with serving(handler) as (_, url):
        status, _, body = await call(client, url)
        assert (status, body) == (200, data)


async def test_a_body_that_does_not_decompress_is_a_protocol_error(client: HttpClient) -> None:
    reply = answer(b"this is not gzip at all", headers="Content-Encoding: gzip\r\n")
    async with serving(keep_answering(lambda _: reply)) as (_, url):
        with pytest.raises(UpstreamProtocolError, match="does not decompress"):
            await call(client, url)


async def test_a_malformed_answer_is_a_protocol_error(client: HttpClient) -> None:
    async with serving(keep_answering(lambda _: b"HTTP/1.1 abc nonsense\r\n\r\n")) as (_, url):
        with pytest.raises(UpstreamProtocolError):
            await call(client, url)


async def test_an_interim_answer_is_skipped(client: HttpClient) -> None:
    reply = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + answer(b"final", headers="X-Final: 1\r\n")
    async with serving(keep_answering(lambda _: reply)) as (_, url):
        status, headers, body = await call(client, url)
        assert (status, body, headers.get("x-final"), "link" in headers) == (200, b"final", "1", False)


async def test_a_connection_the_server_closed_while_idle_is_not_used_again(client: HttpClient) -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(server, reader)
        writer.write(answer(b"once"))
        await writer.drain()  # then close, as a server's keep-alive timeout does

    async with serving(handler) as (server, url):
        assert (await call(client, url))[2] == b"once"
        await asyncio.sleep(0.1)  # the close arrives while the connection is idle
        assert (await call(client, url))[2] == b"once"
        assert server.connections == 2


async def test_idle_connections_expire() -> None:
    client = HttpClient(keepalive_expiry=0.05)
    try:
        async with serving(keep_answering(lambda _: answer(b"ok"))) as (server, url):
            await call(client, url)
            await asyncio.sleep(0.15)
            await call(client, url)
            assert server.connections == 2
    finally:
        await client.aclose()


async def test_no_answer_within_the_read_timeout_is_a_timeout() -> None:
    async def silent(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(server, reader)
        await asyncio.sleep(5)

    client = HttpClient(read_timeout=0.2)
    try:
        async with serving(silent) as (_, url):
            with pytest.raises(UpstreamTimeout):
                await call(client, url)
    finally:
        await client.aclose()


async def test_a_body_that_stalls_past_the_read_timeout_is_a_timeout() -> None:
    async def stalls(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(server, reader)
        head, first, *_ = chunked(b"data: one\n\n", b"never")
        writer.write(head + first)
        await writer.drain()
        await asyncio.sleep(5)

    client = HttpClient(read_timeout=0.2)
    try:
        async with serving(stalls) as (_, url):
            async with client.stream("POST", url, headers={}, content=b"{}") as response:
                pieces = response.aiter_bytes()
                assert await anext(pieces) == b"data: one\n\n"
                with pytest.raises(UpstreamTimeout, match="stopped sending"):
                    await anext(pieces)
    finally:
        await client.aclose()


async def test_a_refused_connection_is_unreachable(client: HttpClient) -> None:
    with pytest.raises(UpstreamUnreachable, match=r"cannot reach 127\.0\.0\.1"):
        await call(client, f"http://127.0.0.1:{free_port()}/v1")


async def test_a_close_before_the_answer_is_unreachable_and_mid_body_is_a_failed_stream(
    client: HttpClient,
) -> None:
    async def hangs_up(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(server, reader)

    async with serving(hangs_up) as (_, url):
        with pytest.raises(UpstreamUnreachable):
            await call(client, url)

    async def cut(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(server, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()

    async with serving(cut) as (_, url):
        with pytest.raises(UpstreamError, match="connection failed") as failed:
            await call(client, url)
        assert not isinstance(failed.value, UpstreamUnreachable)
        assert not failed.value.retryable


async def test_calls_beyond_max_connections_wait_for_one_to_be_released() -> None:
    gate = asyncio.Event()

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(server, reader) is not None:
            if len(server.requests) == 1:
                await gate.wait()
            writer.write(answer(b"ok"))
            await writer.drain()

    client = HttpClient(max_connections=1)
    try:
        async with serving(handler) as (server, url):
            first = asyncio.create_task(call(client, url))
            second = asyncio.create_task(call(client, url))
            await asyncio.sleep(0.2)
            assert len(server.requests) == 1
            assert not second.done()  # waiting for the one slot
            gate.set()
            assert [(await first)[2], (await second)[2]] == [b"ok", b"ok"]
            assert server.connections == 1
    finally:
        await client.aclose()


async def test_a_large_body_arrives_whole_through_backpressure(client: HttpClient) -> None:
    data = bytes(range(256)) * (12 << 10)  # 3 MiB: reading pauses and resumes

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(server, reader)
        writer.write(answer(data))
        await writer.drain()
        await read_request(server, reader)

    async with serving(handler) as (_, url):
        async with client.stream("POST", url, headers={}, content=b"{}") as response:
            received = bytearray()
            async for piece in response.aiter_bytes():
                received += piece
                await asyncio.sleep(0)  # a slow reader
            assert bytes(received) == data


def _tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1 and localhost, and a
    client context that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmbus test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_tls_with_the_servers_name_checked(tmp_path: Path) -> None:
    server_tls, client_tls = _tls(tmp_path)
    pool = Http1Pool(
        connect_timeout=2, read_timeout=2, max_connections=4, keepalive_expiry=30, ssl_context=client_tls
    )
    try:
        async with serving(keep_answering(lambda _: answer(b"secure")), tls=server_tls) as (server, url):
            port = int(url.rsplit(":", 1)[1])
            for _ in range(2):
                connection, origin = await pool.request("GET", URL(f"https://localhost:{port}/x"), {}, b"")
                assert (connection.status, await connection.next_chunk()) == (200, b"secure")
                assert await connection.next_chunk() == b""
                pool.release(connection, origin)
            assert server.connections == 1
            # The certificate names localhost, not 127.0.0.1: refused.
            with pytest.raises(UpstreamUnreachable, match=r"cannot reach 127\.0\.0\.1"):
                await pool.request("GET", URL(f"https://127.0.0.1:{port}/x"), {}, b"")
    finally:
        pool.close()
