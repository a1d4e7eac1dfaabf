"""Device-flow logins, for a person: `GET /v0/oauth/copilot` and `GET /v0/oauth/kiro` are
small self-contained pages (`oauth_pages.py`) that drive the JSON API below from the
browser; the CLI (`llmbus login`) drives the same API.

    POST /v0/oauth/{copilot|kiro}/start   → flow_id, user_code, verification_uri,
                                            verification_uri_complete, expires_in, interval
    GET  /v0/oauth/flows/{flow_id}        → status (pending, success, expired, denied,
                                            error), credential (on success), error

The JSON API needs the management key; the pages ask for it and send it from script.
Auth runs the flow: the upstream calls, the polling and the stored credential.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from llmbus.api import InvalidRequest, NotFound
from llmbus.edge.bus_errors import answered_by
from llmbus.edge.deps import Context, Manager
from llmbus.edge.routes.oauth_pages import login_page
from llmbus.proto import AUTH_FLOW_START, AUTH_FLOW_STATUS, DeviceFlowPoll, DeviceFlowStart

__all__ = ["router"]

router = APIRouter()
_encode = msgspec.json.Encoder().encode
_FAMILIES = ("copilot", "kiro")
_PAGE_HEADERS = {
    # The page's own inline script and style, nothing from elsewhere, never in a frame.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


class _Start(msgspec.Struct, forbid_unknown_fields=True):
    provider: str = ""
    """A configured provider of the family; default: the built-in one (`copilot`, `kiro`)."""
    method: Literal["", "github", "builder-id", "identity-center"] = ""
    start_url: str = ""
    region: str = ""


def _family(name: str) -> str:
    if name not in _FAMILIES:
        raise NotFound(f"No device-flow login for `{name}`: use copilot or kiro.", code="unknown_login")
    return name


@router.get("/v0/oauth/{family}", response_class=HTMLResponse)
async def page(family: str) -> HTMLResponse:
    return HTMLResponse(login_page(_family(family)), headers=_PAGE_HEADERS)


@router.post("/v0/oauth/{family}/start")
async def start(family: str, request: Request, context: Context, actor: Manager) -> Response:
    _family(family)
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw, type=_Start) if raw.strip() else _Start()
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Expected a JSON body {{provider, method, start_url, region}}: {exc}") from None
    if family == "copilot":
        method = body.method or "github"
    else:
        method = body.method or ("identity-center" if body.start_url else "builder-id")
    if (method == "github") != (family == "copilot"):
        raise InvalidRequest(f"`{method}` is not a {family} login method.", param="method")
    with answered_by("auth"):
        flow = await context.bus.request(
            AUTH_FLOW_START,
            DeviceFlowStart(
                provider=body.provider or family,
                method=method,
                start_url=body.start_url.strip(),
                region=body.region.strip(),
                actor=actor,
            ),
            timeout=30,  # two upstream calls for Kiro (register, authorise)
        )
    return Response(_encode(flow), media_type="application/json")


@router.get("/v0/oauth/flows/{flow_id}")
async def status(flow_id: str, context: Context, _: Manager) -> Response:
    with answered_by("auth"):
        state = await context.bus.request(AUTH_FLOW_STATUS, DeviceFlowPoll(flow_id=flow_id), timeout=5)
    return Response(_encode(state), media_type="application/json", headers={"Cache-Control": "no-store"})
