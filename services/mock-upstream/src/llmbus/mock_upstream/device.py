"""Device authorisation grants (RFC 8628) as the mock's GitHub and AWS SSO OIDC issue them.

Nobody opens the verification page in a test, so the mock decides for the user:

- a grant is approved on its `device_approve_after`-th poll (earlier polls are pending);
- a grant asked for by a client whose name (GitHub's `client_id`, AWS's `clientName` or
  `startUrl`) contains `denied` is refused (`access_denied`) on that poll instead;
- one whose client contains `slow-down` gets `slow_down` on its first poll;
- a poll sooner than the grant's interval after the previous one gets `slow_down` and
  the interval grows by 5 seconds, as RFC 8628 §3.5 says (`device_interval` 0 turns the
  interval off, so in-process tests can poll back to back);
- a grant past `device_code_seconds` is `expired_token`, and so is an approved grant
  polled again (a device code is good for one token).
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DeviceBook", "DeviceGrant", "Verdict"]

_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
"""Consonants only, as GitHub's codes: no vowels, no accidental words."""


class Verdict(enum.Enum):
    """What one poll of the token endpoint gets; values are RFC 8628's error codes."""

    PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"
    EXPIRED = "expired_token"
    DENIED = "access_denied"
    UNKNOWN = "invalid_grant"
    APPROVED = "approved"


@dataclass(slots=True)
class DeviceGrant:
    device_code: str
    user_code: str
    client: str
    expires_at: float
    interval: int
    polls: int = 0
    last_poll: float = 0.0
    used: bool = False


class DeviceBook:
    def __init__(
        self,
        *,
        approve_after: int,
        lifetime: int,
        interval: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.approve_after = max(1, approve_after)
        self.lifetime = lifetime
        self.interval = interval
        self.clock = clock
        self.grants: dict[str, DeviceGrant] = {}

    def issue(self, client: str) -> DeviceGrant:
        code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
        grant = DeviceGrant(
            device_code=secrets.token_hex(20),
            user_code=f"{code[:4]}-{code[4:]}",
            client=client,
            expires_at=self.clock() + self.lifetime,
            interval=self.interval,
        )
        self.grants[grant.device_code] = grant
        return grant

    def poll(self, device_code: str) -> tuple[Verdict, DeviceGrant | None]:
        grant = self.grants.get(device_code)
        if grant is None:
            return Verdict.UNKNOWN, None
        now = self.clock()
        if grant.used or now >= grant.expires_at:
            return Verdict.EXPIRED, grant
        grant.polls += 1
        too_soon = self.interval > 0 and grant.polls > 1 and now - grant.last_poll < grant.interval
        grant.last_poll = now
        if too_soon or (grant.polls == 1 and "slow-down" in grant.client):
            grant.interval += 5
            return Verdict.SLOW_DOWN, grant
        if grant.polls < self.approve_after:
            return Verdict.PENDING, grant
        if "denied" in grant.client:
            return Verdict.DENIED, grant
        grant.used = True
        return Verdict.APPROVED, grant
