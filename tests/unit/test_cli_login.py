"""`llmbus login`: the gateway's JSON API scripted, the clock and the sleep faked."""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmbus.cli.login import register, run

FLOW: dict[str, Any] = {
    "flow_id": "flow_abc",
    "provider": "kiro",
    "user_code": "BCDF-GHJK",
    "verification_uri": "https://device.example/login",
    "verification_uri_complete": "https://device.example/login?user_code=BCDF-GHJK",
    "expires_in": 60,
    "interval": 5,
}


@dataclass
class Gateway:
    statuses: list[dict[str, Any]]
    calls: list[tuple[str, str, object]] = field(default_factory=list)

    def call(self, method: str, path: str, body: object | None = None) -> Any:
        self.calls.append((method, path, body))
        if method == "POST":
            return FLOW
        return self.statuses.pop(0)


@dataclass
class Clock:
    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="llmbus")
    register(root.add_subparsers(dest="command", required=True))
    return root


def login(argv: list[str], gateway: Gateway, clock: Clock) -> tuple[int, str]:
    args = parser().parse_args(["login", *argv])
    out = io.StringIO()
    code = run(args, gateway, out=out, sleep=clock.sleep, clock=lambda: clock.now)
    return code, out.getvalue()


def pending() -> dict[str, Any]:
    return {"flow_id": "flow_abc", "status": "pending", "provider": "kiro"}


def test_login_prints_the_code_and_link_then_the_credential_and_exits_zero() -> None:
    gateway = Gateway([pending(), pending(), {"status": "success", "provider": "kiro", "credential": "c-1"}])
    clock = Clock()
    code, out = login(["kiro"], gateway, clock)
    assert code == 0
    assert "BCDF-GHJK" in out
    assert FLOW["verification_uri_complete"] in out
    assert "kiro/c-1" in out
    assert clock.slept == [5, 5, 5]
    assert gateway.calls[0] == ("POST", "/v0/oauth/kiro/start", {"method": "builder-id"})
    assert gateway.calls[1] == ("GET", "/v0/oauth/flows/flow_abc", None)


@pytest.mark.parametrize("status", ["denied", "expired", "error"])
def test_login_exits_non_zero_when_the_flow_does_not_succeed(
    status: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = Gateway([{"status": status, "provider": "copilot", "error": "GitHub said no"}])
    code, _ = login(["copilot"], gateway, Clock())
    assert code == 1
    assert "llmbus:" in capsys.readouterr().err


def test_login_gives_up_when_the_code_expires_while_pending() -> None:
    gateway = Gateway([pending() for _ in range(20)])
    clock = Clock()
    code, _ = login(["copilot"], gateway, clock)
    assert code == 1
    assert clock.now >= FLOW["expires_in"]


def test_identity_center_login_sends_start_url_region_and_provider() -> None:
    gateway = Gateway([{"status": "success", "provider": "kiro-work", "credential": "c-2"}])
    argv = ["kiro", "--provider", "kiro-work", "--identity-center"]
    argv += ["--start-url", "https://org.awsapps.com/start", "--region", "eu-west-1"]
    code, _ = login(argv, gateway, Clock())
    assert code == 0
    assert gateway.calls[0][2] == {
        "provider": "kiro-work",
        "method": "identity-center",
        "start_url": "https://org.awsapps.com/start",
        "region": "eu-west-1",
    }


def test_identity_center_without_start_url_is_refused_before_any_call() -> None:
    gateway = Gateway([])
    code, _ = login(["kiro", "--identity-center"], gateway, Clock())
    assert code == 2
    assert gateway.calls == []
