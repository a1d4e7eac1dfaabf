"""llmbus testing: processes for local runs and tests, and an in-memory bus twin for unit
tests (never imported by services)."""

from llmbus.testing.bus import InMemoryBus
from llmbus.testing.processes import (
    MissingBinary,
    Process,
    find_binary,
    free_port,
    port_is_free,
    start_nats,
    start_redis,
    wait_for_http,
    wait_for_port,
)
from llmbus.testing.stack import Stack, StackPorts

__all__ = [
    "InMemoryBus",
    "MissingBinary",
    "Process",
    "Stack",
    "StackPorts",
    "find_binary",
    "free_port",
    "port_is_free",
    "start_nats",
    "start_redis",
    "wait_for_http",
    "wait_for_port",
]
