"""`make bench`: the upstream called directly, llmbus and LiteLLM's proxy, side by side in
one run, against the same mock upstream.

    python -m bench [--requests 1000] [--rounds 3] [--window 4] [--latency-ms 0]
                    [--skip-litellm] [--only direct,llmbus] [--output bench/last-run.md]

Writes the report to bench/last-run.md (ignored by git) and prints it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from bench import litellm as peer
from bench.load import run_batch, run_window
from bench.machine import machine, versions
from bench.plan import LEG_NAMES, PHASES, Leg, Phase
from bench.report import GENERATOR, Report
from bench.stats import Measured
from bench.usage import Services
from llmbus.devstack.upstreams import mock_environment
from llmbus.testing import Stack, StackPorts
from llmbus.testing.processes import Process, free_port, wait_for_http

HERE = Path(__file__).resolve().parent
LLMBUS_KEY = "sk-llmbus-dev"
MOCK_KEY = "sk-mock-openai"
PACED_KEY = "sk-mock-paced"
MODEL = "gpt-4o-mini"
PACED_MODEL = "gpt-4o-paced"
CHUNKS = 20
CHUNK_DELAY_MS = 20
IDLE_SECONDS = 3.0
PROCESS_NAMES = {"nats": "nats-server", "mock-upstream": "mock"}
"""The stack's names for the processes it starts → the names in the report."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=1000,
        help="requests per leg at concurrency 1 and streamed (4x that at concurrency 32), over all rounds",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every phase on every leg")
    parser.add_argument(
        "--batch-seconds", type=float, default=8.0, help="longest a leg runs in one phase of one round"
    )
    parser.add_argument("--window", type=float, default=4.0, help="seconds of the 64-stream phase, per round")
    parser.add_argument("--latency-ms", type=int, default=0, help="the mock's delay before every answer")
    parser.add_argument("--skip-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--only", default="", help=f"comma-separated legs to run, of {','.join(LEG_NAMES)}")
    parser.add_argument("--output", default=str(HERE / "last-run.md"))
    args = parser.parse_args(argv)
    legs = [name.strip() for name in args.only.split(",") if name.strip()] or list(LEG_NAMES)
    unknown = set(legs) - set(LEG_NAMES)
    if unknown:
        parser.error(f"--only: unknown legs {', '.join(sorted(unknown))} (known: {', '.join(LEG_NAMES)})")
    if args.skip_litellm and "litellm" in legs:
        legs.remove("litellm")
    args.legs = legs
    return args


def _mock(name: str, port: int, env: dict[str, str], log_dir: Path) -> Process:
    process = Process(
        name,
        [sys.executable, "-m", "llmbus.mock_upstream"],
        env={**env, "LLMBUS_MOCK_PORT": str(port), "PYTHONUNBUFFERED": "1"},
        log_path=log_dir / f"{name}.log",
    ).start()
    wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
    return process


async def _measure(
    legs: list[Leg], args: argparse.Namespace, services: Services
) -> dict[tuple[str, str], Measured]:
    results: dict[tuple[str, str], Measured] = defaultdict(Measured)
    per_round = max(1, math.ceil(args.requests / args.rounds))

    async def batch(phase: Phase, leg: Leg, *, warm: bool = False) -> None:
        target = leg.target(phase)
        before = services.snapshot()
        if warm:
            done = await run_batch(target, min(phase.concurrency, 8), 50, 10.0)
        elif phase.paced:
            done = await run_window(target, phase.concurrency, args.window)
        else:
            done = await run_batch(target, phase.concurrency, per_round * phase.weight, args.batch_seconds)
        cpu = services.cpu_since(before)
        cpu["mock"] = cpu.get("mock", 0.0) + cpu.pop("mock (paced)", 0.0)
        errors = [s.error for s in done.samples if s.error]
        if warm:
            if errors:
                print(
                    f"  warm-up {leg.name} {phase.key}: {len(errors)} errors, first: {errors[0]}", flush=True
                )
            return
        measured = Measured()
        measured.add(done, cpu)
        results[(phase.key, leg.name)].add(done, cpu)
        extra = f", {done.completed_in_window} completed in the window" if phase.paced else ""
        print(
            f"  {phase.key:9} {leg.name:8} {measured.requests:5} requests {measured.rps:8.0f}/s"
            f"  p50 {measured.latency_ms(0.5):8.2f} ms  p99 {measured.latency_ms(0.99):8.2f} ms"
            + (f"  ttft p50 {measured.ttft_ms(0.5):7.2f} ms" if phase.stream else "")
            + (f"  gap p99 {measured.gap_ms(0.99):6.2f} ms" if phase.paced else "")
            + extra
            + (f"  {len(errors)} errors (first: {errors[0]})" if errors else ""),
            flush=True,
        )
        await asyncio.sleep(0.2)  # let the servers settle between batches

    print("warming up every leg ...", flush=True)
    for leg in legs:
        for phase in PHASES:
            await batch(phase, leg, warm=True)
    # What each process spends with nothing to do (timers, health checks, pings).
    before = services.snapshot()
    await asyncio.sleep(IDLE_SECONDS)
    services.idle = {name: used / IDLE_SECONDS for name, used in services.cpu_since(before).items()}
    for round_ in range(args.rounds):
        order = legs[round_ % len(legs) :] + legs[: round_ % len(legs)]
        print(f"round {round_ + 1}/{args.rounds}", flush=True)
        for phase in PHASES:
            for leg in order:
                await batch(phase, leg)
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    command = "python -m bench" + (" " + shlex.join(argv if argv is not None else sys.argv[1:])).rstrip()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    log_dir = Path(tempfile.mkdtemp(prefix="llmbus-bench-"))
    print(f"bench: logs in {log_dir}", flush=True)
    unavailable: dict[str, str] = {}
    if args.skip_litellm:
        unavailable["LiteLLM"] = "left out (`--skip-litellm`)"
    executable = ""
    if "litellm" in args.legs:
        try:
            executable = peer.install()
        except RuntimeError as exc:
            unavailable["LiteLLM"] = f"could not be installed: {exc}"
            args.legs.remove("litellm")

    at_start = versions(peer.installed_version() or f"not installed (pin {peer.PIN})")
    mock_env = {
        "LLMBUS_MOCK_CHUNKS": str(CHUNKS),
        "LLMBUS_MOCK_LATENCY_MS": str(args.latency_ms),
        "LLMBUS_LOG_LEVEL": "warning",
    }
    services = Services()
    services.watch(GENERATOR, os.getpid(), whole_tree=False)
    stack: Stack | None = None
    gateway: peer.LiteLLM | None = None
    mocks: list[Process] = []
    legs: list[Leg] = []
    try:
        paced_port = free_port()
        paced_url = f"http://127.0.0.1:{paced_port}"
        mocks.append(
            _mock(
                "mock-paced",
                paced_port,
                {**mock_env, "LLMBUS_MOCK_CHUNK_DELAY_MS": str(CHUNK_DELAY_MS)},
                log_dir,
            )
        )
        ports = StackPorts.pick(prefer_defaults=False)
        mock_url = f"http://127.0.0.1:{ports.mock}"
        if executable:
            # Started first: it takes the longest to be ready.
            gateway = peer.LiteLLM(
                executable,
                log_dir,
                models={MODEL: (MODEL, f"{mock_url}/v1"), PACED_MODEL: (PACED_MODEL, f"{paced_url}/v1")},
                upstream_key=MOCK_KEY,
            ).start()
        if "llmbus" in args.legs:
            stack = Stack(
                config=HERE / "config.yaml",
                log_dir=log_dir,
                ports=ports,
                env={
                    **mock_environment(mock_url, log_dir / "state", {}),
                    **mock_env,
                    "BENCH_PACED_URL": f"{paced_url}/v1",
                    "BENCH_PACED_KEY": PACED_KEY,
                    # The dev key of the config: accepted in development mode only.
                    "LLMBUS_DEV": "1",
                },
            ).start()
            for name, process in stack.processes.items():
                assert process.popen is not None
                services.watch(PROCESS_NAMES.get(name, name), process.popen.pid)
        else:
            mocks.append(_mock("mock", ports.mock, mock_env, log_dir))
        for mock in mocks:
            assert mock.popen is not None
            services.watch("mock (paced)" if mock.name == "mock-paced" else "mock", mock.popen.pid)
        if gateway is not None:
            assert gateway.process is not None
            try:
                wait_for_http(gateway.readiness_url, timeout=180, process=gateway.process)
                assert gateway.process.popen is not None
                services.watch("litellm", gateway.process.popen.pid)
            except (RuntimeError, TimeoutError) as exc:
                unavailable["LiteLLM"] = (
                    f"did not start: {str(exc).splitlines()[0]} (log: {gateway.process.log_path})"
                )
                args.legs.remove("litellm")
                gateway.stop()
                gateway = None
        common = ["mock", GENERATOR]
        for name in args.legs:
            if name == "direct":
                legs.append(
                    Leg("direct", "direct", f"{mock_url}/v1/chat/completions",
                        f"{paced_url}/v1/chat/completions", MOCK_KEY, MODEL, PACED_MODEL, common)
                )  # fmt: skip
            elif name == "llmbus" and stack is not None:
                own = [PROCESS_NAMES.get(n, n) for n in stack.processes if n != "mock-upstream"]
                legs.append(
                    Leg("llmbus", "llmbus", f"{stack.base_url}/v1/chat/completions",
                        f"{stack.base_url}/v1/chat/completions", LLMBUS_KEY, MODEL, PACED_MODEL, own + common)
                )  # fmt: skip
            elif name == "litellm" and gateway is not None:
                version = peer.installed_version() or peer.PIN
                legs.append(
                    Leg("litellm", f"LiteLLM {version} (1 worker, production settings)",
                        f"{gateway.url}/v1/chat/completions", f"{gateway.url}/v1/chat/completions",
                        gateway.master_key, MODEL, PACED_MODEL, ["litellm", *common])
                )  # fmt: skip
        if not legs:
            print("bench: no leg to measure", file=sys.stderr)
            return 1
        began = time.monotonic()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(_measure(legs, args, services))
        print(f"measured in {time.monotonic() - began:.0f} s", flush=True)
    finally:
        if stack is not None:
            stack.stop()
        if gateway is not None:
            gateway.stop()
        for mock in mocks:
            mock.stop()
    report = Report(
        command=command,
        started=started,
        machine=machine(),
        versions=at_start,
        latency_ms=args.latency_ms,
        legs=legs,
        unavailable=unavailable,
        results=results,
        services=services,
        rounds=args.rounds,
    )
    text = report.markdown()
    Path(args.output).write_text(text)
    print(text)
    print(f"bench: written to {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
