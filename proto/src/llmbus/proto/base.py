"""The one base every bus message shares.

Messages are frozen, keyword-only msgspec Structs. Unknown fields are ignored on
decode, so a newer sender can add fields (with defaults) without breaking an
older receiver: contracts evolve additively, nothing is retyped or removed.
"""

from __future__ import annotations

import msgspec

__all__ = ["Msg"]


class Msg(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every message on the bus."""
