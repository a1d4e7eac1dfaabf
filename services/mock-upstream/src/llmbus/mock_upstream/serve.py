"""The request cycle every family's chat endpoint shares: record the request, check the
key, parse, pick the scenario, answer whole or streamed, fail as scripted.

A family module supplies a `Dialect`: how to read its key and request, and how to write
its answers and errors. Everything else is here once.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from llmbus.mock_upstream.scenarios import FAILING_MIDSTREAM, Scenario, pick_scenario
from llmbus.mock_upstream.script import Answer, Prompt
from llmbus.mock_upstream.settings import MockSettings

__all__ = ["Dialect", "MockState", "Reply", "encode", "json_response", "serve"]

encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

ERRORS = {
    Scenario.ERROR_400: 400,
    Scenario.ERROR_401: 401,
    Scenario.ERROR_429: 429,
    Scenario.ERROR_500: 500,
    Scenario.ERROR_503: 503,
}


class Reply(Exception):
    """An error answer, raised while reading the request."""

    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


class MockState:
    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.forced: Scenario | None = None
        self.requests: deque[dict[str, Any]] = deque(maxlen=1000)
        self.minted: list[dict[str, str]] = []
        """Every token and secret this mock handed out, for `GET /__mock__/issued`: the
        test suite scans its logs for them."""

    def mint(self, kind: str, secret: str) -> str:
        """Note a token or secret handed out (`kind` says what it is); returns it."""
        self.minted.append({"kind": kind, "secret": secret})
        return secret

    def record(self, request: Request, family: str, key: str, body: object) -> dict[str, Any]:
        """Keep what the gateway sent (headers without credentials) for the admin API."""
        record: dict[str, Any] = {
            "family": family,
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {k: v for k, v in request.headers.items() if k not in _SECRET_HEADERS},
            "key_fingerprint": fingerprint(key) if key else None,
            "peer": f"{request.client.host}:{request.client.port}" if request.client else None,
            "body": body,
            "outcome": "pending",
        }
        self.requests.append(record)
        return record


_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key"})


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = body if isinstance(body, bytes) else encode(body)
    return Response(data, status, headers=headers, media_type="application/json")


class Dialect(Protocol):
    """One family's wire format, as the mock speaks it."""

    family: str
    stream_media_type: str

    def key(self, request: Request) -> str:
        """The credential the request carries ('' when none)."""
        ...

    def missing_key(self) -> Reply: ...

    def bad_json(self) -> Reply: ...

    def parse(self, body: Any, request: Request) -> Prompt:
        """Read the request; raise `Reply` (400, the family's own body) when it is invalid."""
        ...

    def error(self, scenario: Scenario, prompt: Prompt, key: str, retry_after: int) -> Reply:
        """The scripted error of an `error-*` scenario."""
        ...

    def whole(self, answer: Answer, prompt: Prompt) -> object:
        """The non-streamed answer's body (encoded as JSON unless it is bytes)."""
        ...

    def frames(self, answer: Answer, prompt: Prompt, parts: int) -> list[bytes]:
        """The streamed answer, frame by frame, content split into about `parts` pieces."""
        ...

    def midstream_error(self) -> bytes: ...

    def malformed(self) -> bytes: ...


async def serve(state: MockState, dialect: Dialect, request: Request, prompt_check: Any = None) -> Response:
    """Answer one chat request in `dialect`. `prompt_check(prompt, request)` may raise
    `Reply` for family-specific rules (Copilot's token, Kiro's validation)."""
    raw = await request.body()
    key = dialect.key(request)
    try:
        body: Any = _decode(raw) if raw else None
    except msgspec.DecodeError:
        body = None
    record = state.record(request, dialect.family, key, body)
    settings = state.settings
    try:
        if not key:
            raise dialect.missing_key()
        if body is None:
            raise dialect.bad_json()
        prompt = dialect.parse(body, request)
        if prompt_check is not None:
            prompt_check(prompt, request)
        scenario = pick_scenario(state.forced, prompt.model, key)
        if scenario in ERRORS:
            raise dialect.error(scenario, prompt, key, settings.retry_after_seconds)
    except Reply as reply:
        record["outcome"] = "rejected"
        return json_response(reply.body if reply.body is not None else b"", reply.status, reply.headers)
    try:
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        if scenario is Scenario.HANG and await _left_within(request, settings.hang_seconds):
            record["outcome"] = "aborted"
            return Response(status_code=499)
        if scenario is Scenario.SLOW_START:
            await asyncio.sleep(settings.slow_start_seconds)
    except asyncio.CancelledError:
        record["outcome"] = "aborted"
        raise
    answer = Answer.to(prompt, scenario)
    compress = scenario is Scenario.GZIP
    if prompt.stream:
        headers = {"cache-control": "no-cache"}
        if compress:
            headers["content-encoding"] = "gzip"
        return StreamingResponse(
            _stream(dialect, answer, prompt, scenario, record, settings, compress),
            media_type=dialect.stream_media_type,
            headers=headers,
        )
    record["outcome"] = "completed"
    whole = dialect.whole(answer, prompt)
    data = whole if isinstance(whole, bytes) else encode(whole)
    if compress:
        return Response(
            gzip.compress(data), media_type="application/json", headers={"content-encoding": "gzip"}
        )
    return Response(data, media_type="application/json")


async def _left_within(request: Request, seconds: float) -> bool:
    """Wait `seconds`, or less if the client closes the connection: whether it did (a
    plain handler is not cancelled when its client goes away, so the `hang` scenario
    watches for it, to record the call as aborted)."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait_for(asyncio.shield(watcher), seconds)
    except TimeoutError:
        return False
    finally:
        watcher.cancel()
    return True


async def _stream(
    dialect: Dialect,
    answer: Answer,
    prompt: Prompt,
    scenario: Scenario,
    record: dict[str, Any],
    settings: MockSettings,
    compress: bool,
) -> AsyncIterator[bytes]:
    """The stream; `record["outcome"]` says whether it ran to its scripted end."""
    record["outcome"] = "streaming"
    completed = False
    packer = zlib.compressobj(wbits=31) if compress else None  # 31: a gzip member
    try:
        async for frame in _frames(dialect, answer, prompt, scenario, settings):
            yield packer.compress(frame) + packer.flush(zlib.Z_SYNC_FLUSH) if packer else frame
        if packer:
            yield packer.flush()
        completed = True
    finally:
        record["outcome"] = "completed" if completed else "aborted"


async def _frames(
    dialect: Dialect, answer: Answer, prompt: Prompt, scenario: Scenario, settings: MockSettings
) -> AsyncIterator[bytes]:
    delay = settings.chunk_delay_ms / 1000
    chunks = settings.chunks
    if scenario is Scenario.SLOW:
        delay = max(delay, 0.5)
    elif scenario is Scenario.TRICKLE:
        delay, chunks = settings.trickle_interval_ms / 1000, max(chunks, len(answer.text))
    frames = dialect.frames(answer, prompt, chunks)
    if scenario in FAILING_MIDSTREAM:
        frames = frames[: max(2, len(frames) // 2)]
    for index, frame in enumerate(frames):
        if delay and index:
            await asyncio.sleep(delay)
        yield frame
    if scenario is Scenario.HANG_MIDSTREAM:
        await asyncio.sleep(settings.hang_seconds)
    elif scenario is Scenario.MALFORMED_SSE:
        yield dialect.malformed()
    elif scenario is Scenario.MIDSTREAM_ERROR:
        yield dialect.midstream_error()
