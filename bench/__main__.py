"""Measure what the gateway adds: the same streamed and whole requests, sent directly to
the mock upstream and through llmbus, at several concurrency levels, in one run.

    python -m bench [--requests 400] [--concurrency 1,16,64] [--chunks 20]

Prints a table and writes it to bench/results.md."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx2

from llmbus.devstack.upstreams import mock_environment
from llmbus.testing import Stack, StackPorts

KEY = "sk-llmbus-dev"
STREAM_MODES = (True, False)
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"benchmark"}]%s}'


async def _one(
    client: httpx2.AsyncClient, url: str, headers: dict[str, str], stream: bool
) -> tuple[float, float]:
    body = BODY % (b',"stream":true' if stream else b"")
    began = time.perf_counter()
    first = 0.0
    async with client.stream("POST", url, content=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {await response.aread()!r}")
        async for _ in response.aiter_raw():
            if not first:
                first = time.perf_counter() - began
    return time.perf_counter() - began, first


async def _run(
    url: str, headers: dict[str, str], total: int, concurrency: int, stream: bool
) -> dict[str, float]:
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(limits=limits, timeout=60) as client:
        for _ in range(min(20, total)):
            await _one(client, url, headers, stream)
        queue: asyncio.Queue[None] = asyncio.Queue()
        for _ in range(total):
            queue.put_nowait(None)
        latencies: list[float] = []
        firsts: list[float] = []

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                latency, first = await _one(client, url, headers, stream)
                latencies.append(latency)
                firsts.append(first)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    firsts.sort()
    return {
        "rps": total / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p95": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "ttfb50": statistics.median(firsts) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--output", default=str(Path(__file__).with_name("results.md")))
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    log_dir = Path(tempfile.mkdtemp(prefix="llmbus-bench-"))
    ports = StackPorts.pick(prefer_defaults=False)
    stack = Stack(
        config=Path("config.example.yaml").resolve(),
        log_dir=log_dir,
        ports=ports,
        env={
            **mock_environment(f"http://127.0.0.1:{ports.mock}", log_dir / "state", {}),
            "LLMBUS_MOCK_CHUNKS": str(args.chunks),
            "LLMBUS_LOG_LEVEL": "warning",
            # The example file's keys: accepted in development mode only.
            "LLMBUS_DEV": "1",
        },
    )
    stack.start()
    rows = []
    try:
        direct = (f"{stack.mock_url}/v1/chat/completions", {"Authorization": "Bearer sk-mock"})
        gateway = (f"{stack.base_url}/v1/chat/completions", {"Authorization": f"Bearer {KEY}"})
        for stream in STREAM_MODES:
            for concurrency in levels:
                base = asyncio.run(_run(*direct, args.requests, concurrency, stream))
                via = asyncio.run(_run(*gateway, args.requests, concurrency, stream))
                rows.append((stream, concurrency, base, via))
                print(
                    f"stream={stream!s:5} c={concurrency:3}"
                    f"  direct {base['rps']:7.0f} rps p50 {base['p50']:6.2f} ms"
                    f"  | llmbus {via['rps']:7.0f} rps p50 {via['p50']:6.2f} ms p95 {via['p95']:6.2f} ms"
                    f"  added p50 {via['p50'] - base['p50']:6.2f} ms",
                    flush=True,
                )
    finally:
        stack.stop()
    lines = [
        "# Benchmark results",
        "",
        f"`python -m bench --requests {args.requests} --concurrency {args.concurrency}"
        f" --chunks {args.chunks}`",
        "on this machine (2 cores); every service and the mock upstream share those cores.",
        "",
        "| mode | concurrency | direct rps | direct p50 ms | llmbus rps | llmbus p50 ms"
        " | llmbus p95 ms | added p50 ms | llmbus TTFB p50 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stream, concurrency, base, via in rows:
        added = via["p50"] - base["p50"]
        lines.append(
            f"| {'stream' if stream else 'whole'} | {concurrency} | {base['rps']:.0f} | {base['p50']:.2f}"
            f" | {via['rps']:.0f} | {via['p50']:.2f} | {via['p95']:.2f} | {added:.2f} | {via['ttfb50']:.2f} |"
        )
    Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
