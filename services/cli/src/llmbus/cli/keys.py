"""`llmbus keys create|list|revoke|usage`: client keys through the management API.

The new key is printed once, when it is created: the gateway keeps only its hash."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from llmbus.cli.gateway import Gateway

__all__ = ["parse_duration", "register"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")


def parse_duration(text: str) -> float:
    """Seconds in `90`, `15m`, `12h`, `30d` or `2w`."""
    match = _DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"`{text}` is not a duration (examples: 3600, 15m, 12h, 30d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="client keys: create, list, revoke, usage")
    sub = keys.add_subparsers(dest="keys_command", required=True)

    create = sub.add_parser("create", help="create a key (printed once)")
    create.add_argument("--name", default="")
    create.add_argument("--owner", default="")
    create.add_argument("--rpm", type=int, default=0, help="requests per minute (0: no limit)")
    create.add_argument("--tpm", type=int, default=0, help="tokens per minute (0: no limit)")
    create.add_argument("--max-tokens", type=int, default=0, help="largest max_tokens of one request")
    create.add_argument(
        "--model",
        action="append",
        default=[],
        dest="models",
        help="a model it may use (`*` wildcards; repeat)",
    )
    create.add_argument("--expires-in", type=parse_duration, default=None, help="e.g. 30d, 12h, 3600")
    create.set_defaults(run=_create)

    listing = sub.add_parser("list", help="every key, by id and prefix")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.set_defaults(run=_list)

    revoke = sub.add_parser("revoke", help="revoke a key on every edge")
    revoke.add_argument("id")
    revoke.set_defaults(run=_revoke)

    usage = sub.add_parser("usage", help="requests and tokens of a key")
    usage.add_argument("id")
    usage.add_argument("--days", type=int, default=30)
    usage.set_defaults(run=_usage)


def _create(args: argparse.Namespace, gateway: Gateway) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "owner": args.owner,
        "rpm": args.rpm,
        "tpm": args.tpm,
        "max_tokens": args.max_tokens,
        "models": args.models,
    }
    if args.expires_in is not None:
        body["expires_in"] = args.expires_in
    created = gateway.call("POST", "/v1/keys", body)
    print(f"key:     {created['key']}")
    print(f"id:      {created['id']}")
    print(f"expires: {_when(created.get('expires_at'))}")
    print("The key is shown only now: the gateway keeps its hash, not the key.")
    return 0


def _list(args: argparse.Namespace, gateway: Gateway) -> int:
    listing = gateway.call("GET", "/v1/keys?include_revoked=true" if args.all else "/v1/keys")
    rows = [
        [
            key["id"],
            key["prefix"],
            key["name"] or "-",
            key["owner"] or "-",
            _limits(key["limits"]),
            _when(key.get("expires_at")),
            "yes" if key["revoked"] else "no",
        ]
        for key in listing["data"]
    ]
    _table(["ID", "PREFIX", "NAME", "OWNER", "LIMITS", "EXPIRES", "REVOKED"], rows)
    return 0


def _revoke(args: argparse.Namespace, gateway: Gateway) -> int:
    info = gateway.call("DELETE", f"/v1/keys/{args.id}")
    print(f"revoked {info['id']} ({info['name'] or 'unnamed'}): every edge refuses it now")
    return 0


def _usage(args: argparse.Namespace, gateway: Gateway) -> int:
    usage = gateway.call("GET", f"/v1/keys/{args.id}/usage?days={args.days}")
    total = usage["total"]
    print(
        f"{usage['id']}, last {usage['days']} days: {total['requests']} requests, "
        f"{total['input_tokens']} input tokens, {total['output_tokens']} output tokens"
    )
    for title, counts in (("MODEL", usage["by_model"]), ("DAY (UTC)", usage["by_day"])):
        if counts:
            print()
            _table(
                [title, "REQUESTS", "INPUT", "OUTPUT"],
                [
                    [name, str(c["requests"]), str(c["input_tokens"]), str(c["output_tokens"])]
                    for name, c in counts.items()
                ],
            )
    return 0


def _limits(limits: dict[str, Any]) -> str:
    parts = [f"{name}={limits[name]}" for name in ("rpm", "tpm", "max_tokens") if limits.get(name)]
    if limits.get("models"):
        parts.append("models=" + ",".join(limits["models"]))
    return " ".join(parts) or "-"


def _when(expires_at: float | None) -> str:
    if not expires_at:
        return "never"
    text = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{text} (expired)" if expires_at <= time.time() else text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
