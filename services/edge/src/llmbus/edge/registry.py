"""The edge's side of the registry API: a query to any router, its JSON passed through."""

from __future__ import annotations

from fastapi.responses import Response

from llmbus.bus import Bus
from llmbus.edge.bus_errors import answered_by
from llmbus.proto import CONTROL_REGISTRY, RegistryQuery

__all__ = ["RegistryClient"]


class RegistryClient:
    def __init__(self, bus: Bus, timeout: float = 3.0) -> None:
        self.bus = bus
        self.timeout = timeout

    async def query(self, query: RegistryQuery) -> Response:
        with answered_by("router"):
            reply = await self.bus.request(CONTROL_REGISTRY, query, timeout=self.timeout)
        return Response(reply.body, status_code=reply.status, media_type="application/json")
