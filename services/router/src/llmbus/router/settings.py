"""Router settings (environment `LLMBUS_*`)."""

from __future__ import annotations

from llmbus.config.settings import ServiceSettings

__all__ = ["RouterSettings"]


class RouterSettings(ServiceSettings, frozen=True, kw_only=True):
    nats_user: str = "router"
    metrics_port: int = 0
    """Port of the Prometheus `/metrics` endpoint; 0 turns it off."""
