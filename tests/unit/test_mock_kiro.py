"""The mock's Kiro family: event-stream answers, the service's validation, its token
services. Driven in-process over ASGI; answers decoded with the gateway's decoder."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings
from llmbus.providers.eventstream import EventStreamDecoder, Frame

MODEL = "claude-sonnet-4.5"
TOOL = {
    "toolSpecification": {
        "name": "get_weather",
        "description": "Weather of a city.",
        "inputSchema": {
            "json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        },
    }
}


def user(content: str, **extra: Any) -> dict[str, Any]:
    return {"userInputMessage": {"content": content, "modelId": MODEL, "origin": "AI_EDITOR", **extra}}


def assistant(content: str, **extra: Any) -> dict[str, Any]:
    return {"assistantResponseMessage": {"content": content, **extra}}


def conversation(current: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "conversationId": "c0ffee00-0000-4000-8000-000000000001",
        "agentContinuationId": "c0ffee00-0000-4000-8000-000000000002",
        "chatTriggerType": "MANUAL",
        "agentTaskType": "vibe",
        "currentMessage": current,
    }
    if history is not None:
        state["history"] = history
    return {"conversationState": state}


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(MockSettings(chunks=4, kiro_token_seconds=3600))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://mock") as client:
        yield client


async def generate(
    http: httpx2.AsyncClient, body: dict[str, Any], token: str = "aoa-unit"
) -> httpx2.Response:
    return await http.post(
        "/generateAssistantResponse", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def frames(response: httpx2.Response) -> list[Frame]:
    decoder = EventStreamDecoder()
    out = decoder.feed(response.content)
    decoder.close()
    return out


def payloads(response: httpx2.Response, event_type: str) -> list[dict[str, Any]]:
    return [json.loads(f.payload) for f in frames(response) if f.header(":event-type") == event_type]


async def test_text_streams_as_assistant_response_events_then_metering_and_context_usage(
    http: httpx2.AsyncClient,
) -> None:
    response = await generate(http, conversation(user("hello there")))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    events = frames(response)
    assert all(f.header(":message-type") == "event" for f in events)
    texts = payloads(response, "assistantResponseEvent")
    assert len(texts) == 4
    assert "".join(t["content"] for t in texts) == "Mock answer to: hello there"
    assert [f.header(":event-type") for f in events[-2:]] == ["meteringEvent", "contextUsageEvent"]
    assert payloads(response, "contextUsageEvent")[0]["contextUsagePercentage"] > 0


async def test_a_first_turn_is_echoed_whole_with_the_system_prompt_leading_it(
    http: httpx2.AsyncClient,
) -> None:
    texts = payloads(
        await generate(http, conversation(user("Be brief.\n\nHello there"))), "assistantResponseEvent"
    )
    assert "".join(t["content"] for t in texts) == "Mock answer to: Be brief.\n\nHello there"


async def test_tools_stream_as_tool_use_fragments_closed_by_stop(http: httpx2.AsyncClient) -> None:
    body = conversation(user("Weather?", userInputMessageContext={"tools": [TOOL]}))
    uses = payloads(await generate(http, body), "toolUseEvent")
    assert {u["name"] for u in uses} == {"get_weather"}
    assert len({u["toolUseId"] for u in uses}) == 1
    assert uses[-1]["stop"] is True
    assert json.loads("".join(u.get("input", "") for u in uses)) == {"city": "mock"}


async def test_a_tool_result_turn_is_answered_with_the_result(http: httpx2.AsyncClient) -> None:
    history = [
        user("Weather?"),
        assistant("OK", toolUses=[{"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}]),
    ]
    result = {"toolUseId": "t1", "status": "success", "content": [{"text": "sunny"}]}
    current = user("Continue", userInputMessageContext={"tools": [TOOL], "toolResults": [result]})
    texts = payloads(await generate(http, conversation(current, history)), "assistantResponseEvent")
    assert "".join(t["content"] for t in texts) == "Tool said: sunny"


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("empty content", conversation(user(""))),
        ("history starting with the assistant", conversation(user("hi"), [assistant("a"), user("b")])),
        ("history ending with the user", conversation(user("hi"), [user("a")])),
        ("two user turns in a row", conversation(user("hi"), [user("a"), user("b")])),
        (
            "tools in history",
            conversation(user("hi"), [user("a", userInputMessageContext={"tools": [TOOL]}), assistant("b")]),
        ),
        (
            "a tool used in history but not defined",
            conversation(
                user(
                    "Continue",
                    userInputMessageContext={
                        "toolResults": [{"toolUseId": "t1", "status": "success", "content": [{"text": "x"}]}]
                    },
                ),
                [
                    user("a"),
                    assistant("b", toolUses=[{"toolUseId": "t1", "name": "get_weather", "input": {}}]),
                ],
            ),
        ),
        (
            "a tool use without its result",
            conversation(
                user("next", userInputMessageContext={"tools": [TOOL]}),
                [
                    user("a"),
                    assistant("b", toolUses=[{"toolUseId": "t1", "name": "get_weather", "input": {}}]),
                ],
            ),
        ),
        (
            "a duplicate tool result",
            conversation(
                user(
                    "Continue",
                    userInputMessageContext={
                        "tools": [TOOL],
                        "toolResults": [
                            {"toolUseId": "t1", "status": "success", "content": [{"text": "x"}]},
                            {"toolUseId": "t1", "status": "success", "content": [{"text": "x"}]},
                        ],
                    },
                ),
                [
                    user("a"),
                    assistant("b", toolUses=[{"toolUseId": "t1", "name": "get_weather", "input": {}}]),
                ],
            ),
        ),
        (
            "a schema without required",
            conversation(
                user(
                    "hi",
                    userInputMessageContext={
                        "tools": [
                            {
                                "toolSpecification": {
                                    "name": "t",
                                    "description": "d",
                                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                                }
                            }
                        ]
                    },
                )
            ),
        ),
        (
            "a tool name over 64 characters",
            conversation(
                user(
                    "hi",
                    userInputMessageContext={
                        "tools": [{"toolSpecification": {**TOOL["toolSpecification"], "name": "n" * 65}}]
                    },
                )
            ),
        ),
        ("no conversation state", {"profileArn": "arn"}),
    ],
)
async def test_requests_breaking_kiros_rules_are_improperly_formed(
    http: httpx2.AsyncClient, case: str, body: dict[str, Any]
) -> None:
    response = await generate(http, body)
    assert response.status_code == 400, case
    assert response.json() == {
        "__type": "com.amazon.aws.codewhisperer#ValidationException",
        "message": "Improperly formed request.",
    }


async def test_an_expired_token_is_refused_as_kiro_refuses_it(http: httpx2.AsyncClient) -> None:
    response = await generate(http, conversation(user("hi")), token="aoa-expired-token")
    assert response.status_code == 403
    assert response.json()["message"] == "The bearer token included in the request is invalid."


async def test_a_request_without_a_token_is_refused(http: httpx2.AsyncClient) -> None:
    response = await http.post("/generateAssistantResponse", json=conversation(user("hi")))
    assert response.status_code == 403


async def test_social_refresh_issues_a_token_the_chat_api_accepts(http: httpx2.AsyncClient) -> None:
    refreshed = await http.post("/refreshToken", json={"refreshToken": "aor-unit"})
    assert refreshed.status_code == 200
    body = refreshed.json()
    assert set(body) == {"accessToken", "refreshToken", "expiresIn", "profileArn"}
    assert body["expiresIn"] == 3600
    assert (await generate(http, conversation(user("hi")), token=body["accessToken"])).status_code == 200


async def test_an_invalid_refresh_token_is_refused(http: httpx2.AsyncClient) -> None:
    response = await http.post("/refreshToken", json={"refreshToken": "aor-invalid"})
    assert response.status_code == 400
    assert response.json() == {"message": "Invalid refresh token provided"}


async def test_oidc_refresh_grant_issues_a_token_and_other_grants_are_unsupported(
    http: httpx2.AsyncClient,
) -> None:
    grant = {
        "clientId": "cid",
        "clientSecret": "cs",
        "grantType": "refresh_token",
        "refreshToken": "aor-unit",
    }
    response = await http.post("/token", json=grant)
    assert response.status_code == 200
    assert response.json()["tokenType"] == "Bearer"
    assert (
        await generate(http, conversation(user("hi")), token=response.json()["accessToken"])
    ).status_code == 200
    other = await http.post("/token", json={**grant, "grantType": "authorization_code"})
    assert other.status_code == 400
    assert other.json()["error"] == "unsupported_grant_type"
    device = await http.post(
        "/token", json={**grant, "grantType": "urn:ietf:params:oauth:grant-type:device_code"}
    )
    assert device.status_code == 401  # the device grant needs a client the mock registered
    assert device.json()["error"] == "invalid_client"
    no_client = await http.post("/token", json={**grant, "clientSecret": ""})
    assert no_client.status_code == 401


async def test_tokens_past_their_lifetime_are_refused() -> None:
    app = create_app(MockSettings(kiro_token_seconds=0))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://mock") as http:
        token = (await http.post("/refreshToken", json={"refreshToken": "aor-unit"})).json()["accessToken"]
        assert (await generate(http, conversation(user("hi")), token=token)).status_code == 403


async def test_rate_limit_scenario_is_a_throttling_exception(http: httpx2.AsyncClient) -> None:
    response = await generate(http, conversation(user("hi")), token="aoa-error-429-unit")
    assert response.status_code == 429
    assert response.json()["__type"] == "com.amazon.aws.codewhisperer#ThrottlingException"


async def test_midstream_error_is_an_in_band_exception_frame(http: httpx2.AsyncClient) -> None:
    body = conversation(user("hi", modelId="midstream-error"))
    last = frames(await generate(http, body))[-1]
    assert last.header(":message-type") == "exception"
    assert last.header(":exception-type") == "InternalServerException"


async def test_length_scenario_ends_with_a_max_tokens_stop_event(http: httpx2.AsyncClient) -> None:
    body = conversation(user("a long question", modelId="length"))
    assert payloads(await generate(http, body), "messageStopEvent") == [{"stopReason": "max_tokens"}]


async def test_available_models_answer_with_a_token(http: httpx2.AsyncClient) -> None:
    response = await http.get(
        "/ListAvailableModels?origin=AI_EDITOR&maxResults=50", headers={"Authorization": "Bearer aoa-unit"}
    )
    assert response.status_code == 200
    assert "claude-sonnet-4.5" in {m["modelId"] for m in response.json()["models"]}
