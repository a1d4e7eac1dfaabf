"""The behaviour suite every adapter family passes: the same golden cases, from fixture
files written from each provider's documented wire format.

A case is a folder `fixtures/<family>/<case>/`:

- `meta.json`: `upstream_model`; optional `provider` (ProviderConfig fields, merged over
  an endpoint of `http://upstream.test`), `credential` (Credential fields), `status` and
  `headers` of the upstream's answer, `error` (the expected UpstreamError: `status`,
  `code`, `retryable`, optional `retry_after`, `message_contains`), `url` (expected),
  `headers_expected` (a subset of the request headers), `pieces` (feed the answer in
  pieces of this many bytes, to prove frames are reassembled).
- `chat.json`: the normalized request (a `ChatRequest`).
- `request.json`: the upstream request body the adapter must build (exact JSON), or
  `request.error.json`: the `Unsupported` error `build` must raise instead.
- `response.*`: the upstream's answer bytes (`.sse`, `.json`, `.bin` for AWS event-stream).
- `events.json`: the normalized output the adapter must yield (Delta, Usage, Done; `seq`
  may be left out).

Every family must have the cases in `REQUIRED`; a new family adds its folder and is tested.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest

from llmbus.config import Config, ProviderConfig
from llmbus.proto import ChatRequest, Delta, Done, Usage
from llmbus.providers import configured_providers
from llmbus.providers.adapters import ADAPTERS, FAMILIES, Credential, Output, adapter_for
from llmbus.providers.errors import UpstreamError
from llmbus.providers.http import HttpClient

FIXTURES = Path(__file__).parent / "fixtures"
REQUIRED = (
    "text",
    "text-stream",
    "tools",
    "parallel-tools-stream",
    "tool-result",
    "image",
    "length",
    "error-400",
    "error-401",
    "error-429",
    "error-500",
)
"""Cases every family has: text whole and streamed, a tool call, parallel tool calls in a
stream, a tool result sent back, an image, truncation by length, each error status."""

_events = msgspec.json.Decoder(list[Delta | Usage | Done])
_chat = msgspec.json.Decoder(ChatRequest)
_BUILTIN_OF = {
    "openai": "openai",
    "anthropic": "claude",
    "gemini": "gemini",
    "copilot": "copilot",
    "kiro": "kiro",
}


def _cases() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*/*") if (p / "meta.json").is_file())


def _provider(family: str, meta: dict[str, Any]) -> Any:
    name = _BUILTIN_OF[family]
    fields = {"endpoint": "http://upstream.test", "api_keys": ["sk-fixture"], **meta.get("provider", {})}
    config = Config(providers={name: msgspec.convert(fields, ProviderConfig)})
    return configured_providers(config)[name]


def _credential(meta: dict[str, Any]) -> Credential:
    return msgspec.convert(
        {"name": "fixture", "token": "sk-fixture", **meta.get("credential", {})}, Credential
    )


def test_every_family_has_an_adapter_and_the_required_cases() -> None:
    assert set(ADAPTERS) == set(FAMILIES)
    for family in FAMILIES:
        present = {p.name for p in (FIXTURES / family).iterdir()} if (FIXTURES / family).is_dir() else set()
        missing = [case for case in REQUIRED if case not in present]
        assert not missing, f"{family} lacks fixture cases: {missing}"


@pytest.mark.parametrize("case", _cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_case(case: Path) -> None:
    family = case.parent.name
    files = _read(case)
    meta = json.loads(files["meta.json"])
    adapter = adapter_for(family)
    provider = _provider(family, meta)
    chat = _chat.decode(files["chat.json"])
    credential = _credential(meta)

    if "request.error.json" in files:
        expected_error = json.loads(files["request.error.json"])
        with pytest.raises(UpstreamError) as raised:
            adapter.build(provider, chat, meta["upstream_model"], credential)
        assert raised.value.status == expected_error.get("status", 400)
        assert expected_error["message_contains"] in raised.value.message
        return

    call = adapter.build(provider, chat, meta["upstream_model"], credential)
    expected_body = json.loads(files["request.json"])
    assert json.loads(call.body) == expected_body
    if "url" in meta:
        assert call.url == meta["url"]
    for header, value in meta.get("headers_expected", {}).items():
        assert {k.lower(): v for k, v in call.headers.items()}.get(header.lower()) == value, header

    answer = next(data for name, data in files.items() if name.startswith("response."))
    status = meta.get("status", 200)
    outputs: list[Output] = []
    error: UpstreamError | None = None
    try:
        outputs = await _run(
            adapter, answer, status, meta.get("headers", {}), chat.stream, meta.get("pieces", 0)
        )
    except UpstreamError as exc:
        error = exc
    if "error" in meta:
        expected = meta["error"]
        assert error is not None, f"expected an error, got {outputs}"
        assert error.status == expected["status"]
        assert error.code == expected["code"]
        assert error.retryable == expected["retryable"]
        if "retry_after" in expected:
            assert error.retry_after == expected["retry_after"]
        if "message_contains" in expected:
            assert expected["message_contains"] in error.message
        return
    assert error is None, f"unexpected {type(error).__name__}: {error}"
    raw = json.loads(files["events.json"])
    expected_events = _events.decode(json.dumps([{"seq": 0, **e} for e in raw]))
    assert outputs == expected_events


def _read(case: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in case.iterdir() if path.is_file()}


async def _run(
    adapter: Any, answer: bytes, status: int, headers: dict[str, str], stream: bool, pieces: int
) -> list[Output]:
    async def body() -> AsyncIterator[bytes]:
        step = pieces or len(answer) or 1
        for i in range(0, len(answer), step):
            yield answer[i : i + step]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers=headers, content=body())

    client = HttpClient(transport=httpx2.MockTransport(handler))
    try:
        async with client.stream("POST", "http://upstream.test/", headers={}, content=b"{}") as response:
            if response.status >= 400:
                raise adapter.error(response.status, response.headers, await response.read())
            return [item async for item in adapter.events(response, stream)]
    finally:
        await client.aclose()
