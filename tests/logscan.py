"""No secret in any log: a session-wide check, loaded by tests/conftest.py.

Every log file the suite writes lives below pytest's base temporary folder: the session's
`logs_dir` (NATS, Redis, every stack's services), the folders of tests that start servers
of their own, and `in-process.log` here, which records what code running inside the test
process logs. When the run ends (after every stack has stopped), each line of each of
them is checked against every secret the run handed out (`llmbus.testing.leaks.SECRETS`:
stacks add their environment, their config's keys, the NATS passwords and the tokens the
mock upstream minted) and against the shapes of keys minted at run time. A hit fails the
run, naming the file and the line with the secret masked. So does a service that NATS
refused a subject (a rule missing from `llmbus.bus.access`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbus.config import ConfigError, parse_config
from llmbus.testing.leaks import SECRETS, SecretBook

__all__ = ["bus_refusals", "no_secret_in_logs", "remember_config_secrets"]

_SHOWN = 40
_REFUSED = "bus refused:"
"""What `llmbus.bus.connect` logs when NATS refuses a subject to a service's user."""


def bus_refusals(root: Path) -> list[str]:
    """Lines where a service process was refused a subject: its user lacks a rule in
    `llmbus.bus.access` for a subject it uses. (Tests that provoke refusals on purpose
    do so in-process, whose log is not a service's.)"""
    found: list[str] = []
    for path in sorted(root.rglob("*.log")):
        if path.name == "in-process.log":
            continue
        with path.open(encoding="utf-8", errors="replace") as lines:
            found += [f"{path}:{n}: {line.strip()}" for n, line in enumerate(lines, 1) if _REFUSED in line]
    return found


def remember_config_secrets(book: SecretBook) -> None:
    """The keys of every config file a stack ran on: client keys, the management key,
    upstream keys and GitHub tokens, and the tokens in the token files it names."""
    for text, env, label in book.configs:
        try:
            config = parse_config(text, label, env)
        except ConfigError:
            continue  # a test's deliberately broken config: nothing ran on it
        for client in config.client_keys():
            book.add(client.key, f"client key {client.name} of {label}")
        book.add(config.management_key, f"management key of {label}")
        for name, provider in config.providers.items():
            for credential in provider.credentials():
                book.add(credential.api_key, f"upstream key of {name} in {label}")
                book.add(credential.github_token, f"GitHub token of {name} in {label}")
                if credential.token_file:
                    book.add_token_file(Path(credential.token_file), f"token file of {name} in {label}")


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_logs(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[None]:
    root = logging.getLogger()
    handler = logging.FileHandler(logs_dir / "in-process.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    level = root.level
    root.addHandler(handler)
    if level == logging.NOTSET or level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
    remember_config_secrets(SECRETS)
    base = tmp_path_factory.getbasetemp()
    leaks = [str(leak) for leak in SECRETS.scan([base])]
    refusals = bus_refusals(base)
    problems = []
    if leaks:
        problems.append(f"secrets in the logs ({len(leaks)} lines):\n" + _first(leaks))
    if refusals:
        problems.append(f"services refused a subject by NATS ({len(refusals)} lines):\n" + _first(refusals))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _first(lines: list[str]) -> str:
    more = f"\n... and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else ""
    return "\n".join(lines[:_SHOWN]) + more
