"""What every adapter family provides to the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from llmbus.proto import ChatRequest, Delta, Done, Usage
from llmbus.providers.errors import UpstreamError
from llmbus.providers.http import UpstreamResponse
from llmbus.providers.runtime import ConfiguredProvider

__all__ = ["Adapter", "Output", "UpstreamCall"]

Output = Delta | Usage | Done
"""What an adapter yields; the worker stamps sequence numbers on it."""


class UpstreamCall(Protocol):
    url: str
    headers: dict[str, str]
    body: bytes


class Adapter(Protocol):
    family: str

    def build(
        self, provider: ConfiguredProvider, chat: ChatRequest, upstream_model: str, secret: str
    ) -> tuple[str, dict[str, str], bytes]:
        """URL, headers and body of the upstream call."""
        ...

    def probe(self, provider: ConfiguredProvider, secret: str) -> tuple[str, dict[str, str]]:
        """URL and headers of the health check: a cheap GET the upstream supports."""
        ...

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """The error for a non-2xx answer, with the upstream's own message."""
        ...

    def events(self, response: UpstreamResponse, stream: bool) -> AsyncIterator[Output]:
        """Normalized output from a 2xx answer; raises UpstreamError on bad output."""
        ...
