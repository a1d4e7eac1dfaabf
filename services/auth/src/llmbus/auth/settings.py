"""Auth settings (environment `LLMBUS_*`)."""

from __future__ import annotations

from llmbus.config.settings import ServiceSettings

__all__ = ["AuthSettings"]


class AuthSettings(ServiceSettings, frozen=True, kw_only=True):
    nats_user: str = "auth"
    redis_url: str = "redis://127.0.0.1:6379/0"
    metrics_port: int = 0
    key_sync_interval: float = 30.0
    """Seconds between two checks that Redis still has the client keys (writing them back
    if it lost them) and two refreshes of this replica's copy of the keys made at run
    time. A lookup that misses checks at once as well."""
    token_key: str = ""
    """Base64 of the 32-byte key that seals tokens at rest (more keys after it, separated
    by commas, still open what they sealed: rotation). Without it or `token_key_file`,
    auth refuses to start unless `dev` is set."""
    token_key_file: str = ""
    """A file holding `token_key` (docker secrets)."""
    copilot_client_id: str = "Iv1.b507a08c87ecfe98"
    """The GitHub OAuth app that Copilot logins sign in to: VS Code's Copilot extension,
    the one Copilot's token service trusts."""
    max_login_flows: int = 64
    """Device-flow logins one replica polls at a time; more are refused until one ends."""
