"""What the edge's handlers share: settings, the bus, the inbox, key cache, the registry
client and the management key."""

from __future__ import annotations

from dataclasses import dataclass

from llmbus.bus import Bus, Inbox
from llmbus.edge.keys import KeyCache
from llmbus.edge.management import ManagementKey
from llmbus.edge.registry import RegistryClient
from llmbus.edge.settings import EdgeSettings
from llmbus.edge.usage import UsageReporter

__all__ = ["EdgeContext"]


@dataclass(slots=True)
class EdgeContext:
    settings: EdgeSettings
    bus: Bus
    inbox: Inbox
    keys: KeyCache
    registry: RegistryClient
    management: ManagementKey
    usage: UsageReporter
