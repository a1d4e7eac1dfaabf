"""Auth settings (environment `LLMBUS_*`)."""

from __future__ import annotations

from llmbus.config.settings import ServiceSettings

__all__ = ["AuthSettings"]


class AuthSettings(ServiceSettings, frozen=True, kw_only=True):
    redis_url: str = "redis://127.0.0.1:6379/0"
    metrics_port: int = 0
