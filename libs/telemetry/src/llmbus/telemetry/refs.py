"""Names that stand for secrets' owners in telemetry: a credential is known by a short
digest of its id, never by the id itself nor its key."""

from __future__ import annotations

import hashlib
from functools import lru_cache

__all__ = ["credential_ref"]


@lru_cache(maxsize=4096)  # a process sees few credentials; each request names one
def credential_ref(credential_id: str) -> str:
    """The first 16 hex digits of the SHA-256 of `credential_id`: stable across processes
    and restarts (traces and usage records of one credential join on it), and says nothing
    of the credential's name in the config."""
    return hashlib.sha256(credential_id.encode()).hexdigest()[:16]
