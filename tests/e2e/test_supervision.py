"""`make run` as a user runs it: `python -m llmbus.devstack` as a real process with its own
NATS, Redis, mock upstream and services, on free ports, with a config of the user's own
(`make run CONFIG=...`). A killed service is started again and requests succeed again
meanwhile or after; `/readyz` says what is missing while a router or the workers are
gone; a port another process holds is a clear error naming it; Ctrl-C (SIGINT) stops the
services, then NATS and Redis, without a traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from llmbus.testing import Process, free_port

pytestmark = pytest.mark.e2e

CLIENT_KEY = "sk-supervision-own-config"
USER_CONFIG = f"""\
api-keys:
  - key: {CLIENT_KEY}
    name: mine
management-key: mk-supervision-own-config
providers:
  openai:
    endpoint: ${{OPENAI_BASE_URL}}
    api_keys:
      - ${{OPENAI_API_KEY}}
    models:
      - name: gpt-4o-mini
      - name: slow
        upstream: slow
"""
BUS_SERVICES = ("auth", "router", "worker-openai", "worker-anthropic")


@dataclass
class Devstack:
    process: Process
    port: int
    logs: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.process.log_text()

    def children(self) -> dict[str, int]:
        """Its child processes by service name (`worker-<family>` for workers)."""
        assert self.process.popen is not None
        pid = self.process.popen.pid
        found: dict[str, int] = {}
        for child in _children_of(pid):
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue  # gone meanwhile
            module = (
                argv[2].decode()
                if len(argv) > 2 and argv[1] == b"-m"
                else Path(argv[0].decode().split()[0]).name
            )
            name = module.removeprefix("llmbus.")
            if name == "worker":
                family = next(v[len(b"LLMBUS_FAMILY=") :] for v in environ if v.startswith(b"LLMBUS_FAMILY="))
                name = f"worker-{family.decode()}"
            found[name.replace("_", "-").removesuffix("-server")] = int(child)
        return found


def _children_of(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(") ", 1)[1].split()[1]) == parent:
                children.append(int(entry.name))
    return children


async def _readyz(base_url: str) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        response = await http.get("/readyz")
    return response.status_code, response.json()


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    """Poll `check` until it says True."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.1)


def _wait_for(devstack: Devstack, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in devstack.output():
        devstack.process.check_alive()
        assert time.monotonic() < deadline, f"{text!r} not in the output:\n{devstack.output()}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    folder = tmp_path_factory.mktemp("supervision")
    config = folder / "my-config.yaml"
    config.write_text(USER_CONFIG)
    port = free_port()
    argv = [
        *(sys.executable, "-m", "llmbus.devstack", "--config", str(config), "--port", str(port)),
        *("--nats-port", str(free_port()), "--redis-port", str(free_port())),
        *("--mock-port", str(free_port()), "--logs", str(folder / "logs")),
        *("--families", "openai,anthropic"),
    ]
    env = {
        "PYTHONUNBUFFERED": "1",
        # Workers report twice a second: a router counts one gone after 3 s of silence.
        "LLMBUS_STATUS_INTERVAL": "0.5",
        "LLMBUS_IDLE_TIMEOUT": "3",
        "LLMBUS_HEARTBEAT_INTERVAL": "0.5",
        # SIGTERM: a worker's streams get half a second to finish.
        "LLMBUS_DRAIN_SECONDS": "0.5",
        # Streams of 20 chunks 50 ms apart: a kill lands in the middle of some.
        "LLMBUS_MOCK_CHUNKS": "20",
        "LLMBUS_MOCK_CHUNK_DELAY_MS": "50",
    }
    process = Process("devstack", argv, env=env, log_path=folder / "devstack.out").start()
    stack = Devstack(process, port, folder / "logs")
    try:
        _wait_for(stack, "llmbus is up.", timeout=90)
        yield stack
    finally:
        process.stop(timeout=40)


@pytest.fixture
async def client(devstack: Devstack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{devstack.base_url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20
    ) as c:
        yield c


async def _one_stream(client: openai.AsyncOpenAI) -> str:
    """ok, error (a clean API error, before or during the stream), cut (ended without a
    finish or an error), broken (the connection failed) or hung."""
    try:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "count"}], stream=True
        )
        finish = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        return "ok" if finish else "cut"
    except openai.APITimeoutError:
        return "hung"
    except openai.APIStatusError as exc:
        # The gateway's trouble, never blamed on the client, and no traceback in it.
        clean = exc.status_code >= 500 and "Traceback" not in str(exc.body)
        return "error" if clean else f"bad {exc.status_code}: {exc.body}"
    except openai.APIConnectionError:
        return "broken"
    except openai.APIError as exc:  # an error event inside the stream
        return "error" if "Traceback" not in str(exc) else f"bad: {exc}"


async def test_a_killed_worker_is_started_again_and_requests_succeed_again(
    devstack: Devstack, client: openai.AsyncOpenAI
) -> None:
    assert await _one_stream(client) == "ok"
    before = devstack.children()["worker-openai"]
    outcomes: Counter[str] = Counter()
    after_restart: Counter[str] = Counter()
    restarted = asyncio.Event()
    loading = True

    async def load() -> None:
        while loading:
            outcome = await _one_stream(client)
            outcomes[outcome] += 1
            if restarted.is_set():
                after_restart[outcome] += 1

    clients = [asyncio.create_task(load()) for _ in range(6)]
    await asyncio.sleep(1.5)
    os.kill(before, signal.SIGKILL)
    await asyncio.to_thread(_wait_for, devstack, "worker-openai started again")
    restarted.set()
    await _until(lambda: _ok_after(after_restart), "a request served by the restarted worker")
    loading = False
    await asyncio.gather(*clients)

    assert outcomes["hung"] == 0, outcomes
    assert outcomes["cut"] == 0, f"every stream ends with its finish or an error event: {outcomes}"
    assert outcomes["broken"] == 0, outcomes
    assert set(outcomes) <= {"ok", "error"}, outcomes
    assert outcomes["ok"] > 0, outcomes
    assert devstack.children()["worker-openai"] != before
    output = devstack.output()
    assert "worker-openai exited (killed by SIGKILL); starting it again" in output
    assert "stopping" not in output, "the rest of the stack kept serving"


async def _ok_after(after: Counter[str]) -> bool:
    return after["ok"] > 0


async def test_readyz_names_the_router_while_none_answers(devstack: Devstack) -> None:
    assert (await _readyz(devstack.base_url)) == (200, {"status": "ready"})
    supervisor = devstack.process.popen
    assert supervisor is not None
    supervisor.send_signal(signal.SIGSTOP)  # no restart until the test has looked
    try:
        os.kill(devstack.children()["router"], signal.SIGKILL)

        async def router_missing() -> bool:
            status, body = await _readyz(devstack.base_url)
            return status == 503 and body.get("missing") == "router"

        await _until(router_missing, "/readyz 503 naming the router", timeout=10)
        _, body = await _readyz(devstack.base_url)
        assert body["status"] == "unavailable"
        assert "router" in str(body["reason"])
    finally:
        supervisor.send_signal(signal.SIGCONT)

    async def ready() -> bool:
        return (await _readyz(devstack.base_url))[0] == 200

    await _until(ready, "/readyz 200 once the router is back")


async def test_readyz_names_the_workers_while_none_is_live(devstack: Devstack) -> None:
    workers = [pid for name, pid in devstack.children().items() if name.startswith("worker-")]
    assert len(workers) == 2
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)  # hung: alive for the supervisor, silent for the routers
    try:

        async def workers_missing() -> bool:
            status, body = await _readyz(devstack.base_url)
            return status == 503 and body.get("missing") == "worker"

        await _until(workers_missing, "/readyz 503 naming the workers", timeout=20)
        _, body = await _readyz(devstack.base_url)
        providers = body["providers"]
        assert isinstance(providers, dict)
        assert "no live worker" in str(providers["openai"])
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)

    async def ready() -> bool:
        return (await _readyz(devstack.base_url))[0] == 200

    await _until(ready, "/readyz 200 once the workers report again")


async def test_a_killed_edge_comes_back_on_the_same_port(
    devstack: Devstack, client: openai.AsyncOpenAI
) -> None:
    assert await _one_stream(client) == "ok"  # a connection to the port, left to close
    os.kill(devstack.children()["edge"], signal.SIGKILL)
    await asyncio.to_thread(_wait_for, devstack, "edge started again")

    async def serves() -> bool:
        return await _one_stream(client) == "ok"

    await _until(serves, f"requests answered on port {devstack.port} again", timeout=40)


async def test_sigterm_to_a_worker_ends_its_streams_with_an_error_event(
    devstack: Devstack, client: openai.AsyncOpenAI
) -> None:
    assert await _one_stream(client) == "ok"
    worker = devstack.children()["worker-openai"]
    streaming = asyncio.Semaphore(0)

    async def slow_stream() -> str:
        """How a stream of ten seconds (20 chunks half a second apart) ended."""
        try:
            stream = await client.chat.completions.create(
                model="slow", messages=[{"role": "user", "content": "take your time"}], stream=True
            )
            first = True
            async for _ in stream:
                if first:
                    streaming.release()
                    first = False
        except openai.APITimeoutError:
            return "hung"
        except openai.APIError as exc:
            return f"error {exc.code}"
        return "finished"

    streams = [asyncio.create_task(slow_stream()) for _ in range(3)]
    for _ in streams:
        await asyncio.wait_for(streaming.acquire(), 20)
    os.kill(worker, signal.SIGTERM)
    outcomes = await asyncio.gather(*streams)

    assert outcomes == ["error worker_stopping"] * 3, "cut after the drain time, with an error event"
    log = (devstack.logs / "worker-openai.log").read_text()
    assert "worker-openai: 3 handlers still running after 0.5 s: cancelled" in log
    await asyncio.to_thread(_wait_for, devstack, "worker-openai exited (status 0)")
    await _until(lambda: _ok(client), "requests served by the worker started again")


async def _ok(client: openai.AsyncOpenAI) -> bool:
    return await _one_stream(client) == "ok"


def test_a_port_another_process_listens_on_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        argv = [sys.executable, "-m", "llmbus.devstack", "--port", str(port), "--port-wait", "0.5"]
        process = Process("devstack-taken", argv, log_path=tmp_path / "out").start()
        assert process.popen is not None
        code = process.popen.wait(30)
    output = process.log_text()
    assert code == 1, output
    assert f"port {port} is taken" in output
    assert f"(pid {os.getpid()}) listens on it" in output
    assert "Traceback" not in output


def test_ctrl_c_stops_the_services_then_nats_and_redis_without_a_traceback(devstack: Devstack) -> None:
    children = devstack.children()
    assert {"nats", "redis", "edge", *BUS_SERVICES} <= set(children)
    assert devstack.process.popen is not None
    devstack.process.signal(signal.SIGINT)
    code = devstack.process.popen.wait(40)

    output = devstack.output()
    assert code == 0, output
    assert "llmbus: stopped." in output
    assert "Traceback" not in output
    for pid in children.values():
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"pid {pid} outlived make run"
    for name in BUS_SERVICES:
        log = (devstack.logs / f"{name}.log").read_text()
        assert "Traceback" not in log, f"{name}:\n{log}"
        last_stop = log[log.rindex(f"{name} stopping") :]
        assert f"{name} stopped" in last_stop, f"{name} drained and stopped:\n{last_stop}"
        # NATS was still there while the service drained.
        assert "bus disconnected" not in last_stop, f"{name}:\n{last_stop}"
    assert "Traceback" not in (devstack.logs / "edge.log").read_text()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True
