"""Mock upstream settings (environment `LLMBUS_MOCK_*`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

__all__ = ["MockSettings"]


class MockSettings(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8319
    latency_ms: int = 0
    """Delay before the first byte of every answer."""
    chunks: int = 8
    """Content chunks in a streamed answer."""
    chunk_delay_ms: int = 0
    """Delay between two streamed chunks."""
    hang_seconds: float = 3600.0
    """How long the `hang` scenarios stay silent."""
    retry_after_seconds: int = 1
    """The Retry-After of the `error-429` scenario."""
    slow_start_seconds: float = 2.0
    """How long the `slow-start` scenario waits before its first byte."""
    trickle_interval_ms: int = 1000
    """The pause between two chunks of the `trickle` scenario."""
    copilot_token_seconds: int = 1800
    """Lifetime of the Copilot tokens the mock issues (GitHub's last 30 minutes); a few
    seconds let tests watch a gateway re-mint them."""
    kiro_token_seconds: int = 3600
    """Lifetime of the Kiro access tokens the mock's `/refreshToken` and `/token` issue
    (the real ones last an hour); past it the chat API refuses them with 403, as Kiro does."""
    device_approve_after: int = 2
    """The poll of a device code (GitHub's and AWS SSO OIDC's) on which the mock's user
    approves it; earlier polls are `authorization_pending`."""
    device_code_seconds: int = 900
    """Lifetime of a device code (GitHub's last 15 minutes); past it, `expired_token`."""
    device_interval: int = 5
    """The polling interval a device code asks for (seconds; GitHub's and AWS's is 5). A
    poll sooner than it gets `slow_down`; 0 lets tests poll back to back."""

    @classmethod
    def env_vars(cls) -> tuple[str, ...]:
        return tuple("LLMBUS_MOCK_" + name.upper() for name in cls.__struct_fields__)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MockSettings:
        env = os.environ if environ is None else environ
        raw = {
            name: env[var]
            for name, var in zip(cls.__struct_fields__, cls.env_vars(), strict=True)
            if var in env
        }
        return msgspec.convert(raw, cls, strict=False)
