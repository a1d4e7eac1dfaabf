"""The edge's side of the registry API: a query to any router, its JSON passed through."""

from __future__ import annotations

from fastapi.responses import Response

from llmbus.api import GatewayTimeout, Unavailable, error_from_status
from llmbus.bus import Bus, BusTimeout, BusUnavailable, NoResponders, RemoteError
from llmbus.proto import CONTROL_REGISTRY, RegistryQuery

__all__ = ["RegistryClient"]


class RegistryClient:
    def __init__(self, bus: Bus, timeout: float = 3.0) -> None:
        self.bus = bus
        self.timeout = timeout

    async def query(self, query: RegistryQuery) -> Response:
        try:
            reply = await self.bus.request(CONTROL_REGISTRY, query, timeout=self.timeout)
        except NoResponders:
            raise Unavailable("no llmbus router is available", code="no_router_available") from None
        except BusTimeout:
            raise GatewayTimeout("the router did not answer in time", code="router_timeout") from None
        except BusUnavailable:
            raise Unavailable("the message bus is unavailable", code="bus_unavailable") from None
        except RemoteError as exc:
            raise error_from_status(exc.status, exc.message, exc.code) from None
        return Response(reply.body, status_code=reply.status, media_type="application/json")
