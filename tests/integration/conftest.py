"""Fixtures of the integration tests that need a closed bus of their own: a nats-server
(with JetStream) whose users are the services' (`llmbus.bus.access`), one per module, so
that subscriptions to broadcast subjects and streams see only the module's own traffic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmbus.testing import free_port, start_nats
from llmbus.testing.bususers import BusUsers


@pytest.fixture(scope="module")
def users() -> BusUsers:
    return BusUsers.generate(harness=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, users: BusUsers) -> Iterator[str]:
    port = free_port()
    process = start_nats(port, tmp_path_factory.mktemp("closed-bus"), users=users)
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.stop()
