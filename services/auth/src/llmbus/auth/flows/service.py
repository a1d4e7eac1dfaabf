"""The device flows' part of the auth service: one call from `main` subscribes the
handlers and keeps taking over the flows of replicas that stopped."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack

from redis.asyncio import Redis

from llmbus.auth.flows.dialects import LoginTarget, dialect_for
from llmbus.auth.flows.handlers import FlowHandlers
from llmbus.auth.flows.runner import CredentialSink, FlowRunner
from llmbus.auth.flows.store import FlowStore, Sealer
from llmbus.auth.flows.types import DeviceDialect
from llmbus.bus import Bus
from llmbus.proto import AUTH_FLOW_START, AUTH_FLOW_STATUS
from llmbus.providers import ConfiguredProvider
from llmbus.providers.http import HttpClient

__all__ = ["serve_flows"]


async def serve_flows(
    stack: AsyncExitStack,
    bus: Bus,
    redis: Redis,
    sealer: Sealer,
    sink: CredentialSink,
    providers: Callable[[], Mapping[str, ConfiguredProvider]],
    *,
    copilot_client_id: str,
    max_flows: int,
    lease_seconds: float = 30.0,
) -> FlowRunner:
    """`providers()` is the configuration's current providers (it changes on reload)."""
    http = HttpClient(read_timeout=30.0, max_connections=64, max_keepalive=16)
    stack.push_async_callback(http.aclose)

    def dialects(target: LoginTarget) -> DeviceDialect:
        return dialect_for(target, providers(), http, copilot_client_id=copilot_client_id)

    store = FlowStore(redis, sealer, f"auth-{secrets.token_hex(6)}", lease_seconds=lease_seconds)
    runner = FlowRunner(store, dialects, sink, max_flows=max_flows)
    stack.push_async_callback(runner.aclose)
    handlers = FlowHandlers(bus, runner)
    await bus.subscribe(AUTH_FLOW_START, handlers.start, queue=AUTH_FLOW_START.queue)
    await bus.subscribe(AUTH_FLOW_STATUS, handlers.status, queue=AUTH_FLOW_STATUS.queue)
    resumer = asyncio.create_task(runner.run_resumer(lease_seconds / 2))
    stack.callback(resumer.cancel)
    return runner
