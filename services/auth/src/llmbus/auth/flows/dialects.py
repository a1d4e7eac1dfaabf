"""Which device flow a login request asks for, built from the provider's configuration.

Copilot providers sign in with GitHub (`method: github`), Kiro providers with AWS Builder
ID (`builder-id`) or IAM Identity Center (`identity-center`, with the organisation's start
URL and the region of its OIDC service). Anything else is a `FlowRejected` naming why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from llmbus.auth.flows.aws_oidc import BUILDER_ID_START_URL, DEFAULT_REGION, AwsOidcDeviceFlow
from llmbus.auth.flows.github import COPILOT_CLIENT_ID, GitHubDeviceFlow
from llmbus.auth.flows.types import DeviceDialect
from llmbus.providers import ConfiguredProvider
from llmbus.providers.credentials.copilot import GITHUB_API
from llmbus.providers.http import HttpClient

__all__ = ["DialectFactory", "FlowRejected", "LoginTarget", "dialect_for"]


class FlowRejected(Exception):
    """The login cannot start: no such provider, or the method does not fit it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class LoginTarget:
    """What a flow needs to be driven again by any replica: the request's own fields."""

    __slots__ = ("method", "provider", "region", "start_url")

    def __init__(self, provider: str, method: str, start_url: str = "", region: str = "") -> None:
        self.provider = provider
        self.method = method
        self.start_url = start_url
        self.region = region


DialectFactory = Callable[[LoginTarget], DeviceDialect]


def dialect_for(
    target: LoginTarget,
    providers: Mapping[str, ConfiguredProvider],
    http: HttpClient,
    *,
    copilot_client_id: str = COPILOT_CLIENT_ID,
) -> DeviceDialect:
    provider = providers.get(target.provider)
    if provider is None:
        raise FlowRejected(404, "provider_not_found", f"No provider named `{target.provider}`.")
    if provider.family == "copilot":
        if target.method != "github":
            raise FlowRejected(400, "invalid_login_method", "Copilot providers sign in with GitHub.")
        return GitHubDeviceFlow(
            http,
            api=provider.auth_endpoint or GITHUB_API,
            client_id=copilot_client_id,
            proxy=provider.proxy_url,
        )
    if provider.family == "kiro":
        return _kiro(target, provider, http)
    raise FlowRejected(
        400,
        "login_not_supported",
        f"Provider `{target.provider}` ({provider.family}) takes keys, not a device-flow login.",
    )


def _kiro(target: LoginTarget, provider: ConfiguredProvider, http: HttpClient) -> DeviceDialect:
    # Profiles are listed on the Kiro API of the configured endpoint, else in us-east-1.
    builtin = provider.endpoint.rstrip("/") == provider.spec.endpoint.rstrip("/")
    api = f"https://q.{DEFAULT_REGION}.amazonaws.com" if builtin else provider.endpoint
    if target.method == "builder-id":
        return AwsOidcDeviceFlow(
            http,
            method="builder-id",
            api=api,
            start_url=BUILDER_ID_START_URL,
            region=DEFAULT_REGION,
            oidc=provider.auth_endpoint,
            proxy=provider.proxy_url,
        )
    if target.method != "identity-center":
        raise FlowRejected(
            400, "invalid_login_method", "Kiro providers sign in with `builder-id` or `identity-center`."
        )
    if not target.start_url.startswith("https://"):
        raise FlowRejected(
            400,
            "invalid_start_url",
            "Identity Center needs the organisation's start URL (https://<org>.awsapps.com/start).",
        )
    region = target.region or provider.region or ""
    if not region or not all(part.isalnum() for part in region.split("-")):
        raise FlowRejected(400, "invalid_region", "Identity Center needs the region of its OIDC service.")
    return AwsOidcDeviceFlow(
        http,
        method="identity-center",
        api=api,
        start_url=target.start_url,
        region=region,
        oidc=provider.auth_endpoint,
        proxy=provider.proxy_url,
    )
