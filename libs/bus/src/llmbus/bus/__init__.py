"""llmbus bus: typed NATS publish, request/reply, subscriptions and stream inboxes."""

from llmbus.bus.client import STOPPING, NatsBus, connect, is_no_responders
from llmbus.bus.eager import run_eagerly
from llmbus.bus.errors import BusFailure, BusTimeout, BusUnavailable, NoResponders, RemoteError
from llmbus.bus.inbox import Inbox, StreamInbox
from llmbus.bus.protocol import Bus, Delivery, Pace, Subscription
from llmbus.bus.retry import BUS_RETRYABLE, retry_within
from llmbus.bus.runtime import Lifecycle, run_service

__all__ = [
    "BUS_RETRYABLE",
    "STOPPING",
    "Bus",
    "BusFailure",
    "BusTimeout",
    "BusUnavailable",
    "Delivery",
    "Inbox",
    "Lifecycle",
    "NatsBus",
    "NoResponders",
    "Pace",
    "RemoteError",
    "StreamInbox",
    "Subscription",
    "connect",
    "is_no_responders",
    "retry_within",
    "run_eagerly",
    "run_service",
]
