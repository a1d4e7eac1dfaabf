"""Device-flow logins through the running gateway: the JSON API, the CLI, and the pages,
against the mock's GitHub and AWS SSO OIDC (which approve on the second poll)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest

from llmbus.testing import Stack
from tests.e2e.conftest import CLIENT_KEY, MANAGEMENT_KEY

pytestmark = pytest.mark.e2e


@pytest.fixture
async def gateway(stack: Stack) -> AsyncIterator[httpx2.AsyncClient]:
    headers = {"Authorization": f"Bearer {MANAGEMENT_KEY}"}
    async with httpx2.AsyncClient(base_url=stack.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
async def reader(stack: Stack) -> AsyncIterator[httpx2.AsyncClient]:
    """The registry's reads, with a client key."""
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with httpx2.AsyncClient(base_url=stack.base_url, headers=headers, timeout=10) as client:
        yield client


async def login(
    gateway: httpx2.AsyncClient, family: str, body: dict[str, str] | None = None
) -> dict[str, Any]:
    """Start a flow and poll it at its interval until it ends; the last status."""
    started = await gateway.post(f"/v0/oauth/{family}/start", json=body or {})
    assert started.status_code == 200, started.text
    flow = started.json()
    assert flow["user_code"]
    assert flow["verification_uri"].startswith("http")
    assert flow["expires_in"] > 0
    for _ in range(30):
        await asyncio.sleep(flow["interval"])
        state = (await gateway.get(f"/v0/oauth/flows/{flow['flow_id']}")).json()
        if state["status"] != "pending":
            return dict(state)
    raise AssertionError("the login never ended")


async def test_copilot_login_through_the_json_api_stores_a_credential(
    gateway: httpx2.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    state = await login(gateway, "copilot")
    assert state["status"] == "success", state
    assert state["provider"] == "copilot"
    assert state["credential"]
    answer = await client.chat.completions.create(
        model="copilot/gpt-4.1", messages=[{"role": "user", "content": "after login"}]
    )
    assert "after login" in (answer.choices[0].message.content or "")


async def test_kiro_builder_id_login_through_the_json_api_stores_a_credential(
    gateway: httpx2.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    state = await login(gateway, "kiro", {"method": "builder-id"})
    assert state["status"] == "success", state
    assert state["provider"] == "kiro"
    answer = await client.chat.completions.create(
        model="kiro/claude-sonnet-4-5", messages=[{"role": "user", "content": "after kiro login"}]
    )
    assert "after kiro login" in (answer.choices[0].message.content or "")


async def test_a_refused_identity_center_login_ends_denied(gateway: httpx2.AsyncClient) -> None:
    body = {"start_url": "https://denied.awsapps.com/start", "region": "eu-west-1"}
    state = await login(gateway, "kiro", body)
    assert state["status"] == "denied"
    assert "credential" not in state


async def test_login_api_needs_the_management_key(stack: Stack) -> None:
    async with httpx2.AsyncClient(base_url=stack.base_url, timeout=10) as anonymous:
        refused = await anonymous.post("/v0/oauth/copilot/start", json={})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "missing_management_key"
        page = await anonymous.get("/v0/oauth/kiro")
        assert page.status_code == 200
        assert "Identity Center" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_unknown_flows_and_wrong_methods_are_openai_errors(gateway: httpx2.AsyncClient) -> None:
    missing = await gateway.get("/v0/oauth/flows/flow_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "flow_not_found"
    wrong = await gateway.post("/v0/oauth/copilot/start", json={"method": "builder-id"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["type"] == "invalid_request_error"


def test_cli_login_prints_the_code_and_exits_zero_on_success(stack: Stack) -> None:
    env = {**os.environ, "LLMBUS_MANAGEMENT_KEY": MANAGEMENT_KEY}
    done = subprocess.run(
        [sys.executable, "-m", "llmbus.cli", "--url", stack.base_url, "login", "copilot"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "enter the code" in done.stdout
    assert "Signed in: credential copilot/" in done.stdout


@pytest.mark.parametrize(
    ("family", "provider", "model", "body"),
    [
        ("copilot", "copilot-login", "copilot-login/login-gpt", {}),
        ("kiro", "kiro-login", "kiro-login/login-claude", {"method": "builder-id"}),
    ],
)
async def test_a_provider_without_credentials_serves_once_someone_logs_in(
    reader: httpx2.AsyncClient,
    gateway: httpx2.AsyncClient,
    client: openai.AsyncOpenAI,
    family: str,
    provider: str,
    model: str,
    body: dict[str, str],
) -> None:
    """The provider has no credential in the config: before the login nothing can serve
    it; after it, the stored credential does (tokens from auth, minted or refreshed there)."""
    listing = (await reader.get(f"/v1/providers/{provider}")).json()
    assert listing["routable"] is False
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "too early"}])

    state = await login(gateway, family, {"provider": provider, **body})
    assert state["status"] == "success", state
    assert state["provider"] == provider

    async def routable() -> bool:
        return bool((await reader.get(f"/v1/providers/{provider}")).json()["routable"])

    for _ in range(50):  # the routers hear of the credential through an event
        if await routable():
            break
        await asyncio.sleep(0.1)
    answer = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"served by {state['credential']}"}]
    )
    assert answer.choices[0].message.content == f"Mock answer to: served by {state['credential']}"
    status = (await reader.get(f"/v1/providers/{provider}/status")).json()
    assert state["credential"] in str(status)
