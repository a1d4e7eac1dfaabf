"""GitHub's OAuth device flow, as Copilot clients sign in (WIRE.md "GitHub Copilot" 1 to 3).

1. `POST {web}/login/device/code` (`client_id`, `scope=read:user`) → the device code, the
   user code, the link, `expires_in`, `interval`.
2. `POST {web}/login/oauth/access_token` until the user decides. GitHub answers HTTP 200
   for every outcome: `error` is `authorization_pending`, `slow_down` (with the new
   `interval`; RFC 8628 says +5 s when it is missing), `expired_token`, `access_denied`,
   or the body carries `access_token`. There is no refresh token: it is long-lived.
3. `GET {api}/user` with `Authorization: token <t>` → the account's `login`.

The GitHub token is what auth keeps (kind `github`, account = login); Copilot tokens are
traded from it when a worker needs one.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

import msgspec

from llmbus.auth.flows.types import DeviceGrant, FlowFailed, Login, Pending, Refused
from llmbus.auth.flows.wire import read, reason
from llmbus.auth.stored_secret import StoredSecret
from llmbus.providers.credentials.copilot import GITHUB_API, USER_AGENT
from llmbus.providers.errors import UpstreamError
from llmbus.providers.http import HttpClient

__all__ = ["COPILOT_CLIENT_ID", "DEVICE_GRANT_TYPE", "GitHubDeviceFlow", "github_web_base"]

COPILOT_CLIENT_ID = "Iv1.b507a08c87ecfe98"
"""The OAuth app of VS Code's Copilot extension, which Copilot's token service trusts."""
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
SCOPE = "read:user"


class _DeviceCode(msgspec.Struct):
    device_code: str
    user_code: str
    verification_uri: str
    expires_in: int
    interval: int = 5


class _TokenAnswer(msgspec.Struct):
    access_token: str = ""
    error: str = ""
    interval: int = 0


class _User(msgspec.Struct):
    login: str


def github_web_base(api: str) -> str:
    """The web host that goes with a GitHub API base, where the device flow lives:
    `api.github.com` → `github.com`, `api.<tenant>.ghe.com` → `<tenant>.ghe.com`,
    `<host>/api/v3` (Enterprise Server) → `<host>`; any other base is taken to serve both
    (a proxy, or the mock upstream)."""
    base = api.rstrip("/")
    if base.endswith("/api/v3"):
        return base.removesuffix("/api/v3")
    parts = urlsplit(base)
    if parts.hostname and parts.hostname.startswith("api.") and parts.hostname.count(".") >= 2:
        return f"{parts.scheme}://{parts.netloc.removeprefix('api.')}{parts.path}"
    return base


class GitHubDeviceFlow:
    def __init__(
        self,
        http: HttpClient,
        *,
        api: str = GITHUB_API,
        client_id: str = COPILOT_CLIENT_ID,
        proxy: str | None = None,
    ) -> None:
        self.http = http
        self.api = api.rstrip("/")
        self.web = github_web_base(self.api)
        self.client_id = client_id
        self.proxy = proxy

    async def _call(
        self, step: str, method: str, url: str, headers: Mapping[str, str], form: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        content = urlencode(form).encode() if form is not None else b""
        if form is not None:
            headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        try:
            status, _, body = await self.http.fetch(
                method, url, headers={"User-Agent": USER_AGENT, **headers}, content=content, proxy=self.proxy
            )
        except UpstreamError as exc:
            raise FlowFailed(f"GitHub {step}: {exc.message}") from None
        return status, body

    async def authorize(self) -> DeviceGrant:
        status, body = await self._call(
            "device code",
            "POST",
            f"{self.web}/login/device/code",
            {"Accept": "application/json"},
            {"client_id": self.client_id, "scope": SCOPE},
        )
        answer = read(body, _DeviceCode)
        if status != 200 or answer is None:
            raise FlowFailed(f"GitHub refused the device code request: {reason(status, body)}")
        return DeviceGrant(
            device_code=answer.device_code,
            user_code=answer.user_code,
            verification_uri=answer.verification_uri,
            expires_in=answer.expires_in,
            interval=max(1, answer.interval),
        )

    async def poll(self, grant: DeviceGrant, interval: int) -> Pending | Refused | Login:
        status, body = await self._call(
            "token poll",
            "POST",
            f"{self.web}/login/oauth/access_token",
            {"Accept": "application/json"},
            {"client_id": self.client_id, "device_code": grant.device_code, "grant_type": DEVICE_GRANT_TYPE},
        )
        answer = read(body, _TokenAnswer)
        if status != 200 or answer is None:
            raise FlowFailed(f"GitHub refused the token request: {reason(status, body)}")
        match answer.error:
            case "" if answer.access_token:
                return await self._login(answer.access_token)
            case "authorization_pending":
                return Pending(interval=interval)
            case "slow_down":
                return Pending(interval=max(answer.interval, interval + 5))
            case "expired_token":
                return Refused(status="expired")
            case "access_denied":
                return Refused(status="denied")
            case _:
                raise FlowFailed(f"GitHub refused the token request: {answer.error or 'no token'}")

    async def _login(self, token: str) -> Login:
        status, body = await self._call(
            "user",
            "GET",
            f"{self.api}/user",
            {"Authorization": f"token {token}", "Accept": "application/json"},
        )
        user = read(body, _User)
        if status != 200 or user is None:
            raise FlowFailed(f"GitHub refused to name the account: {reason(status, body)}")
        return Login(kind="github", account=user.login, secret=StoredSecret(github_token=token))
