"""The edge's side of the registry API: a query to any router, its JSON passed through."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi.responses import Response

from llmbus.api import error_from_status
from llmbus.bus import Bus
from llmbus.edge.bus_errors import answered_by
from llmbus.proto import CONTROL_REGISTRY, RegistryQuery, RegistryReply

__all__ = ["RegistryClient"]


class RegistryClient:
    def __init__(self, bus: Bus, timeout: float = 3.0) -> None:
        self.bus = bus
        self.timeout = timeout

    async def _ask(self, query: RegistryQuery) -> RegistryReply:
        with answered_by("router"):
            return await self.bus.request(CONTROL_REGISTRY, query, timeout=self.timeout)

    async def query(self, query: RegistryQuery) -> Response:
        reply = await self._ask(query)
        return Response(reply.body, status_code=reply.status, media_type="application/json")

    async def document(self, query: RegistryQuery) -> Any:
        """The answer decoded (for pages the edge renders itself); an error answer is
        raised as the API error it describes."""
        reply = await self._ask(query)
        document = msgspec.json.decode(reply.body)
        if reply.status != 200:
            error = document.get("error", {}) if isinstance(document, dict) else {}
            raise error_from_status(reply.status, str(error.get("message", "")), str(error.get("code") or ""))
        return document
