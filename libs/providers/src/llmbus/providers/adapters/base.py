"""What every adapter family provides to the worker.

An adapter is pure translation: the normalized request in, the provider's HTTP request
out; the provider's answer in, normalized events out. Getting a usable credential (an
API key as it is, a Copilot token minted from a GitHub token, a Kiro token read from
its file and refreshed) is the job of the family's `CredentialSource`, so that
translation never does I/O of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Literal, Protocol, get_args

import msgspec

from llmbus.proto import ChatRequest, Delta, Done, Usage
from llmbus.providers.credentials.base import Credential, CredentialSource, StaticKeys
from llmbus.providers.errors import UpstreamError
from llmbus.providers.http import HttpClient, UpstreamResponse
from llmbus.providers.runtime import ConfiguredProvider

__all__ = [
    "FAMILIES",
    "Adapter",
    "Credential",
    "CredentialSource",
    "Family",
    "Output",
    "StaticKeys",
    "UpstreamRequest",
]

Family = Literal["openai", "anthropic", "gemini", "copilot", "kiro"]
"""Adapter families: one worker deployment each."""

FAMILIES: tuple[Family, ...] = get_args(Family)

Output = Delta | Usage | Done
"""What an adapter yields; the worker stamps sequence numbers on it."""


class UpstreamRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP call to the upstream, ready to send."""

    url: str
    headers: dict[str, str]
    body: bytes = b""
    method: str = "POST"


class Adapter(Protocol):
    family: Family

    def credentials(self, http: HttpClient) -> CredentialSource:
        """The family's credential source, built once per worker."""
        ...

    def build(
        self, provider: ConfiguredProvider, chat: ChatRequest, upstream_model: str, credential: Credential
    ) -> UpstreamRequest:
        """The upstream call for one chat request. Raises `UpstreamError` (status 400) for
        what the provider cannot express, rather than dropping it silently."""
        ...

    def probe(self, provider: ConfiguredProvider, credential: Credential) -> UpstreamRequest:
        """The health check: a cheap GET the upstream supports."""
        ...

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """The error for a non-2xx answer, with the upstream's own message."""
        ...

    def events(self, response: UpstreamResponse, stream: bool) -> AsyncIterator[Output]:
        """Normalized output from a 2xx answer; raises UpstreamError on bad output."""
        ...
