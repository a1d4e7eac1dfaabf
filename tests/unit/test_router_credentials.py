"""Credentials auth keeps, as the router merges them: a login makes a provider without
configured credentials routable, an unhealthy credential is skipped (and the status page
says why), a healthy one comes back; a start-up snapshot never overrules newer events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from llmbus.bus import Delivery
from llmbus.config import parse_config
from llmbus.proto import (
    AUTH_CREDENTIAL_EVENTS,
    CONTROL_REGISTRY,
    EVENTS,
    EXEC,
    ROUTE,
    ChatRequest,
    Client,
    CredentialEvent,
    CredentialInfo,
    Error,
    ExecRequest,
    Message,
    Needs,
    RegistryQuery,
    RouteRequest,
    RuntimeState,
    chat_codec,
)
from llmbus.router.handlers import Router
from llmbus.testing import InMemoryBus

# `copilot` has no configured credential: only logins make it routable. `kiro` has one
# from the config (a token file), whose health auth reports like any stored one's.
CONFIG = """
providers:
  copilot:
    models: [gpt-4.1]
  kiro:
    token_file: /nonexistent/kiro-auth-token.json
    models: [claude-sonnet-4]
"""
LOGIN = CredentialInfo(provider="copilot", id="octo-1a2b3c", kind="github", account="octo")


@dataclass
class Setup:
    bus: InMemoryBus
    router: Router
    execs: list[ExecRequest] = field(default_factory=list)

    async def announce(self, action: str, info: CredentialInfo) -> None:
        event = CredentialEvent(action=action, credential=info)  # type: ignore[arg-type]
        await self.bus.publish(AUTH_CREDENTIAL_EVENTS, event)
        await self.bus.settle()

    async def route(self, model: str) -> list[Error]:
        """Route one request; the errors the edge got back (none when it was routed)."""
        inbox = self.bus.new_inbox()
        frames: list[Delivery] = []

        async def collect(delivery: Delivery) -> None:
            frames.append(delivery)

        await self.bus.subscribe_raw(inbox, collect)
        request = RouteRequest(
            request_id=f"req-{time.monotonic_ns()}",
            model=model,
            reply=inbox,
            deadline=int(time.time() * 1000) + 30_000,
            client=Client(id="client-1"),
            needs=Needs(streaming=True),
            body=msgspec.Raw(
                chat_codec.encode(ChatRequest(model=model, messages=[Message(role="user", content="hi")]))
            ),
        )
        await self.bus.publish(ROUTE, request)
        await self.bus.settle()
        return [event for event in map(EVENTS.decode, (f.data for f in frames)) if isinstance(event, Error)]

    async def status(self, provider: str) -> dict[str, Any]:
        reply = await self.bus.request(
            CONTROL_REGISTRY, RegistryQuery(kind="provider_status", name=provider), timeout=1
        )
        document: dict[str, Any] = json.loads(reply.body)
        return document


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    bus = InMemoryBus()
    router_bus = bus.peer()
    router = Router(router_bus, parse_config(CONFIG, "cfg.yaml", environ={}))
    await router_bus.subscribe(AUTH_CREDENTIAL_EVENTS, router.on_credential)
    await router_bus.subscribe(ROUTE, router.on_route, queue=ROUTE.queue)
    await router_bus.subscribe(CONTROL_REGISTRY, router.on_query, queue=CONTROL_REGISTRY.queue)
    setup = Setup(bus, router)

    async def on_exec(request: ExecRequest, _: Delivery) -> None:
        setup.execs.append(request)

    worker_bus = bus.peer()
    for provider in ("copilot", "kiro"):
        await worker_bus.subscribe(EXEC, on_exec, subject=EXEC.subject(provider=provider))
    try:
        yield setup
    finally:
        await router_bus.drain()
        await worker_bus.drain()


async def test_a_provider_without_credentials_is_unroutable_until_someone_logs_in(setup: Setup) -> None:
    (error,) = await setup.route("gpt-4.1")
    assert error.code == "model_not_found"
    before = await setup.status("copilot")
    assert not before["routable"]
    assert "sign in" in before["reason"]

    await setup.announce("added", LOGIN)

    assert await setup.route("gpt-4.1") == []
    (request,) = setup.execs
    assert (request.target.provider, request.target.credential) == ("copilot", LOGIN.id)
    after = await setup.status("copilot")
    assert after["routable"]
    (credential,) = after["credentials"]
    assert credential["name"] == LOGIN.id
    assert credential["type"] == "github"
    assert credential["account"] == "octo"
    assert credential["healthy"] is True


async def test_an_unhealthy_login_is_skipped_with_its_reason_shown_until_it_is_healthy_again(
    setup: Setup,
) -> None:
    await setup.announce("added", LOGIN)
    sick = msgspec.structs.replace(LOGIN, healthy=False, reason="refresh failed: Bad credentials")
    await setup.announce("unhealthy", sick)

    (error,) = await setup.route("gpt-4.1")
    assert error.status == 503
    assert error.code == "credentials_unhealthy"
    assert "Bad credentials" in error.message
    status = await setup.status("copilot")
    assert not status["routable"]
    assert status["reason"].startswith("every credential is unhealthy")
    (credential,) = status["credentials"]
    assert credential["state"] == "unhealthy"
    assert credential["health_reason"] == "refresh failed: Bad credentials"

    await setup.announce("healthy", LOGIN)
    assert await setup.route("gpt-4.1") == []


async def test_a_config_credential_auth_reports_unhealthy_is_skipped(setup: Setup) -> None:
    stored = CredentialInfo(provider="kiro", id="key-1", kind="kiro-social")
    await setup.announce("added", stored)
    assert await setup.route("claude-sonnet-4") == []
    await setup.announce("unhealthy", msgspec.structs.replace(stored, healthy=False, reason="expired"))
    (error,) = await setup.route("claude-sonnet-4")
    assert error.code == "credentials_unhealthy"


async def test_a_removed_login_leaves_the_candidates(setup: Setup) -> None:
    await setup.announce("added", LOGIN)
    await setup.announce("removed", LOGIN)
    (error,) = await setup.route("gpt-4.1")
    assert error.code == "model_not_found"


async def test_the_start_up_snapshot_adds_logins_but_never_overrules_a_newer_event(setup: Setup) -> None:
    other = CredentialInfo(provider="copilot", id="hubot-9f9f9f", kind="github", account="hubot")
    await setup.announce("removed", other)
    setup.router.load(RuntimeState(credentials=[LOGIN, other]))

    status = await setup.status("copilot")
    assert [c["name"] for c in status["credentials"]] == [LOGIN.id]
    assert status["routable"]
