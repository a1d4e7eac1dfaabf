"""llmbus bus: typed NATS publish, request/reply, subscriptions and stream inboxes."""

from llmbus.bus.client import NatsBus, connect, is_no_responders
from llmbus.bus.errors import BusFailure, BusTimeout, BusUnavailable, NoResponders, RemoteError
from llmbus.bus.inbox import Inbox, StreamInbox
from llmbus.bus.protocol import Bus, Delivery, Subscription
from llmbus.bus.runtime import run_service

__all__ = [
    "Bus",
    "BusFailure",
    "BusTimeout",
    "BusUnavailable",
    "Delivery",
    "Inbox",
    "NatsBus",
    "NoResponders",
    "RemoteError",
    "StreamInbox",
    "Subscription",
    "connect",
    "is_no_responders",
    "run_service",
]
