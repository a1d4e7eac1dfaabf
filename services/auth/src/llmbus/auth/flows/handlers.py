"""`auth.v1.flows.start` and `auth.v1.flows.status`: the device flows' domain errors
become bus errors here, in one table."""

from __future__ import annotations

import logging

from llmbus.auth.flows.dialects import FlowRejected
from llmbus.auth.flows.runner import FlowRunner, TooManyFlows
from llmbus.auth.flows.store import FlowStoreUnavailable, UnknownFlow
from llmbus.auth.flows.types import FlowFailed
from llmbus.bus import Bus, Delivery
from llmbus.proto import AUTH_FLOW_START, AUTH_FLOW_STATUS, BusError, DeviceFlowPoll, DeviceFlowStart

__all__ = ["FlowHandlers"]

log = logging.getLogger(__name__)


def _bus_error(exc: Exception) -> BusError:
    match exc:
        case FlowRejected():
            return BusError(status=exc.status, code=exc.code, message=exc.message)
        case UnknownFlow():
            return BusError(status=404, code="flow_not_found", message=str(exc))
        case FlowFailed():
            return BusError(status=502, code="login_upstream_refused", message=str(exc))
        case TooManyFlows():
            return BusError(status=503, code="too_many_logins", message=f"{exc}: try again in a few minutes")
        case FlowStoreUnavailable():
            return BusError(status=503, code="auth_store_unavailable", message=str(exc))
    raise exc


class FlowHandlers:
    def __init__(self, bus: Bus, runner: FlowRunner) -> None:
        self.bus = bus
        self.runner = runner

    async def start(self, request: DeviceFlowStart, delivery: Delivery) -> None:
        try:
            flow = await self.runner.start(request)
        except (FlowRejected, FlowFailed, TooManyFlows, FlowStoreUnavailable) as exc:
            if isinstance(exc, FlowFailed):
                log.warning("login for %s not started: %s", request.provider, exc)
            await self.bus.respond_error(delivery, _bus_error(exc))
            return
        await self.bus.respond(delivery, AUTH_FLOW_START, flow)

    async def status(self, request: DeviceFlowPoll, delivery: Delivery) -> None:
        try:
            status = await self.runner.status(request.flow_id)
        except (UnknownFlow, FlowStoreUnavailable) as exc:
            await self.bus.respond_error(delivery, _bus_error(exc))
            return
        await self.bus.respond(delivery, AUTH_FLOW_STATUS, status)
