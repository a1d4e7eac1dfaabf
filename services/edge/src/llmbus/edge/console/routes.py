"""The console's routes under `/console`: pages (GET) and actions (POST forms).

    GET  /console/login                 the login form          POST /console/login, /console/logout
    GET  /console/providers             status and switches     POST …/providers/{name}/enabled
                                                                POST …/providers/{name}/cooldowns
    GET  /console/keys                  keys, a create form     POST /console/keys, …/keys/{id}/revoke
    GET  /console/usage                 daily charts            (?by=key|provider|model|credential&days=N)
    GET  /console/live                  requests in flight      GET /console/live.json (polled each second)
    GET  /console/logins                the device-flow login pages
    GET  /console/static/{name}         the stylesheet and the script

Every route answers only clients that the management API answers (`deps.admit`), and
every one but the login needs a session (`sessions.py`); every action needs the
session's CSRF token. The login checks the key as the management API does, wrong keys
counted by auth and locked out on every edge. The data come from the same bus calls as
the management API's (`admin.py`, the registry)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from llmbus.api import ApiError, InvalidRequest
from llmbus.edge import admin
from llmbus.edge.calls import LIVE
from llmbus.edge.console import views
from llmbus.edge.console.charts import last_days
from llmbus.edge.console.sessions import COOKIE, Session, Sessions
from llmbus.edge.context import EdgeContext
from llmbus.edge.deps import Context, admit, check_management_key
from llmbus.edge.limits import Concurrency
from llmbus.edge.routes.keys import NewKey
from llmbus.proto import RegistryQuery, UsageDimension, UsageReport

__all__ = ["mount"]

router = APIRouter(prefix="/console", include_in_schema=False)

_FORM_LIMIT = 16 * 1024
"""The largest form body an action reads."""
_FORM_FIELDS = 32

_HEADERS = {
    # The console's own stylesheet and script, nothing inline or from elsewhere, never in a frame.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_USAGE_DIMENSIONS: tuple[UsageDimension, ...] = ("key", "provider", "model", "credential")


class LoginNeeded(Exception):
    """No valid session: the browser goes to the login form."""


class Refused(Exception):
    """An error the console shows as a page of its own (refused client, bad CSRF token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _source(request: Request) -> str:
    return request.client.host if request.client else ""


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


def _admitted(request: Request, context: EdgeContext) -> None:
    try:
        admit(context, _source(request))
    except ApiError as exc:
        raise Refused(exc.status, exc.message) from None


async def _session(request: Request, context: Context) -> Session:
    # async: FastAPI runs a plain `def` dependency in a worker thread.
    _admitted(request, context)
    session = _sessions(request).verify(context.management, request.cookies.get(COOKIE), time.time())
    if session is None:
        raise LoginNeeded
    return session


LoggedIn = Annotated[Session, Depends(_session)]


async def _form(request: Request, session: Session | None = None) -> dict[str, str]:
    """The urlencoded form of an action (its first value per field); with a session, its
    CSRF token must be the session's."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_LIMIT:
            raise Refused(413, "The form is too large.")
    try:
        form = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=_FORM_FIELDS)
    except UnicodeDecodeError:
        raise Refused(400, "The form is not valid UTF-8.") from None
    except ValueError:
        raise Refused(400, "The form has too many fields.") from None
    fields = {name: values[0] for name, values in form.items()}
    if session is not None and not session.csrf_matches(fields.get("csrf")):
        raise Refused(403, "The form's CSRF token is missing or stale: reload the page and try again.")
    return fields


def _back(path: str, *, notice: str = "", error: str = "") -> RedirectResponse:
    if notice:
        path += f"?notice={quote(notice)}"
    elif error:
        path += f"?error={quote(error)}"
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})


def _actor(request: Request) -> str:
    return f"console@{_source(request)}"


# --- login -------------------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request, context: Context) -> Response:
    _admitted(request, context)
    if _sessions(request).verify(context.management, request.cookies.get(COOKIE), time.time()):
        return _back("/console/providers")
    return _page(views.login_page())


@router.post("/login")
async def login(request: Request, context: Context) -> Response:
    _admitted(request, context)
    fields = await _form(request)
    try:
        await check_management_key(context, _source(request), fields.get("key", "").strip() or None)
    except ApiError as exc:
        return _page(views.login_page(exc.message), status=exc.status)
    response = _back("/console/providers")
    response.set_cookie(
        COOKIE,
        _sessions(request).issue(context.management, time.time()),
        max_age=_sessions(request).lifetime,
        path="/console",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
async def logout(request: Request, session: LoggedIn) -> Response:
    await _form(request, session)
    _sessions(request).end(session, time.time())
    response = _back("/console/login")
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


@router.get("")
@router.get("/")
async def home(_: LoggedIn) -> Response:
    return _back("/console/providers")


# --- providers ---------------------------------------------------------------------------


@router.get("/providers")
async def providers(
    request: Request, context: Context, session: LoggedIn, notice: str = "", error: str = ""
) -> Response:
    try:
        listing = await context.registry.document(RegistryQuery(kind="providers"))
        names = [str(p["id"]) for p in listing["data"]]
        statuses = await asyncio.gather(
            *(context.registry.document(RegistryQuery(kind="provider_status", name=n)) for n in names)
        )
    except ApiError as exc:
        return _page(views.providers_page([], {}, session.csrf, error=exc.message), status=exc.status)
    by_name = dict(zip(names, statuses, strict=True))
    return _page(views.providers_page(listing["data"], by_name, session.csrf, notice=notice, error=error))


@router.post("/providers/{name}/enabled")
async def switch_provider(name: str, request: Request, context: Context, session: LoggedIn) -> Response:
    fields = await _form(request, session)
    enabled = fields.get("enabled") == "true"
    try:
        await admin.toggle_provider(context.bus, name, enabled=enabled, actor=_actor(request))
    except ApiError as exc:
        return _back("/console/providers", error=exc.message)
    return _back("/console/providers", notice=f"{name} switched {'on' if enabled else 'off'}.")


@router.post("/providers/{name}/cooldowns")
async def end_cooldowns(name: str, request: Request, context: Context, session: LoggedIn) -> Response:
    fields = await _form(request, session)
    try:
        cleared = await admin.clear_cooldowns(
            context.bus, name, _actor(request), credential=fields.get("credential", "")
        )
    except ApiError as exc:
        return _back("/console/providers", error=exc.message)
    return _back(
        "/console/providers",
        notice=f"{cleared.cleared} cooldown(s) of {name} ended: the next request probes the upstream.",
    )


# --- keys --------------------------------------------------------------------------------


async def _keys_page(context: EdgeContext, session: Session, status: int = 200, **shown: Any) -> Response:
    try:
        keys = await admin.list_keys(context.bus, include_revoked=True)
    except ApiError as exc:
        return _page(views.keys_page([], session.csrf, error=exc.message), status=exc.status)
    return _page(views.keys_page(keys, session.csrf, **shown), status=status)


@router.get("/keys")
async def keys(context: Context, session: LoggedIn, notice: str = "", error: str = "") -> Response:
    return await _keys_page(context, session, notice=notice, error=error)


def _new_key(fields: dict[str, str]) -> NewKey:
    """The create form as the management API's key request: the same limits, checked the
    same way."""
    days = fields.get("expires_in_days", "").strip()
    document: dict[str, Any] = {
        "name": fields.get("name", "").strip(),
        "owner": fields.get("owner", "").strip(),
        "models": [m.strip() for m in fields.get("models", "").split(",") if m.strip()],
    }
    for limit in ("rpm", "tpm", "max_tokens"):
        document[limit] = fields.get(limit, "").strip() or "0"
    try:
        if days:
            document["expires_in"] = float(days) * 86400
        return msgspec.convert(document, NewKey, strict=False)
    except (ValueError, msgspec.ValidationError) as exc:
        raise InvalidRequest(f"Invalid key: {exc}") from None


@router.post("/keys")
async def create_key(request: Request, context: Context, session: LoggedIn) -> Response:
    fields = await _form(request, session)
    try:
        created = await admin.create_key(context.bus, _new_key(fields).create(time.time(), _actor(request)))
    except ApiError as exc:
        return await _keys_page(context, session, status=exc.status, error=exc.message)
    return await _keys_page(context, session, status=201, created=(created.info, created.key))


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, context: Context, session: LoggedIn) -> Response:
    await _form(request, session)
    try:
        info = await admin.revoke_key(context.bus, key_id, _actor(request))
    except ApiError as exc:
        return _back("/console/keys", error=exc.message)
    return _back("/console/keys", notice=f"Key {info.name or info.id} revoked.")


# --- usage -------------------------------------------------------------------------------


@router.get("/usage")
async def usage(
    context: Context, session: LoggedIn, by: str = "key", days: int = 7, metric: str = "requests"
) -> Response:
    dimension: UsageDimension = next((d for d in _USAGE_DIMENSIONS if d == by), "key")
    days = min(max(days, 1), 366)
    metric = metric if metric in views.USAGE_METRICS else "requests"
    labels: dict[str, str] = {}
    report: UsageReport | None = None
    error = ""
    try:
        report = await admin.usage_report(context.bus, dimension, days)
        if dimension == "key":
            labels = {k.id: k.name or k.id for k in await admin.list_keys(context.bus, include_revoked=True)}
    except ApiError as exc:
        error = f"No usage report: {exc.message}."
    return _page(views.usage_page(report, last_days(days), metric, labels, session.csrf, error=error))


# --- live and logins ---------------------------------------------------------------------


class _LiveProvider(msgspec.Struct):
    provider: str
    in_flight: int
    workers: int
    requests: int
    errors: int


class _LiveKey(msgspec.Struct):
    key: str
    in_flight: int


class _LiveRequest(msgspec.Struct):
    request_id: str
    key: str
    model: str
    provider: str
    stream: bool
    seconds: float


class _Live(msgspec.Struct):
    at: float
    edge_in_flight: int
    keys: list[_LiveKey]
    providers: list[_LiveProvider]
    requests: list[_LiveRequest]
    error: str | None = None


LIVE_REQUESTS_SHOWN = 200
"""The longest-running requests the live view lists (of this edge process's)."""


def live_requests(now: float) -> list[_LiveRequest]:
    """This edge process's calls in flight, the longest running first."""
    calls = sorted(LIVE.values(), key=lambda call: call.opened)[:LIVE_REQUESTS_SHOWN]
    return [
        _LiveRequest(
            request_id=call.request_id,
            key=call.client.id,
            model=call.chat.model,
            provider=call.provider,
            stream=call.chat.stream,
            seconds=round(now - call.opened, 1),
        )
        for call in calls
    ]


_encode = msgspec.json.Encoder().encode


@router.get("/live")
async def live(context: Context, session: LoggedIn) -> Response:
    try:
        names = {k.id: k.name for k in await admin.list_keys(context.bus, include_revoked=False) if k.name}
    except ApiError:
        names = {}  # the live view shows key ids then
    return _page(views.live_page(session.csrf, names))


@router.get("/live.json")
async def live_json(request: Request, context: Context, _: LoggedIn) -> Response:
    """Requests in flight: per provider from the routers' view of every worker, and per
    client key and one by one on this edge process (the requests it serves)."""
    concurrency: Concurrency = request.app.concurrency
    keys = [_LiveKey(k, n) for k, n in sorted(concurrency.by_key.items())]
    providers: list[_LiveProvider] = []
    error = None
    try:
        metrics = await context.registry.document(RegistryQuery(kind="metrics"))
        providers = [
            _LiveProvider(
                provider=m["provider"],
                in_flight=m["in_flight"],
                workers=m["workers"],
                requests=m["requests"],
                errors=m["errors"]["total"],
            )
            for m in metrics["data"]
        ]
    except ApiError as exc:
        error = exc.message
    live = _Live(time.time(), concurrency.total, keys, providers, live_requests(time.monotonic()), error)
    return Response(_encode(live), media_type="application/json", headers=_HEADERS)


@router.get("/logins")
async def logins(session: LoggedIn) -> Response:
    return _page(views.logins_page(session.csrf))


# --- assembly ----------------------------------------------------------------------------


def _static_route(files: dict[str, tuple[bytes, str]]) -> Any:
    async def static(name: str, request: Request, context: Context) -> Response:
        _admitted(request, context)
        found = files.get(name)
        if found is None:
            return _page(views.error_page(404, "No such file."), status=404)
        body, media_type = found
        return Response(body, media_type=media_type, headers={**_HEADERS, "Cache-Control": "max-age=300"})

    return static


async def _login_needed(request: Request, exc: Exception) -> Response:
    if request.url.path.endswith(".json"):
        return JSONResponse({"error": "login needed"}, status_code=401, headers=_HEADERS)
    return _back("/console/login")


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return _page(views.error_page(exc.status, exc.message), status=exc.status)


def mount(app: FastAPI) -> None:
    """Serve the console from `app`: its routes, its static files (read once, here) and
    the handlers that turn a missing session into the login form."""
    folder = Path(__file__).with_name("static")
    files = {
        path.name: (path.read_bytes(), _STATIC_TYPES[path.suffix])
        for path in folder.iterdir()
        if path.suffix in _STATIC_TYPES
    }
    app.state.console_sessions = Sessions()
    app.include_router(router)
    app.add_api_route(
        "/console/static/{name}", _static_route(files), methods=["GET"], include_in_schema=False
    )
    app.add_exception_handler(LoginNeeded, _login_needed)
    app.add_exception_handler(Refused, _refused)
