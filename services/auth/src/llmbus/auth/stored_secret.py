"""The secret part of a stored credential: what auth seals in Redis and never shows.

One Struct for every kind of login, each filling what it has: a Copilot login its GitHub
token (and the Copilot token last minted from it, with its API host and expiry); a Kiro
login its access and refresh tokens, and for AWS SSO OIDC logins (IAM Identity Center,
Builder ID) the registered client, its region and start URL. It is encoded as JSON and
sealed by the vault as a whole, so adding a field needs no migration.
"""

from __future__ import annotations

import msgspec

__all__ = ["StoredSecret"]


class StoredSecret(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    github_token: str = ""
    """Copilot: the long-lived GitHub OAuth token."""
    access_token: str = ""
    """Kiro: the current access token."""
    refresh_token: str = ""
    expires_at: float = 0.0
    """Kiro: when the access token expires (Unix seconds)."""
    client_id: str = ""
    """AWS SSO OIDC: the client registered for this login."""
    client_secret: str = ""
    client_secret_expires_at: float = 0.0
    region: str = ""
    """AWS SSO OIDC: the region of the OIDC service (not necessarily the API's)."""
    start_url: str = ""
    profile_arn: str = ""
    auth_method: str = ""
    """Kiro: `social`, `IdC` or `builder-id` (chooses the refresh dialect)."""
    copilot_token: str = ""
    """Copilot: the last token minted from the GitHub token, and what it names."""
    copilot_endpoint: str = ""
    copilot_expires_at: float = 0.0
    renew_at: float = 0.0
    """When to exchange again (Unix seconds); 0: on next use."""

    def __repr__(self) -> str:
        # Never print a token: a secret that reaches a log line or a traceback stays hidden.
        held = [name for name in self.__struct_fields__ if getattr(self, name) and "token" in name]
        return f"StoredSecret(<sealed: {', '.join(held) or 'nothing'}>)"
