"""Console sessions: what the browser holds after the management key was accepted.

The cookie carries a random id, an expiry and a MAC of both under a secret derived from
the management key (`ManagementKey.sign`), never the key itself. Every edge process
verifies it the same way without shared state, so a multi-process edge serves the
console too, and changing the management key ends every session. Logging out ends the
session in this process (its id is kept until it would have expired anyway) and clears
the cookie.

Each session has its CSRF token, a MAC of its id: every form carries it, and an action
whose form does not is refused."""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass, field

from llmbus.edge.management import ManagementKey

__all__ = ["COOKIE", "LIFETIME_SECONDS", "Session", "Sessions"]

COOKIE = "llmbus_console"
LIFETIME_SECONDS = 8 * 3600
"""A working day: then the console asks for the key again."""


def _text(mac: bytes) -> str:
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    expires_at: int
    csrf: str

    def csrf_matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), (presented or "").encode())


@dataclass(slots=True)
class Sessions:
    lifetime: int = LIFETIME_SECONDS
    _ended: dict[str, int] = field(default_factory=dict)
    """Ids logged out in this process → when they would have expired."""

    def issue(self, key: ManagementKey, now: float) -> str:
        """A new session's cookie value."""
        session_id = secrets.token_urlsafe(24)
        expires_at = int(now) + self.lifetime
        signed = f"{session_id}.{expires_at}"
        return f"{signed}.{_text(key.sign(b'session:' + signed.encode()))}"

    def verify(self, key: ManagementKey, token: str | None, now: float) -> Session | None:
        """The session of a cookie value: None when it is malformed, forged, signed under
        another management key, expired or logged out."""
        if not token or token.count(".") != 2:
            return None
        session_id, expires, mac = token.split(".")
        if not expires.isdigit() or len(expires) > 12:
            return None
        expected = key.sign(f"session:{session_id}.{expires}".encode())
        if not expected or not hmac.compare_digest(_text(expected).encode(), mac.encode()):
            return None
        expires_at = int(expires)
        if expires_at <= now or session_id in self._ended:
            return None
        return Session(session_id, expires_at, _text(key.sign(b"csrf:" + session_id.encode())))

    def end(self, session: Session, now: float) -> None:
        for session_id in [s for s, until in self._ended.items() if until <= now]:
            del self._ended[session_id]
        self._ended[session.id] = session.expires_at
