"""What the edge's handlers share: settings, the bus, the inbox, key cache, catalog."""

from __future__ import annotations

from dataclasses import dataclass

from llmbus.bus import Bus, Inbox
from llmbus.edge.keys import KeyCache
from llmbus.edge.settings import EdgeSettings
from llmbus.routing import Catalog

__all__ = ["EdgeContext"]


@dataclass(slots=True)
class EdgeContext:
    settings: EdgeSettings
    bus: Bus
    inbox: Inbox
    keys: KeyCache
    catalog: Catalog
