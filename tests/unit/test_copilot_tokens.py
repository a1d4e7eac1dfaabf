"""CopilotTokens against a scripted GitHub (an httpx2 MockTransport behind the real
HttpClient) and a clock the tests move."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx2
import msgspec
import pytest

from llmbus.config import Config, CredentialEntry, ProviderConfig
from llmbus.providers import ConfiguredProvider, configured_providers
from llmbus.providers.credentials import CopilotTokens
from llmbus.providers.errors import CredentialUnavailable
from llmbus.providers.http import HttpClient

GITHUB_TOKEN = "gho_secretvalue123"
NOW = 1_750_000_000.0


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class GitHub:
    """Answers the token trade; counts the trades and keeps their requests."""

    status: int = 200
    body: dict[str, object] | None = None
    delay: float = 0.0
    requests: list[httpx2.Request] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        n = len(self.requests)
        body = self.body or {
            "token": f"tid=t{n};exp={int(self.clock.now) + 1800}:mac",
            "expires_at": int(self.clock.now) + 1800,
            "refresh_in": 1500,
            "endpoints": {"api": "https://api.individual.githubcopilot.com"},
            "sku": "yearly_subscriber",
        }
        return httpx2.Response(self.status, content=json.dumps(body).encode())


@pytest.fixture
def github() -> GitHub:
    return GitHub()


@pytest.fixture
async def http(github: GitHub) -> AsyncIterator[HttpClient]:
    client = HttpClient(transport=httpx2.MockTransport(github.handle))
    yield client
    await client.aclose()


def _provider(**fields: object) -> ConfiguredProvider:
    entry = msgspec.convert({"github_token": GITHUB_TOKEN, **fields}, ProviderConfig)
    return configured_providers(Config(providers={"copilot": entry}))["copilot"]


def _tokens(http: HttpClient, github: GitHub) -> CopilotTokens:
    return CopilotTokens(http, clock=github.clock)


async def test_first_get_trades_the_github_token_with_the_editor_headers(
    http: HttpClient, github: GitHub
) -> None:
    provider = _provider()
    credential = await _tokens(http, github).get(provider, provider.credentials[0])
    assert credential.token == "tid=t1;exp=1750001800:mac"
    assert credential.endpoint == "https://api.individual.githubcopilot.com"
    assert credential.expires_at == NOW + 1800
    (request,) = github.requests
    assert str(request.url) == "https://api.github.com/copilot_internal/v2/token"
    assert request.method == "GET"
    assert request.headers["authorization"] == f"token {GITHUB_TOKEN}"
    assert request.headers["editor-version"].startswith("vscode/")
    assert request.headers["editor-plugin-version"].startswith("copilot-chat/")
    assert request.headers["user-agent"].startswith("GitHubCopilotChat/")


async def test_auth_endpoint_and_editor_overrides_come_from_the_provider(
    http: HttpClient, github: GitHub
) -> None:
    provider = _provider(
        auth_endpoint="http://github.test/",
        headers={"editor-version": "vscode/9.9.9", "X-Other": "chat only"},
    )
    await _tokens(http, github).get(provider, provider.credentials[0])
    (request,) = github.requests
    assert str(request.url) == "http://github.test/copilot_internal/v2/token"
    assert request.headers["editor-version"] == "vscode/9.9.9"
    assert "x-other" not in request.headers


async def test_a_token_without_endpoints_uses_the_providers_endpoint(
    http: HttpClient, github: GitHub
) -> None:
    github.body = {"token": "tid=x", "expires_at": int(NOW) + 1800, "refresh_in": 1500}
    provider = _provider()
    credential = await _tokens(http, github).get(provider, provider.credentials[0])
    assert credential.endpoint == "https://api.githubcopilot.com"


async def test_the_token_is_reused_until_githubs_refresh_in_then_traded_again(
    http: HttpClient, github: GitHub
) -> None:
    provider, tokens = _provider(), _tokens(http, github)
    entry = provider.credentials[0]
    first = await tokens.get(provider, entry)
    github.clock.now = NOW + 1499
    assert await tokens.get(provider, entry) == first
    assert len(github.requests) == 1
    github.clock.now = NOW + 1500
    second = await tokens.get(provider, entry)
    assert second.token != first.token
    assert len(github.requests) == 2


async def test_without_refresh_in_the_token_is_traded_a_margin_before_expiry(
    http: HttpClient, github: GitHub
) -> None:
    github.body = {"token": "tid=x", "expires_at": int(NOW) + 1800}
    provider, tokens = _provider(), CopilotTokens(http, clock=github.clock, margin=60)
    entry = provider.credentials[0]
    await tokens.get(provider, entry)
    github.clock.now = NOW + 1739
    await tokens.get(provider, entry)
    assert len(github.requests) == 1
    github.clock.now = NOW + 1740
    await tokens.get(provider, entry)
    assert len(github.requests) == 2


async def test_concurrent_gets_share_one_trade(http: HttpClient, github: GitHub) -> None:
    github.delay = 0.05
    provider, tokens = _provider(), _tokens(http, github)
    entry = provider.credentials[0]
    credentials = await asyncio.gather(*(tokens.get(provider, entry) for _ in range(10)))
    assert len(github.requests) == 1
    assert len({c.token for c in credentials}) == 1


async def test_a_caller_that_gives_up_does_not_cancel_the_trade_of_the_others(
    http: HttpClient, github: GitHub
) -> None:
    github.delay = 0.05
    provider, tokens = _provider(), _tokens(http, github)
    entry = provider.credentials[0]
    impatient = asyncio.create_task(tokens.get(provider, entry))
    patient = asyncio.create_task(tokens.get(provider, entry))
    await asyncio.sleep(0.01)
    impatient.cancel()
    credential = await patient
    assert credential.token.startswith("tid=t1")
    assert len(github.requests) == 1


async def test_credentials_of_different_names_are_traded_separately(http: HttpClient, github: GitHub) -> None:
    provider = _provider(github_token=None, api_keys=[])
    provider = msgspec.structs.replace(
        provider,
        credentials=(
            CredentialEntry(name="alice", github_token="gho_alice"),
            CredentialEntry(name="bob", github_token="gho_bob"),
        ),
    )
    tokens = _tokens(http, github)
    alice = await tokens.get(provider, provider.credentials[0])
    bob = await tokens.get(provider, provider.credentials[1])
    assert alice.token != bob.token
    assert [r.headers["authorization"] for r in github.requests] == ["token gho_alice", "token gho_bob"]


async def test_invalidate_forgets_the_token_so_the_next_get_trades_again(
    http: HttpClient, github: GitHub
) -> None:
    provider, tokens = _provider(), _tokens(http, github)
    entry = provider.credentials[0]
    first = await tokens.get(provider, entry)
    tokens.invalidate(provider, entry)
    second = await tokens.get(provider, entry)
    assert second.token != first.token
    assert len(github.requests) == 2


async def test_a_changed_github_token_under_the_same_name_is_traded_again(
    http: HttpClient, github: GitHub
) -> None:
    provider, tokens = _provider(), _tokens(http, github)
    entry = provider.credentials[0]
    await tokens.get(provider, entry)
    await tokens.get(provider, msgspec.structs.replace(entry, github_token="gho_rotated"))
    assert len(github.requests) == 2


async def test_bad_credentials_raise_credential_unavailable_with_the_status_and_no_secret(
    http: HttpClient, github: GitHub
) -> None:
    github.status = 401
    github.body = {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
    provider = _provider()
    with pytest.raises(CredentialUnavailable) as raised:
        await _tokens(http, github).get(provider, provider.credentials[0])
    assert raised.value.upstream_status == 401
    assert raised.value.retryable
    assert "Bad credentials" in raised.value.message
    assert GITHUB_TOKEN not in raised.value.message


async def test_an_account_without_copilot_reports_githubs_error_details(
    http: HttpClient, github: GitHub
) -> None:
    github.status = 403
    github.body = {
        "error_details": {"message": "Contact Support. You are currently logged in as octocat."},
        "message": "Resource not accessible by integration.",
    }
    provider = _provider()
    with pytest.raises(CredentialUnavailable) as raised:
        await _tokens(http, github).get(provider, provider.credentials[0])
    assert raised.value.upstream_status == 403
    assert "Contact Support" in raised.value.message


async def test_a_failed_trade_is_not_cached(http: HttpClient, github: GitHub) -> None:
    github.status = 500
    github.body = {"message": "Server Error"}
    provider, tokens = _provider(), _tokens(http, github)
    entry = provider.credentials[0]
    with pytest.raises(CredentialUnavailable):
        await tokens.get(provider, entry)
    github.status, github.body = 200, None
    assert (await tokens.get(provider, entry)).token.startswith("tid=t2")


@pytest.mark.parametrize(
    "failure",
    [
        lambda: httpx2.Response(200, content=b"<html>"),
        lambda: httpx2.Response(200, content=b'{"expires_at": 1}'),
    ],
)
async def test_an_answer_without_a_token_is_credential_unavailable(
    failure: Callable[[], httpx2.Response],
) -> None:
    client = HttpClient(transport=httpx2.MockTransport(lambda _: failure()))
    provider = _provider()
    try:
        with pytest.raises(CredentialUnavailable, match="carries no Copilot token"):
            await CopilotTokens(client).get(provider, provider.credentials[0])
    finally:
        await client.aclose()


async def test_an_unreachable_github_is_credential_unavailable_without_status() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    client = HttpClient(transport=httpx2.MockTransport(refuse))
    provider = _provider()
    try:
        with pytest.raises(CredentialUnavailable) as raised:
            await CopilotTokens(client).get(provider, provider.credentials[0])
    finally:
        await client.aclose()
    assert raised.value.upstream_status == 0
    assert GITHUB_TOKEN not in raised.value.message


async def test_a_credential_without_a_github_token_is_refused_without_a_call(
    http: HttpClient, github: GitHub
) -> None:
    provider = _provider()
    with pytest.raises(CredentialUnavailable, match="no GitHub token"):
        await _tokens(http, github).get(provider, CredentialEntry(name="key-1", api_key="sk-x"))
    assert github.requests == []
