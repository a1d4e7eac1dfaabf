"""AWS SSO OIDC's device authorisation, as Kiro signs in with AWS Builder ID or IAM
Identity Center (WIRE.md "Kiro", login). JSON bodies, camelCase fields.

1. `POST {oidc}/client/register` (`clientName`, `clientType: public`, `scopes`,
   `grantTypes`) → `clientId`, `clientSecret`, `clientSecretExpiresAt`: a public client of
   our own, kept with the login because refreshing needs it.
2. `POST {oidc}/device_authorization` (`clientId`, `clientSecret`, `startUrl`) → the device
   code, the user code, the links, `expiresIn`, `interval`. Builder ID's start URL is
   `https://view.awsapps.com/start`; Identity Center's is the organisation's, in its region.
3. `POST {oidc}/token` (`grantType: urn:ietf:params:oauth:grant-type:device_code`) until the
   user decides: pending is **HTTP 400** with `error: authorization_pending` (or
   `slow_down`), then `expired_token` or `access_denied`; success is `accessToken`,
   `refreshToken`, `expiresIn`.
4. The Kiro API wants a profile ARN with every Identity Center request (and newer clients
   send it for Builder ID too); a device login never receives one, so clients ask
   `POST {api}/ListAvailableProfiles` with the new token and take the first profile's
   `arn`. Identity Center without a profile fails the login; Builder ID works without.

`{oidc}` is `https://oidc.<region>.amazonaws.com`, or the provider's `auth_endpoint`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import msgspec

from llmbus.auth.flows.types import DeviceGrant, FlowFailed, Login, Pending, Refused
from llmbus.auth.flows.wire import read, reason
from llmbus.auth.stored_secret import StoredSecret
from llmbus.providers.errors import UpstreamError
from llmbus.providers.http import HttpClient

__all__ = ["BUILDER_ID_START_URL", "DEFAULT_REGION", "DEVICE_GRANT_TYPE", "SCOPES", "AwsOidcDeviceFlow"]

log = logging.getLogger(__name__)

BUILDER_ID_START_URL = "https://view.awsapps.com/start"
DEFAULT_REGION = "us-east-1"
"""Builder ID's OIDC region, and where Kiro profiles are listed."""
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
SCOPES = ("codewhisperer:completions", "codewhisperer:analysis", "codewhisperer:conversations")
CLIENT_NAME = "llmbus"

_encode = msgspec.json.Encoder().encode


class _Client(msgspec.Struct, rename="camel"):
    client_id: str
    client_secret: str
    client_secret_expires_at: float = 0.0


class _Device(msgspec.Struct, rename="camel"):
    device_code: str
    user_code: str
    verification_uri: str
    expires_in: int
    verification_uri_complete: str = ""
    interval: int = 5


class _Tokens(msgspec.Struct, rename="camel"):
    access_token: str
    expires_in: int
    refresh_token: str = ""


class _Error(msgspec.Struct):
    error: str = ""


class _Profile(msgspec.Struct):
    arn: str


class _Profiles(msgspec.Struct):
    profiles: list[_Profile] = []


class AwsOidcDeviceFlow:
    def __init__(
        self,
        http: HttpClient,
        *,
        method: Literal["builder-id", "identity-center"],
        api: str,
        start_url: str = BUILDER_ID_START_URL,
        region: str = DEFAULT_REGION,
        oidc: str | None = None,
        proxy: str | None = None,
    ) -> None:
        self.http = http
        self.method = method
        self.start_url = start_url
        self.region = region
        self.oidc = (oidc or f"https://oidc.{region}.amazonaws.com").rstrip("/")
        self.api = api.rstrip("/")
        self.proxy = proxy

    async def _post(self, step: str, url: str, body: dict[str, Any], token: str = "") -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            status, _, answer = await self.http.fetch(
                "POST", url, headers=headers, content=_encode(body), proxy=self.proxy
            )
        except UpstreamError as exc:
            raise FlowFailed(f"AWS SSO OIDC {step}: {exc.message}") from None
        return status, answer

    async def authorize(self) -> DeviceGrant:
        status, body = await self._post(
            "client registration",
            f"{self.oidc}/client/register",
            {
                "clientName": CLIENT_NAME,
                "clientType": "public",
                "scopes": list(SCOPES),
                "grantTypes": [DEVICE_GRANT_TYPE, "refresh_token"],
            },
        )
        client = read(body, _Client)
        if status != 200 or client is None:
            raise FlowFailed(f"AWS SSO OIDC refused the client registration: {reason(status, body)}")
        status, body = await self._post(
            "device authorisation",
            f"{self.oidc}/device_authorization",
            {"clientId": client.client_id, "clientSecret": client.client_secret, "startUrl": self.start_url},
        )
        device = read(body, _Device)
        if status != 200 or device is None:
            raise FlowFailed(f"AWS SSO OIDC refused the device authorisation: {reason(status, body)}")
        return DeviceGrant(
            device_code=device.device_code,
            user_code=device.user_code,
            verification_uri=device.verification_uri,
            verification_uri_complete=device.verification_uri_complete,
            expires_in=device.expires_in,
            interval=max(1, device.interval),
            client_id=client.client_id,
            client_secret=client.client_secret,
            client_secret_expires_at=client.client_secret_expires_at,
            region=self.region,
            start_url=self.start_url,
        )

    async def poll(self, grant: DeviceGrant, interval: int) -> Pending | Refused | Login:
        status, body = await self._post(
            "token poll",
            f"{self.oidc}/token",
            {
                "clientId": grant.client_id,
                "clientSecret": grant.client_secret,
                "deviceCode": grant.device_code,
                "grantType": DEVICE_GRANT_TYPE,
            },
        )
        if status == 200:
            tokens = read(body, _Tokens)
            if tokens is None:
                raise FlowFailed("AWS SSO OIDC answered the token poll without a token")
            return await self._login(grant, tokens)
        error = read(body, _Error)
        match error.error if error is not None else "":
            case "authorization_pending":
                return Pending(interval=interval)
            case "slow_down":
                return Pending(interval=interval + 5)
            case "expired_token":
                return Refused(status="expired")
            case "access_denied":
                return Refused(status="denied")
            case _:
                raise FlowFailed(f"AWS SSO OIDC refused the token request: {reason(status, body)}")

    async def _login(self, grant: DeviceGrant, tokens: _Tokens) -> Login:
        identity_center = self.method == "identity-center"
        profile_arn = await self._profile(tokens.access_token, required=identity_center)
        secret = StoredSecret(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=time.time() + tokens.expires_in,
            client_id=grant.client_id,
            client_secret=grant.client_secret,
            client_secret_expires_at=grant.client_secret_expires_at,
            region=grant.region,
            start_url=grant.start_url,
            profile_arn=profile_arn,
            auth_method="IdC" if identity_center else "builder-id",
        )
        kind: Literal["kiro-idc", "kiro-builder-id"] = "kiro-idc" if identity_center else "kiro-builder-id"
        return Login(kind=kind, account=grant.start_url, secret=secret)

    async def _profile(self, token: str, *, required: bool) -> str:
        """The first Kiro profile's ARN; '' when Builder ID has none or cannot list them."""
        try:
            status, body = await self._post("profile lookup", f"{self.api}/ListAvailableProfiles", {}, token)
        except FlowFailed:
            if required:
                raise
            status, body = 0, b""
        profiles = read(body, _Profiles) if status == 200 else None
        if profiles is not None and profiles.profiles:
            return profiles.profiles[0].arn
        if required:
            raise FlowFailed(
                "the Identity Center login worked but Kiro lists no profile for it "
                f"({reason(status, body)}): is Kiro (Amazon Q Developer) enabled for this organisation?"
            )
        log.info("Builder ID login without a Kiro profile (%s): requests go without profileArn", status)
        return ""
