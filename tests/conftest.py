"""Fixtures shared by every test: real nats-server and redis-server processes on free
ports (or the servers named by LLMBUS_TEST_NATS_URL / LLMBUS_TEST_REDIS_URL). The NATS
server is closed: each service has its user (`nats_users`), and `nats_url` carries the
harness's own credentials. At the end of the run, every log the suite wrote is scanned
for the secrets it used (`tests/logscan.py`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbus.testing import MissingBinary, Process, free_port, start_nats, start_redis
from llmbus.testing.bususers import HARNESS, BusUsers

pytest_plugins = ["tests.logscan"]


def _missing(exc: MissingBinary) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{exc}: CI must have it (.ci/run installs it)")
    pytest.skip(str(exc))


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def nats_users() -> BusUsers:
    """The session server's users: one per service (and a second edge), and the harness."""
    return BusUsers.generate(harness=True)


@pytest.fixture(scope="session")
def nats_url(logs_dir: Path, nats_users: BusUsers) -> Iterator[str]:
    if url := os.environ.get("LLMBUS_TEST_NATS_URL"):
        yield url
        return
    port = free_port()
    try:
        process: Process = start_nats(port, logs_dir, users=nats_users)
    except MissingBinary as exc:
        _missing(exc)
        return
    try:
        yield nats_users.url(f"nats://127.0.0.1:{port}", HARNESS)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def redis_url(logs_dir: Path) -> Iterator[str]:
    if url := os.environ.get("LLMBUS_TEST_REDIS_URL"):
        yield url
        return
    port = free_port()
    try:
        process = start_redis(port, logs_dir)
    except MissingBinary as exc:
        _missing(exc)
        return
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.stop()
