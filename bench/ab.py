"""A/B of two source trees of llmbus in one sitting: `python -m bench.ab TREE_A TREE_B`.

Each tree runs its own whole stack (its own `.venv`, as `make setup` made it: NATS, Redis,
auth, router, worker-openai, edge and the mock upstreams, with `bench/config.yaml`), both
at once; batches alternate between them, the order flipping every round, so that the
drift of a shared machine (which moves run-to-run numbers by 20% here) hits both alike.
It prints, per tree, the latency (or first token) percentiles over every batch and the
median CPU per request of each process over the rounds. A tree may carry environment
settings for its services: `path+NAME=VALUE` (`.+LLMBUS_COALESCE_MS=0` compares a setting
with itself).

    python -m bench.ab ../llmbus-old . --phase c1 --rounds 8
    python -m bench.ab .+LLMBUS_COALESCE_MS=0 . --phase streams64 --rounds 4

It is not a test: nothing asserts on times. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from bench.client import Target
from bench.load import Batch, run_batch, run_window
from bench.plan import chat_body
from bench.usage import Services

__all__ = ["main"]

_SUMMARY = "A/B of two source trees of llmbus in one sitting, batches interleaved."

# Run with the other tree's own interpreter, in that tree: starts its stack the way its
# own bench does, prints the base URL and the pids, and stops when stdin closes.
_STACK = """
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, ".")
from bench.__main__ import CHUNK_DELAY_MS, CHUNKS, HERE, PACED_KEY, _mock
from llmbus.devstack.upstreams import mock_environment
from llmbus.testing import Stack, StackPorts
from llmbus.testing.processes import free_port
logs = Path(tempfile.mkdtemp(prefix="llmbus-ab-"))
quiet = {"LLMBUS_MOCK_CHUNKS": str(CHUNKS), "LLMBUS_MOCK_LATENCY_MS": "0", "LLMBUS_LOG_LEVEL": "warning"}
paced_port = free_port()
paced = _mock("mock-paced", paced_port, {**quiet, "LLMBUS_MOCK_CHUNK_DELAY_MS": str(CHUNK_DELAY_MS)}, logs)
ports = StackPorts.pick(prefer_defaults=False)
env = {**mock_environment(f"http://127.0.0.1:{ports.mock}", logs / "state", {}), **quiet,
       "BENCH_PACED_URL": f"http://127.0.0.1:{paced_port}/v1", "BENCH_PACED_KEY": PACED_KEY,
       "LLMBUS_DEV": "1"}
stack = Stack(config=HERE / "config.yaml", log_dir=logs, ports=ports, env=env).start()
try:
    pids = {name: p.popen.pid for name, p in stack.processes.items()}
    print(json.dumps({"url": stack.base_url, "pids": pids}), flush=True)
    sys.stdin.read()
finally:
    stack.stop()
    paced.stop()
"""

KEY = "sk-llmbus-dev"
MODEL = "gpt-4o-mini"
PACED_MODEL = "gpt-4o-paced"
GATEWAY = ("edge", "router", "worker-openai", "nats")
PHASES = ("c1", "c32", "stream", "streams64")


@dataclass
class Leg:
    spec: str
    root: Path
    env: dict[str, str]
    process: subprocess.Popen[str] | None = None
    url: str = ""
    services: Services = field(default_factory=Services)
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, spec: str) -> Leg:
        root, *settings = spec.split("+")
        env = dict(setting.split("=", 1) for setting in settings)
        return cls(spec, Path(root).resolve(), env)

    def start(self) -> None:
        python = self.root / ".venv" / "bin" / "python"
        if not python.exists():
            raise SystemExit(f"{self.root}: no .venv (run `make setup` there first)")
        self.process = subprocess.Popen(
            [str(python), "-c", _STACK],
            cwd=self.root,
            env={**os.environ, **self.env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        started = json.loads(self.process.stdout.readline())
        self.url = started["url"]
        for name, pid in started["pids"].items():
            self.services.watch(name, pid)

    def stop(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)

    def target(self, phase: str) -> Target:
        stream = phase in ("stream", "streams64")
        model = PACED_MODEL if phase == "streams64" else MODEL
        return Target.chat(
            f"{self.url}/v1/chat/completions", KEY, chat_body(model, stream=stream), stream=stream
        )

    def record(self, batch: Batch, cpu: dict[str, float]) -> None:
        done = [s for s in batch.samples if not s.error]
        self.errors += [s.error for s in batch.samples if s.error]
        self.latencies += [s.latency for s in done]
        self.first_tokens += [s.ttft for s in done]
        self.gaps += [gap for s in done for gap in s.gaps]
        for name, seconds in cpu.items():
            self.cpu.setdefault(name, []).append(seconds * 1000 / max(1, len(done)))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0


async def _measure(legs: list[Leg], phase: str, rounds: int, requests: int, window: float) -> None:
    concurrency = {"c1": 1, "c32": 32, "stream": 1, "streams64": 64}[phase]
    for leg in legs:  # warm-up, unmeasured
        await run_batch(leg.target(phase), min(concurrency, 32), 200, 10)
    for round_ in range(rounds):
        for leg in legs if round_ % 2 == 0 else list(reversed(legs)):
            before = leg.services.snapshot()
            if phase == "streams64":
                batch = await run_window(leg.target(phase), concurrency, window)
            else:
                batch = await run_batch(leg.target(phase), concurrency, requests, 60)
            leg.record(batch, leg.services.cpu_since(before))


def _report(legs: list[Leg], phase: str) -> str:
    lines = [f"phase {phase}"]
    for leg in legs:
        cpu = {name: statistics.median(values) for name, values in sorted(leg.cpu.items())}
        gateway = sum(value for name, value in cpu.items() if name in GATEWAY)
        timing = (
            f"latency p50 {_percentile(leg.latencies, 0.5):.3f} p99 {_percentile(leg.latencies, 0.99):.3f} ms"
        )
        if phase in ("stream", "streams64"):
            timing += f", first token p50 {_percentile(leg.first_tokens, 0.5):.3f} ms"
        if phase == "streams64":
            timing += f", chunk gap p99 {_percentile(leg.gaps, 0.99):.2f} ms"
        per_process = ", ".join(f"{name} {value:.3f}" for name, value in cpu.items())
        failed = f", {len(leg.errors)} errors (first: {leg.errors[0]})" if leg.errors else ""
        lines.append(f"{leg.spec}: {len(leg.latencies)} answers{failed}; {timing}")
        lines.append(f"    CPU ms per request: {per_process}; gateway {gateway:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=_SUMMARY)
    parser.add_argument(
        "trees", nargs=2, metavar="TREE", help="a source tree, optionally +NAME=VALUE settings"
    )
    parser.add_argument("--phase", choices=PHASES, default="c1")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=1000, help="requests per batch (not streams64)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds per batch of streams64")
    args = parser.parse_args(argv)
    legs = [Leg.parse(spec) for spec in args.trees]
    try:
        for leg in legs:
            leg.start()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_measure(legs, args.phase, args.rounds, args.requests, args.window))
    finally:
        for leg in legs:
            leg.stop()
    print(_report(legs, args.phase))
    return 0


if __name__ == "__main__":
    sys.exit(main())
