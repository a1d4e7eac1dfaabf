"""Route handler: model → failover plan → `llm.v1.exec.<provider>`.

The request body is forwarded as it is (`msgspec.Raw`), never decoded here."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter

from llmbus.bus import Bus, BusUnavailable, Delivery
from llmbus.proto import EVENTS, EXEC, Error, ExecRequest, RouteRequest
from llmbus.routing import Catalog, RoundRobin, RoutingError

__all__ = ["Router"]

log = logging.getLogger(__name__)

ROUTED = Counter("llmbus_router_requests_total", "Requests routed", ["provider", "outcome"])


class Router:
    def __init__(self, bus: Bus, catalog: Catalog) -> None:
        self.bus = bus
        self.catalog = catalog
        self.selection = RoundRobin()

    async def on_route(self, request: RouteRequest, delivery: Delivery) -> None:
        if request.deadline and request.deadline < time.time() * 1000:
            return  # the edge has given up already
        try:
            plan = self.selection.order(request.model, self.catalog.resolve(request.model, request.needs))
        except RoutingError as exc:
            ROUTED.labels("", exc.code).inc()
            await self._fail(request, exc.status, exc.code, exc.message)
            return
        target = plan[0]
        exec_request = ExecRequest(
            request_id=request.request_id,
            model=request.model,
            reply=request.reply,
            deadline=request.deadline,
            client=request.client,
            needs=request.needs,
            body=request.body,
            target=target,
            plan=plan[1:],
        )
        ROUTED.labels(target.provider, "routed").inc()
        # reply= the edge's inbox: with no worker subscribed, NATS answers it with a 503.
        await self.bus.publish(EXEC, exec_request, reply=request.reply, provider=target.provider)

    async def _fail(self, request: RouteRequest, status: int, code: str, message: str) -> None:
        frame = EVENTS.encode(Error(seq=0, status=status, code=code, message=message))
        try:
            await self.bus.publish_raw(request.reply, frame)
        except BusUnavailable:
            log.warning("cannot answer request %s: bus unavailable", request.request_id)
