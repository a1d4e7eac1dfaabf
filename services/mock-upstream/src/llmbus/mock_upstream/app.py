"""Mock upstreams for every adapter family, for development, demos and tests.

Each family is a module of its own that speaks the provider's exact wire format (see
each module); they share one request cycle (`serve.py`) and one script (`script.py`):
the answer echoes the last user message, calls a tool when the request offers tools,
reports the images it saw, and truncates at `max_tokens`. Scenarios (`scenarios.py`)
script failures: error statuses with each provider's own bodies, hangs, malformed
frames, errors and dropped connections mid-stream, compressed answers.

The admin API under `/__mock__/` lets tests look at what the gateway sent:
`GET requests` (each with its family, path, headers without credentials, body and its
`outcome`: `rejected`, `streaming`, `completed`, or `aborted` when the caller went away
first), `GET issued` (every token and client secret it minted, `{kind, secret}`: the
suite's log scan looks for them), `POST reset`, `POST scenario` (`{"scenario":
"error-500"}` or null).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmbus.mock_upstream import anthropic, copilot, gemini, github_device, kiro, openai
from llmbus.mock_upstream.scenarios import Scenario
from llmbus.mock_upstream.serve import MockState, json_response
from llmbus.mock_upstream.settings import MockSettings

__all__ = ["FAMILIES", "MockState", "create_app"]

FAMILIES: dict[str, Any] = {
    "anthropic": anthropic,
    "openai": openai,
    "copilot": copilot,
    "gemini": gemini,
    "kiro": kiro,
    "github": github_device,
}
"""Family modules, each with `routes(state) -> list[Route]`. Anthropic comes before OpenAI:
both serve `GET /v1/models`, and Anthropic's routes claim only requests with its headers."""

_decode = msgspec.json.Decoder().decode


def create_app(settings: MockSettings | None = None) -> Starlette:
    state = MockState(settings or MockSettings())

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def admin_requests(request: Request) -> Response:
        return json_response(list(state.requests))

    async def admin_issued(request: Request) -> Response:
        return json_response(state.minted)

    async def admin_reset(request: Request) -> Response:
        state.requests.clear()
        state.forced = None
        return json_response({"status": "reset"})

    async def admin_scenario(request: Request) -> Response:
        try:
            name = _decode(await request.body()).get("scenario")
            state.forced = None if name is None else Scenario(name)
        except (msgspec.DecodeError, AttributeError, ValueError):
            names = ", ".join(s.value for s in Scenario)
            return json_response({"error": f'expected {{"scenario": one of {names} or null}}'}, 400)
        return json_response({"scenario": state.forced})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/__mock__/requests", admin_requests, methods=["GET"]),
        Route("/__mock__/issued", admin_issued, methods=["GET"]),
        Route("/__mock__/reset", admin_reset, methods=["POST"]),
        Route("/__mock__/scenario", admin_scenario, methods=["POST"]),
    ]
    for module in FAMILIES.values():
        routes += module.routes(state)
    app = Starlette(routes=routes)
    app.state.mock = state
    return app
