"""Both device-flow dialects (GitHub's, AWS SSO OIDC's) against the mock upstream
in-process: the real HttpClient over an ASGI transport, no sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import httpx2
import pytest

from llmbus.auth.flows import DeviceGrant, FlowFailed, Login, Pending, Refused
from llmbus.auth.flows.aws_oidc import AwsOidcDeviceFlow
from llmbus.auth.flows.github import GitHubDeviceFlow, github_web_base
from llmbus.auth.flows.types import DeviceDialect
from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.kiro import PROFILE_ARN
from llmbus.mock_upstream.settings import MockSettings
from llmbus.providers.http import HttpClient

MOCK = "http://mock.test"


def http_for(settings: MockSettings) -> HttpClient:
    return HttpClient(transport=httpx2.ASGITransport(app=create_app(settings)))


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = http_for(MockSettings(device_interval=0, device_approve_after=3))
    yield client
    await client.aclose()


def github(http: HttpClient, client_id: str = "Iv1.test") -> GitHubDeviceFlow:
    return GitHubDeviceFlow(http, api=MOCK, client_id=client_id)


def kiro(http: HttpClient, start_url: str = "https://view.awsapps.com/start") -> AwsOidcDeviceFlow:
    method: Literal["builder-id", "identity-center"] = (
        "builder-id" if "view.awsapps" in start_url else "identity-center"
    )
    return AwsOidcDeviceFlow(
        http, method=method, api=MOCK, oidc=MOCK, start_url=start_url, region="eu-west-1"
    )


async def drive(dialect: DeviceDialect, grant: DeviceGrant) -> tuple[list[int], Refused | Login]:
    """Poll until the flow ends; the intervals each poll was made with."""
    intervals: list[int] = []
    interval = grant.interval
    for _ in range(10):
        intervals.append(interval)
        outcome = await dialect.poll(grant, interval)
        if not isinstance(outcome, Pending):
            return intervals, outcome
        interval = outcome.interval
    raise AssertionError("the flow never ended")


async def test_github_login_stays_pending_until_approved_then_names_the_account(http: HttpClient) -> None:
    dialect = github(http)
    grant = await dialect.authorize()
    assert grant.verification_uri == f"{MOCK}/login/device"
    assert len(grant.user_code) == 9
    assert grant.user_code[4] == "-"
    intervals, outcome = await drive(dialect, grant)
    assert len(intervals) == 3  # approved on the third poll
    assert isinstance(outcome, Login)
    assert outcome.kind == "github"
    assert outcome.account.startswith("mock-user-")
    assert outcome.secret.github_token.startswith("gho_")


async def test_github_slow_down_adds_five_seconds_to_every_later_poll(http: HttpClient) -> None:
    dialect = github(http, client_id="Iv1.slow-down")
    grant = await dialect.authorize()
    intervals, outcome = await drive(dialect, grant)
    assert intervals == [grant.interval, grant.interval + 5, grant.interval + 5]
    assert isinstance(outcome, Login)


async def test_github_denied_login_ends_denied(http: HttpClient) -> None:
    dialect = github(http, client_id="Iv1.denied")
    _, outcome = await drive(dialect, await dialect.authorize())
    assert outcome == Refused(status="denied")


async def test_github_expired_device_code_ends_expired() -> None:
    http = http_for(MockSettings(device_interval=0, device_code_seconds=0))
    dialect = github(http)
    _, outcome = await drive(dialect, await dialect.authorize())
    assert outcome == Refused(status="expired")
    await http.aclose()


async def test_github_refusal_of_the_device_code_is_a_flow_failure(http: HttpClient) -> None:
    with pytest.raises(FlowFailed, match="incorrect_client_credentials"):
        await github(http, client_id="").authorize()


async def test_kiro_builder_id_login_stores_the_client_and_the_profile(http: HttpClient) -> None:
    dialect = kiro(http)
    grant = await dialect.authorize()
    assert grant.client_id
    assert grant.client_secret
    assert grant.client_secret_expires_at > 0
    assert grant.verification_uri_complete.endswith(grant.user_code)
    intervals, outcome = await drive(dialect, grant)
    assert len(intervals) == 3
    assert isinstance(outcome, Login)
    assert outcome.kind == "kiro-builder-id"
    assert outcome.account == "https://view.awsapps.com/start"
    secret = outcome.secret
    assert secret.access_token
    assert secret.refresh_token
    assert secret.expires_at > 0
    assert (secret.client_id, secret.client_secret) == (grant.client_id, grant.client_secret)
    assert (secret.region, secret.profile_arn, secret.auth_method) == ("eu-west-1", PROFILE_ARN, "builder-id")


async def test_kiro_identity_center_login_keeps_the_start_url(http: HttpClient) -> None:
    dialect = kiro(http, "https://my-org.awsapps.com/start")
    _, outcome = await drive(dialect, await dialect.authorize())
    assert isinstance(outcome, Login)
    assert (outcome.kind, outcome.account) == ("kiro-idc", "https://my-org.awsapps.com/start")
    assert outcome.secret.auth_method == "IdC"
    assert outcome.secret.profile_arn == PROFILE_ARN


async def test_kiro_slow_down_adds_five_seconds(http: HttpClient) -> None:
    dialect = kiro(http, "https://slow-down.awsapps.com/start")
    grant = await dialect.authorize()
    intervals, outcome = await drive(dialect, grant)
    assert intervals == [grant.interval, grant.interval + 5, grant.interval + 5]
    assert isinstance(outcome, Login)


async def test_kiro_denied_login_ends_denied(http: HttpClient) -> None:
    dialect = kiro(http, "https://denied.awsapps.com/start")
    _, outcome = await drive(dialect, await dialect.authorize())
    assert outcome == Refused(status="denied")


async def test_kiro_expired_device_code_ends_expired() -> None:
    http = http_for(MockSettings(device_interval=0, device_code_seconds=0))
    dialect = kiro(http)
    _, outcome = await drive(dialect, await dialect.authorize())
    assert outcome == Refused(status="expired")
    await http.aclose()


async def test_kiro_unreachable_oidc_is_a_flow_failure_without_secrets(http: HttpClient) -> None:
    dialect = AwsOidcDeviceFlow(http, method="builder-id", api=MOCK, oidc=f"{MOCK}/nowhere")
    with pytest.raises(FlowFailed, match="client registration: HTTP 404"):
        await dialect.authorize()


async def test_polling_faster_than_the_interval_gets_slow_down() -> None:
    http = http_for(MockSettings(device_interval=60, device_approve_after=5))
    dialect = github(http)
    grant = await dialect.authorize()
    assert await dialect.poll(grant, grant.interval) == Pending(interval=60)
    assert await dialect.poll(grant, grant.interval) == Pending(interval=65)
    await http.aclose()


@pytest.mark.parametrize(
    ("api", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://api.octocorp.ghe.com", "https://octocorp.ghe.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("http://127.0.0.1:8319", "http://127.0.0.1:8319"),
    ],
)
def test_github_device_endpoints_live_on_the_web_host_of_the_api(api: str, web: str) -> None:
    assert github_web_base(api) == web
