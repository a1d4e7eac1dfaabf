"""Liveness, readiness and Prometheus metrics.

`/healthz`: the edge process answers. `/readyz`: a request could be served now: the bus
is connected, a router answers, and it knows a live worker for at least one provider.
Otherwise a 503 whose JSON body says what is missing (`missing`: `bus`, `router`,
`worker`, or `provider` when every provider is off or without credentials). The
router's answer is kept for about a second, so a load balancer polling often asks the
routers at most once a second per edge."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmbus.bus import Bus, BusTimeout, BusUnavailable, NoResponders, RemoteError
from llmbus.edge.deps import Context
from llmbus.proto import CONTROL_REGISTRY, RegistryQuery

__all__ = ["Readiness", "router"]

router = APIRouter()

READY = {"status": "ready"}


class Readiness:
    """The readiness answer, asked of a router at most once per `ttl` seconds."""

    def __init__(self, bus: Bus, *, ttl: float = 1.0, timeout: float = 0.5) -> None:
        self.bus = bus
        self.ttl = ttl
        self.timeout = timeout
        self._answer: tuple[float, int, dict[str, Any]] | None = None
        self._asking = asyncio.Lock()

    async def check(self) -> tuple[int, dict[str, Any]]:
        if not self.bus.connected:
            return 503, _missing("bus", "no connection to NATS")
        answer = self._answer
        if answer is not None and time.monotonic() - answer[0] < self.ttl:
            return answer[1], answer[2]
        async with self._asking:  # one question at a time; the others take its answer
            answer = self._answer
            if answer is None or time.monotonic() - answer[0] >= self.ttl:
                status, body = await self._ask()
                answer = (time.monotonic(), status, body)
                self._answer = answer
        return answer[1], answer[2]

    async def _ask(self) -> tuple[int, dict[str, Any]]:
        try:
            reply = await self.bus.request(
                CONTROL_REGISTRY, RegistryQuery(kind="providers"), timeout=self.timeout
            )
        except NoResponders:
            return 503, _missing("router", "no router is running")
        except BusTimeout:
            return 503, _missing("router", f"no router answered within {self.timeout:g}s")
        except BusUnavailable:
            return 503, _missing("bus", "no connection to NATS")
        except RemoteError as exc:
            return 503, _missing("router", f"the router answered an error: {exc.code}")
        try:
            providers = json.loads(reply.body)["data"] if reply.status == 200 else None
        except (ValueError, KeyError, TypeError):
            providers = None
        if not isinstance(providers, list):
            return 503, _missing("router", f"the router's provider list was unreadable ({reply.status})")
        routable = [p for p in providers if isinstance(p, dict) and p.get("routable")]
        if routable:
            return 200, READY
        reasons = {str(p.get("id")): p.get("reason") for p in providers if isinstance(p, dict)}
        if not reasons or any("worker" in str(reason) for reason in reasons.values()):
            body = _missing("worker", "no provider can take a request: none has a live worker serving it")
        else:
            body = _missing("provider", "no provider can take a request (see why for each)")
        body["providers"] = reasons
        return 503, body


def _missing(what: str, reason: str) -> dict[str, Any]:
    return {"status": "unavailable", "missing": what, "reason": reason}


def _readiness(request: Request, context: Context) -> Readiness:
    state = request.app.state
    readiness: Readiness | None = getattr(state, "readiness", None)
    if readiness is None or readiness.bus is not context.bus:
        readiness = Readiness(context.bus)
        state.readiness = readiness
    return readiness


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request, context: Context) -> JSONResponse:
    status, body = await _readiness(request, context).check()
    return JSONResponse(body, status_code=status)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
