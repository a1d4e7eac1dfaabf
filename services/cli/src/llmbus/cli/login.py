"""`llmbus login copilot|kiro`: a device-flow login from the terminal.

It starts the flow through the gateway's JSON API, prints the code and the link, polls
the flow at its interval and prints the new credential's id, or the reason it failed.
The exit code is 0 only when a credential was stored.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

__all__ = ["Caller", "register", "run"]


class Caller(Protocol):
    """What the login needs of `Gateway`: one JSON call."""

    def call(self, method: str, path: str, body: object | None = None) -> Any: ...


_OUTCOMES = {
    "expired": "the code expired before it was used; run the command again",
    "denied": "the sign-in was refused",
}


def register(commands: Any) -> None:
    login = commands.add_parser("login", help="sign in to Copilot or Kiro with a device code")
    login.add_argument("family", choices=("copilot", "kiro"))
    login.add_argument("--provider", default="", help="the provider to sign in to (default: the family's)")
    login.add_argument(
        "--identity-center", action="store_true", help="Kiro: IAM Identity Center instead of AWS Builder ID"
    )
    login.add_argument("--start-url", default="", help="Identity Center: https://<org>.awsapps.com/start")
    login.add_argument("--region", default="", help="Identity Center: the region of its OIDC service")
    login.set_defaults(run=run)


def _body(args: argparse.Namespace) -> dict[str, str]:
    body = {"provider": args.provider} if args.provider else {}
    if args.family == "kiro":
        if args.identity_center or args.start_url:
            body.update(method="identity-center", start_url=args.start_url, region=args.region)
        else:
            body["method"] = "builder-id"
    return body


def run(
    args: argparse.Namespace,
    gateway: Caller,
    *,
    out: TextIO = sys.stdout,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    if args.family == "kiro" and args.identity_center and not (args.start_url and args.region):
        print("llmbus: --identity-center needs --start-url and --region", file=sys.stderr)
        return 2
    flow = gateway.call("POST", f"/v0/oauth/{args.family}/start", _body(args))
    link = flow.get("verification_uri_complete") or flow["verification_uri"]
    print(f"Open {link}", file=out)
    print(f"and enter the code: {flow['user_code']}", file=out)
    print("Waiting for the sign-in (Ctrl-C to stop)...", file=out, flush=True)
    deadline = clock() + float(flow["expires_in"])
    interval = max(1.0, float(flow["interval"]))
    while clock() < deadline:
        sleep(interval)
        state = gateway.call("GET", f"/v0/oauth/flows/{flow['flow_id']}")
        status = state.get("status")
        if status == "pending":
            continue
        if status == "success":
            print(f"Signed in: credential {state['provider']}/{state['credential']}", file=out)
            return 0
        reason = _OUTCOMES.get(status, f"the sign-in failed: {state.get('error') or status}")
        print(f"llmbus: {reason}", file=sys.stderr)
        return 1
    print(f"llmbus: {_OUTCOMES['expired']}", file=sys.stderr)
    return 1
