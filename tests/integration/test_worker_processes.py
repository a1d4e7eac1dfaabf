"""`LLMBUS_PROCESSES`: one worker command, several processes of one family behind the
same queue group, supervised. Real processes over a real nats-server."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from llmbus.bus import Bus, Inbox, connect
from llmbus.config import load_config
from llmbus.proto import (
    EXEC,
    ChatRequest,
    Client,
    Done,
    Error,
    ExecRequest,
    Message,
    Target,
    chat_codec,
    frames_of,
)
from llmbus.providers import configured_providers
from llmbus.testing import Process, free_port, port_is_free, wait_for_http
from llmbus.testing.bususers import BusUsers

PROCESSES = 2
REQUESTS = 40


def _metrics_ports() -> int:
    """A port whose next `PROCESSES - 1` ports are free too (child k serves `port + k`)."""
    while True:
        port = free_port()
        if all(port_is_free(port + k) for k in range(1, PROCESSES)):
            return port


def _served(metrics_port: int) -> float:
    """Requests this worker process answered, from its own `/metrics`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(r"^llmbus_worker_requests_total\{[^}]*\} (\S+)$", text, re.M))


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _wait_until(condition: object, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def mock_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = Process(
        "mock-upstream",
        [sys.executable, "-m", "llmbus.mock_upstream"],
        env={"LLMBUS_MOCK_PORT": str(port)},
        log_path=tmp_path / "mock.log",
    ).start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", process=process)
        yield url
    finally:
        process.stop()


async def _ask(bus: Bus, inbox: Inbox, provider: str, credential: str, n: int) -> type:
    """One request as a router sends it; the type of its last frame."""
    request_id = f"r{n}-{secrets.token_hex(4)}"
    body = chat_codec.encode(ChatRequest(model="m", messages=[Message(role="user", content=f"hi {n}")]))
    with inbox.open(request_id) as (reply, queue):
        request = ExecRequest(
            request_id=request_id,
            model="m",
            reply=reply,
            deadline=0,
            client=Client(id="c"),
            body=msgspec.Raw(body),
            target=Target(provider=provider, credential=credential, upstream_model="gpt-4o-mini"),
        )
        await bus.publish(EXEC, request, reply=reply, provider=provider)
        while True:
            event = frames_of((await asyncio.wait_for(queue.get(), 10)).data)[-1]
            if isinstance(event, Done | Error):
                return type(event)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads children from /proc")
async def test_processes_of_one_family_share_its_requests_and_a_dead_one_comes_back(
    nats_url: str, nats_users: BusUsers, mock_url: str, tmp_path: Path
) -> None:
    provider = f"procs-{secrets.token_hex(3)}"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"providers:\n  {provider}:\n    type: openai\n    endpoint: {mock_url}\n    api_keys: [sk-procs]\n"
    )
    credential = configured_providers(load_config(str(config)))[provider].credentials[0].name
    metrics = _metrics_ports()
    server = "nats://" + nats_url.rsplit("@", 1)[-1].removeprefix("nats://")
    credentials = nats_users.service_env("worker", "worker") if "@" in nats_url else {}
    launcher = Process(
        "worker",
        [sys.executable, "-m", "llmbus.worker"],
        env={
            "LLMBUS_CONFIG": str(config),
            "LLMBUS_NATS_URL": server,
            "LLMBUS_FAMILY": "openai",
            "LLMBUS_PROCESSES": str(PROCESSES),
            "LLMBUS_METRICS_PORT": str(metrics),
            "LLMBUS_DEV": "1",
            **credentials,
        },
        log_path=tmp_path / "worker.log",
    ).start()
    assert launcher.popen is not None
    bus = await connect(nats_url, name="test-processes")
    try:
        for k in range(PROCESSES):
            await asyncio.to_thread(
                wait_for_http, f"http://127.0.0.1:{metrics + k}/healthz", process=launcher
            )
        inbox = Inbox(bus)
        await inbox.start()
        ends = await asyncio.gather(*(_ask(bus, inbox, provider, credential, n) for n in range(REQUESTS)))
        assert ends == [Done] * REQUESTS
        served = [_served(metrics + k) for k in range(PROCESSES)]
        assert sum(served) == REQUESTS
        assert all(count > 0 for count in served), f"every process serves some requests: {served}"

        # A child that dies is started again, and serves again.
        before = _children(launcher.popen.pid)
        assert len(before) == PROCESSES
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(
            _wait_until, lambda: len(_children(launcher.popen.pid) - before - {victim}) == 1
        )
        for k in range(PROCESSES):
            await asyncio.to_thread(
                wait_for_http, f"http://127.0.0.1:{metrics + k}/healthz", process=launcher
            )
        ends = await asyncio.gather(*(_ask(bus, inbox, provider, credential, n) for n in range(10)))
        assert ends == [Done] * 10
    finally:
        await bus.drain()
        children = _children(launcher.popen.pid)
        code = launcher.stop(timeout=20)
    # SIGTERM drains every child, and the launcher exits cleanly.
    assert code == 0, launcher.log_text()
    await asyncio.to_thread(_wait_until, lambda: not any(Path(f"/proc/{pid}").exists() for pid in children))
