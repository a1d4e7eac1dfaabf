"""The management key: it authorises the management API's writes. Kept only as a
SHA-256 digest and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["ManagementKey"]


class ManagementKey:
    def __init__(self, key: str = "") -> None:
        self._digest = b""
        self.set(key)

    def set(self, key: str) -> None:
        self._digest = hashlib.sha256(key.encode()).digest() if key else b""

    @property
    def configured(self) -> bool:
        return bool(self._digest)

    def matches(self, presented: str | None) -> bool:
        if not self._digest or not presented:
            return False
        return hmac.compare_digest(self._digest, hashlib.sha256(presented.encode()).digest())
