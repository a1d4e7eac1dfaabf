"""`llmbus <command>`: each command module adds its subcommands with `register()`.

The gateway's URL and management key come from `--url`/`--management-key` or the
environment (`LLMBUS_URL`, `LLMBUS_MANAGEMENT_KEY`, or `LLMBUS_MANAGEMENT_KEY_FILE`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx2

from llmbus.cli import keys, login
from llmbus.cli.gateway import Gateway, GatewayError

__all__ = ["main"]

COMMANDS = (keys, login)
"""Modules with `register(subparsers)`; each subcommand sets `run(args, gateway) -> int`."""


def _management_key(explicit: str | None) -> str:
    if explicit:
        return explicit
    if path := os.environ.get("LLMBUS_MANAGEMENT_KEY_FILE"):
        return Path(path).read_text().strip()
    return os.environ.get("LLMBUS_MANAGEMENT_KEY", "")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="llmbus", description=__doc__)
    root.add_argument("--url", default=os.environ.get("LLMBUS_URL", "http://127.0.0.1:8317"))
    root.add_argument("--management-key", default=None, help="default: $LLMBUS_MANAGEMENT_KEY")
    commands = root.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(commands)
    return root


def main(argv: list[str] | None = None, transport: httpx2.BaseTransport | None = None) -> int:
    """Run one command; `transport` replaces the network in tests."""
    args = parser().parse_args(argv)
    try:
        with Gateway(args.url, _management_key(args.management_key), transport=transport) as gateway:
            code: int = args.run(args, gateway)
            return code
    except GatewayError as exc:
        print(f"llmbus: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
