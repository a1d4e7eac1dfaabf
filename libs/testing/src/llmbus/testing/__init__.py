"""llmbus testing: processes for local runs and tests (never imported by services)."""

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
