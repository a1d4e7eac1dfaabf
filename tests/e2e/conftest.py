"""The end-to-end stack: every service as its own process, real NATS and Redis, the
mock upstream; driven with the official SDKs."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from llmbus.devstack.upstreams import mock_environment
from llmbus.providers.adapters import FAMILIES
from llmbus.testing import Stack, StackPorts
from llmbus.testing.bususers import BusUsers
from tests.e2e.otlp import Jaeger, OtlpReceiver

CLIENT_KEY = "sk-test-client"
MANAGEMENT_KEY = "mk-test-management"
CONFIG = Path(__file__).with_name("config.yaml")
TOKEN_KEY = base64.b64encode(os.urandom(32)).decode()
"""Seals the stored tokens of the test stacks: a real key, as outside dev mode."""


@pytest.fixture(scope="session")
def jaeger(logs_dir: Path) -> Iterator[Jaeger | None]:
    """Jaeger itself, when a `jaeger` binary is on PATH (the receiver forwards to it)."""
    binary = Jaeger.binary()
    if binary is None:
        yield None
        return
    backend = Jaeger(binary, logs_dir).start()
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture(scope="session")
def otlp(jaeger: Jaeger | None) -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(forward_to=jaeger.endpoint if jaeger else "").start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def trace_api(otlp: OtlpReceiver, jaeger: Jaeger | None) -> str:
    """The base URL of a Jaeger query API holding every span the stack exported: Jaeger's
    own when it runs, the receiver's otherwise."""
    return jaeger.query_url if jaeger else otlp.endpoint


@pytest.fixture(scope="session")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the e2e config that the stack runs on: tests may rewrite it."""
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(CONFIG.read_text())
    return path


@pytest.fixture(scope="session")
def stack(
    nats_url: str,
    nats_users: BusUsers,
    redis_url: str,
    logs_dir: Path,
    otlp: OtlpReceiver,
    config_file: Path,
) -> Iterator[Stack]:
    ports = StackPorts.pick(prefer_defaults=False)
    ports.nats = int(nats_url.rsplit(":", 1)[1])
    ports.redis = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    mock_url = f"http://127.0.0.1:{ports.mock}"
    stack = Stack(
        config=config_file,
        log_dir=logs_dir / "stack",
        ports=ports,
        with_infra=False,
        bus_users=nats_users,
        replicas=2,
        # Two openai workers prove the cluster-wide parts; one of each other family.
        workers={family: 2 if family == "openai" else 1 for family in FAMILIES},
        env={
            **mock_environment(mock_url, logs_dir / "stack-state", {}),
            "OPENAI_BASE_URL": mock_url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            # A line per finished request in the edge's log (what tests/e2e/test_request_id.py
            # follows; the suite's secret scan reads them all).
            "LLMBUS_LOG_REQUESTS": "1",
            "LLMBUS_LOG_FORMAT": "json",
            "LLMBUS_PROVIDERS": ",".join(
                [
                    *("openai", "flaky", "spare", "broken", "local"),
                    *("fo-keys", "fo-first", "fo-second", "fo-budget", "dl-quick", "dl-open"),
                    *("claude", "gemini", "copilot", "kiro", "copilot-login", "kiro-login"),
                ]
            ),
            "LLMBUS_TOKEN_KEY": TOKEN_KEY,
            "LLMBUS_STATUS_INTERVAL": "0.5",
            "LLMBUS_ACCEPT_TIMEOUT": "2",
            # The edge gives up on a worker silent for 1.5 s; workers send heartbeats every
            # 0.3 s while the upstream is silent, and give up on it after 4 s.
            "LLMBUS_IDLE_TIMEOUT": "1.5",
            "LLMBUS_HEARTBEAT_INTERVAL": "0.3",
            "LLMBUS_READ_TIMEOUT": "4",
            "LLMBUS_MOCK_SLOW_START_SECONDS": "2.5",
            "LLMBUS_MOCK_CHUNKS": "5",
            "LLMBUS_MOCK_HANG_SECONDS": "60",
            "LLMBUS_MOCK_RETRY_AFTER_SECONDS": "5",
            # Device-flow logins poll every second (instead of GitHub's and AWS's 5 s).
            "LLMBUS_MOCK_DEVICE_INTERVAL": "1",
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{stack.base_url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20
    ) as c:
        yield c


@pytest.fixture
async def claude_client(stack: Stack) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The official anthropic SDK, talking to the gateway's `/v1/messages`."""
    async with anthropic.AsyncAnthropic(
        base_url=stack.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20
    ) as c:
        yield c
