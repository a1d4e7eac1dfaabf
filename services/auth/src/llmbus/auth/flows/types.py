"""What every device-flow dialect shares: the grant the upstream handed out, the outcome
of one poll, the login a successful flow produces, and the one error type.

    DeviceDialect.authorize() → DeviceGrant          (user code, link, what polling needs)
    DeviceDialect.poll(grant) → Pending | Refused | Login
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from llmbus.auth.stored_secret import StoredSecret

__all__ = [
    "DeviceDialect",
    "DeviceGrant",
    "FlowFailed",
    "Login",
    "Pending",
    "Refused",
]


class FlowFailed(Exception):
    """The upstream refused a step or answered something unreadable; the message names
    the step and the upstream's error code, never a token, a device code or a secret."""


class DeviceGrant(msgspec.Struct, frozen=True, kw_only=True):
    """The device authorisation the upstream answered, and what polling it needs. The
    device code and the client secret are secrets: kept sealed at rest."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str = ""
    expires_in: int
    interval: int
    client_id: str = ""
    client_secret: str = ""
    client_secret_expires_at: float = 0.0
    region: str = ""
    start_url: str = ""

    def __repr__(self) -> str:
        # The device code and the client secret must not reach a log line or a traceback.
        return f"DeviceGrant(user_code={self.user_code!r}, client_id={self.client_id!r}, <sealed>)"


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """Not yet: poll again after `interval` seconds (grown by 5 after a `slow_down`)."""

    interval: int


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """The flow is over without a credential."""

    status: Literal["expired", "denied"]


class Login(msgspec.Struct, frozen=True, kw_only=True):
    """A successful flow: what to store, under which kind and account."""

    kind: Literal["github", "kiro-idc", "kiro-builder-id"]
    account: str
    secret: StoredSecret


class DeviceDialect(Protocol):
    """One upstream's device flow (GitHub's, AWS SSO OIDC's)."""

    async def authorize(self) -> DeviceGrant:
        """Ask for a device code; `FlowFailed` when the upstream refuses."""
        ...

    async def poll(self, grant: DeviceGrant, interval: int) -> Pending | Refused | Login:
        """Ask once whether the user approved; `interval` is the one in force (a
        `slow_down` grows it). `FlowFailed` for anything but the four device-flow answers."""
        ...
