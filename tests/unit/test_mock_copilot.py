"""The mock's Copilot family: GitHub's token trade, then Copilot's chat API with the token
it issued. Driven in-process over ASGI; the chat answers are read with the openai SDK,
which parses every chunk into its typed models."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest

from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings

GITHUB = {"Authorization": "token gho_unit", "Accept": "application/json"}
EDITOR = {"Editor-Version": "vscode/1.107.0", "Copilot-Integration-Id": "vscode-chat"}
HELLO = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hello there"}]}


def _client(settings: MockSettings) -> httpx2.AsyncClient:
    app = create_app(settings)
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://mock")


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with _client(MockSettings(chunks=3)) as client:
        yield client


async def _copilot_token(http: httpx2.AsyncClient) -> str:
    response = await http.get("/copilot_internal/v2/token", headers=GITHUB)
    assert response.status_code == 200
    token: str = response.json()["token"]
    return token


async def test_token_trade_answers_githubs_shape_with_this_mocks_api(http: httpx2.AsyncClient) -> None:
    response = await http.get("/copilot_internal/v2/token", headers=GITHUB)
    assert response.status_code == 200
    answer = response.json()
    assert answer["endpoints"]["api"] == "http://mock/copilot"
    assert abs(answer["expires_at"] - 1800 - time.time()) < 5
    assert answer["refresh_in"] == 1500
    assert answer["chat_enabled"] is True
    claims = dict(part.split("=", 1) for part in answer["token"].split(":", 1)[0].split(";"))
    assert claims["exp"] == str(answer["expires_at"])
    assert claims["tid"] == answer["tracking_id"]
    assert claims["chat"] == "1"


async def test_token_trade_refuses_a_missing_or_bad_github_token(http: httpx2.AsyncClient) -> None:
    missing = await http.get("/copilot_internal/v2/token")
    bad = await http.get("/copilot_internal/v2/token", headers={"Authorization": "token gho_error-401"})
    not_github = await http.get(
        "/copilot_internal/v2/token", headers={"Authorization": "token sk-not-github"}
    )
    assert missing.status_code == bad.status_code == not_github.status_code == 401
    assert bad.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }


async def test_token_trade_refuses_an_account_without_copilot_with_error_details(
    http: httpx2.AsyncClient,
) -> None:
    response = await http.get("/copilot_internal/v2/token", headers={"Authorization": "token gho_error-403"})
    assert response.status_code == 403
    assert response.json()["error_details"]["notification_id"] == "feature_flag_blocked"


async def test_chat_with_an_issued_token_streams_openai_chunks(http: httpx2.AsyncClient) -> None:
    token = await _copilot_token(http)
    # Not closed here: the SDK would close the fixture's client with it.
    sdk = openai.AsyncOpenAI(
        base_url="http://mock/copilot", api_key=token, http_client=http, max_retries=0, default_headers=EDITOR
    )
    stream = await sdk.chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock answer to: hello there"
    assert chunks[-1].usage is not None
    recorded = (await http.get("/__mock__/requests")).json()
    assert [r["family"] for r in recorded] == ["copilot", "copilot"]
    assert all("authorization" not in r["headers"] for r in recorded)


async def test_chat_refuses_a_token_the_mock_did_not_issue(http: httpx2.AsyncClient) -> None:
    response = await http.post(
        "/copilot/chat/completions", json=HELLO, headers={**EDITOR, "Authorization": "Bearer tid=forged"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/plain")
    assert "AuthenticateToken authentication failed" in response.text


async def test_chat_refuses_an_expired_token_as_copilot_does() -> None:
    async with _client(MockSettings(copilot_token_seconds=1)) as http:
        token = await _copilot_token(http)
        await asyncio.sleep(1.1)
        response = await http.post(
            "/copilot/chat/completions", json=HELLO, headers={**EDITOR, "Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401
    assert response.text.strip() == "unauthorized: token expired"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("Editor-Version", "bad request: missing Editor-Version header for IDE auth"),
        ("Copilot-Integration-Id", "bad request: missing required Copilot-Integration-Id header"),
    ],
)
async def test_chat_requires_the_editor_headers(http: httpx2.AsyncClient, missing: str, message: str) -> None:
    token = await _copilot_token(http)
    headers = {k: v for k, v in EDITOR.items() if k != missing}
    response = await http.post(
        "/copilot/chat/completions", json=HELLO, headers={**headers, "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    assert response.text.strip() == message


async def test_rate_limit_scenario_answers_copilots_error_code(http: httpx2.AsyncClient) -> None:
    token = await _copilot_token(http)
    response = await http.post(
        "/copilot/chat/completions",
        json={**HELLO, "model": "gpt-4.1-error-429"},
        headers={**EDITOR, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "user_model_rate_limited"


async def test_models_lists_capabilities_and_policy_for_a_valid_token(http: httpx2.AsyncClient) -> None:
    token = await _copilot_token(http)
    refused = await http.get("/copilot/models", headers={"Authorization": "Bearer tid=forged"})
    response = await http.get("/copilot/models", headers={**EDITOR, "Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["data"]}
    assert {"gpt-4.1", "claude-sonnet-4"} <= set(models)
    gpt = models["gpt-4.1"]
    assert gpt["policy"]["state"] == "enabled"
    assert gpt["capabilities"]["limits"]["max_context_window_tokens"] == 128_000
    assert gpt["capabilities"]["supports"]["tool_calls"] is True


async def test_user_reports_plan_and_quota_snapshots(http: httpx2.AsyncClient) -> None:
    refused = await http.get("/copilot_internal/user")
    response = await http.get("/copilot_internal/user", headers=GITHUB)
    assert refused.status_code == 401
    answer = response.json()
    assert answer["copilot_plan"] == "individual"
    premium = answer["quota_snapshots"]["premium_interactions"]
    assert (premium["entitlement"], premium["remaining"], premium["percent_remaining"]) == (300, 240, 80.0)
    assert answer["quota_snapshots"]["chat"]["unlimited"] is True
    assert answer["quota_reset_date"].endswith("-01")
    assert answer["quota_reset_date"] > time.strftime("%Y-%m-%d", time.gmtime())
