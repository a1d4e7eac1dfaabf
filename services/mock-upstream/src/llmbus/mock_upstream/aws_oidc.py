"""AWS SSO OIDC's device authorisation, as Kiro signs in with AWS Builder ID and IAM
Identity Center (JSON bodies, camelCase fields, errors as `{error, error_description}`
with `x-amzn-ErrorType`).

- `POST /client/register`: `clientName`, `clientType` (`public`), `scopes`,
  `grantTypes` → `clientId`, `clientSecret`, `clientIdIssuedAt`, `clientSecretExpiresAt`
  (90 days on); 400 `invalid_client_metadata` without a name or for another type.
- `POST /device_authorization`: `clientId`, `clientSecret`, `startUrl` → `deviceCode`,
  `userCode`, `verificationUri`, `verificationUriComplete`, `expiresIn`, `interval`;
  401 `invalid_client` for a client this mock did not register.
- `POST /token` with `grantType: urn:ietf:params:oauth:grant-type:device_code`: pending
  is **HTTP 400** `authorization_pending` (or `slow_down`), then `expired_token` or
  `access_denied` (a client name or start URL containing `denied`), `invalid_grant` for
  an unknown device code; success is Kiro's tokens (`accessToken`, `refreshToken`,
  `expiresIn`, `tokenType`), issued by the Kiro family so that its chat API takes them.
  The refresh grant of the same endpoint stays in `kiro.py`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmbus.mock_upstream.device import DeviceBook, Verdict
from llmbus.mock_upstream.serve import MockState, json_response

__all__ = ["DEVICE_GRANT_TYPE", "OidcDevices"]

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
_SECRET_SECONDS = 90 * 24 * 3600
_EXCEPTIONS = {
    "authorization_pending": ("AuthorizationPendingException", 400),
    "slow_down": ("SlowDownException", 400),
    "expired_token": ("ExpiredTokenException", 400),
    "access_denied": ("AccessDeniedException", 400),
    "invalid_grant": ("InvalidGrantException", 400),
    "invalid_client": ("InvalidClientException", 401),
    "invalid_client_metadata": ("InvalidClientMetadataException", 400),
    "invalid_request": ("InvalidRequestException", 400),
}


def oidc_error(code: str, description: str) -> Response:
    kind, status = _EXCEPTIONS[code]
    body = {"error": code, "error_description": description}
    return json_response(body, status, {"x-amzn-ErrorType": kind})


@dataclass(slots=True)
class _Client:
    secret: str
    name: str


class OidcDevices:
    """The device half of the mock's SSO OIDC; `issue()` mints Kiro's tokens."""

    def __init__(self, state: MockState, issue: Callable[[], dict[str, Any]]) -> None:
        settings = state.settings
        self.state = state
        self.issue = issue
        self.book = DeviceBook(
            approve_after=settings.device_approve_after,
            lifetime=settings.device_code_seconds,
            interval=settings.device_interval,
        )
        self.clients: dict[str, _Client] = {}
        self.owners: dict[str, str] = {}
        """Device code → the client that asked for it."""

    def _client(self, body: dict[str, Any]) -> str | None:
        """The registered client the body names with its secret, or None."""
        client_id = body.get("clientId")
        client = self.clients.get(client_id) if isinstance(client_id, str) else None
        if client is None or body.get("clientSecret") != client.secret:
            return None
        return str(client_id)

    async def register(self, request: Request, body: dict[str, Any]) -> Response:
        self.state.record(request, "aws-oidc", "", body)
        name = body.get("clientName")
        if not isinstance(name, str) or not name or body.get("clientType") != "public":
            return oidc_error("invalid_client_metadata", "clientName and clientType public are required")
        client_id = uuid.uuid4().hex
        secret = self.state.mint("OIDC client secret", f"mock-client-secret-{uuid.uuid4().hex}")
        self.clients[client_id] = _Client(secret=secret, name=name)
        now = int(time.time())
        return json_response(
            {
                "clientId": client_id,
                "clientSecret": secret,
                "clientIdIssuedAt": now,
                "clientSecretExpiresAt": now + _SECRET_SECONDS,
            }
        )

    async def authorize(self, request: Request, body: dict[str, Any]) -> Response:
        self.state.record(request, "aws-oidc", "", {"startUrl": body.get("startUrl")})
        client_id = self._client(body)
        if client_id is None:
            return oidc_error("invalid_client", "Invalid client")
        start_url = body.get("startUrl")
        if not isinstance(start_url, str) or not start_url.startswith("https://"):
            return oidc_error("invalid_request", "startUrl is required")
        grant = self.book.issue(f"{self.clients[client_id].name} {start_url}")
        self.owners[grant.device_code] = client_id
        base = str(request.base_url).rstrip("/")
        return json_response(
            {
                "deviceCode": grant.device_code,
                "userCode": grant.user_code,
                "verificationUri": f"{base}/login/device",
                "verificationUriComplete": f"{base}/login/device?user_code={grant.user_code}",
                "expiresIn": self.book.lifetime,
                "interval": grant.interval,
            }
        )

    def token(self, body: dict[str, Any]) -> Response:
        """`POST /token` for the device-code grant."""
        client_id = self._client(body)
        if client_id is None:
            return oidc_error("invalid_client", "Invalid client")
        device_code = body.get("deviceCode")
        if not isinstance(device_code, str) or self.owners.get(device_code) != client_id:
            return oidc_error("invalid_grant", "Invalid device code provided")
        verdict, _ = self.book.poll(device_code)
        if verdict is not Verdict.APPROVED:
            return oidc_error(verdict.value, verdict.name.replace("_", " ").capitalize())
        return json_response({**self.issue(), "tokenType": "Bearer"})

    def routes(self, read: Callable[[Request], Any]) -> list[Route]:
        async def register(request: Request) -> Response:
            return await self.register(request, await read(request))

        async def authorize(request: Request) -> Response:
            return await self.authorize(request, await read(request))

        return [
            Route("/client/register", register, methods=["POST"]),
            Route("/device_authorization", authorize, methods=["POST"]),
        ]
