"""GitHub's OAuth device flow and its user API, as Copilot clients sign in with them.

- `POST /login/device/code` (github.com): `client_id`, `scope` (form or JSON) in;
  `device_code`, `user_code`, `verification_uri`, `expires_in`, `interval` out, as JSON
  when the caller accepts it, form-encoded otherwise (as GitHub does).
- `POST /login/oauth/access_token`: `client_id`, `device_code`, `grant_type`. GitHub
  answers **HTTP 200** whatever happens: the body's `error` (`authorization_pending`,
  `slow_down` with the new `interval`, `expired_token`, `access_denied`,
  `incorrect_device_code`, `unsupported_grant_type`, `incorrect_client_credentials`)
  or `access_token`, `token_type`, `scope`. The mock's user decides as `device.py` says.
- `GET /login/device`: the page a person would open; here a line that says the mock
  approves by itself.
- `GET /user` (api.github.com): `Authorization: token <gho_…>` → `login`, `id`, `name`,
  `email`. Each token the device flow issued names its own account (`mock-user-<n>`),
  so that one gateway can hold several.

The tokens issued here are `gho_` tokens, which the mock's Copilot token endpoint
(`copilot.py`) trades for Copilot tokens.
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from llmbus.mock_upstream.device import DeviceBook, Verdict
from llmbus.mock_upstream.serve import MockState, json_response

__all__ = ["DEVICE_GRANT_TYPE", "routes"]

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
_ERROR_URI = "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow"
_DESCRIPTIONS = {
    "authorization_pending": "The authorization request is still pending.",
    "slow_down": "Too many requests have been made in the same timeframe.",
    "expired_token": "The device_code has expired.",
    "access_denied": "The authorization request was denied.",
    "incorrect_device_code": "The device_code provided is not valid.",
    "unsupported_grant_type": "The grant type is not supported.",
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
}
_accounts = itertools.count(1)


async def _params(request: Request) -> dict[str, str]:
    """The body's parameters, form-encoded or JSON (GitHub takes both)."""
    raw = await request.body()
    if "json" in request.headers.get("content-type", ""):
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return {}
        return {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    return dict(parse_qsl(raw.decode("utf-8", "replace")))


def _answer(request: Request, body: dict[str, Any], status: int = 200) -> Response:
    if "json" in request.headers.get("accept", ""):
        return json_response(body, status)
    return Response(
        urlencode({k: str(v) for k, v in body.items()}),
        status,
        media_type="application/x-www-form-urlencoded",
    )


def _error(request: Request, code: str, **extra: Any) -> Response:
    body = {"error": code, "error_description": _DESCRIPTIONS[code], "error_uri": _ERROR_URI, **extra}
    return _answer(request, body)


def routes(state: MockState) -> list[Route]:
    settings = state.settings
    book = DeviceBook(
        approve_after=settings.device_approve_after,
        lifetime=settings.device_code_seconds,
        interval=settings.device_interval,
    )
    logins: dict[str, str] = {}
    """GitHub token → the account it belongs to."""

    async def device_code(request: Request) -> Response:
        params = await _params(request)
        state.record(request, "github", "", {k: v for k, v in params.items() if k != "client_secret"})
        client_id = params.get("client_id", "")
        if not client_id:
            return _error(request, "incorrect_client_credentials")
        grant = book.issue(client_id)
        base = str(request.base_url).rstrip("/")
        return _answer(
            request,
            {
                "device_code": grant.device_code,
                "user_code": grant.user_code,
                "verification_uri": f"{base}/login/device",
                "expires_in": settings.device_code_seconds,
                "interval": grant.interval,
            },
        )

    async def access_token(request: Request) -> Response:
        params = await _params(request)
        state.record(request, "github", "", {"grant_type": params.get("grant_type")})
        if params.get("grant_type") != DEVICE_GRANT_TYPE:
            return _error(request, "unsupported_grant_type")
        verdict, grant = book.poll(params.get("device_code", ""))
        if grant is not None and params.get("client_id") != grant.client:
            return _error(request, "incorrect_client_credentials")
        if verdict is Verdict.UNKNOWN:
            return _error(request, "incorrect_device_code")
        if verdict is Verdict.SLOW_DOWN:
            assert grant is not None
            return _error(request, verdict.value, interval=grant.interval)
        if verdict is not Verdict.APPROVED:
            return _error(request, verdict.value)
        token = state.mint("GitHub token", f"gho_{secrets.token_urlsafe(27)}")
        logins[token] = f"mock-user-{next(_accounts)}"
        return _answer(request, {"access_token": token, "token_type": "bearer", "scope": "read:user"})

    async def device_page(request: Request) -> Response:
        return PlainTextResponse(
            "llmbus mock GitHub: nothing to do here, the code is approved after "
            f"{settings.device_approve_after} polls.\n"
        )

    async def user(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        state.record(request, "github", token, None)
        if scheme.lower() not in ("token", "bearer") or not token.startswith(("gho_", "ghu_")):
            return json_response({"message": "Requires authentication", "status": "401"}, 401)
        if "error-401" in token:
            return json_response({"message": "Bad credentials", "status": "401"}, 401)
        login = logins.get(token, "mock-user")
        number = int(login.rpartition("-")[2]) if login[-1].isdigit() else 0
        return json_response(
            {
                "login": login,
                "id": 1_000_000 + number,
                "type": "User",
                "name": f"Mock User {number}" if number else "Mock User",
                "email": f"{login}@example.com",
            }
        )

    return [
        Route("/login/device/code", device_code, methods=["POST"]),
        Route("/login/oauth/access_token", access_token, methods=["POST"]),
        Route("/login/device", device_page, methods=["GET"]),
        Route("/user", user, methods=["GET"]),
    ]
