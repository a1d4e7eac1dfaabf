"""The run as markdown: the machine, the versions, the issue's targets (met or not), and
every number beside the upstream called directly and beside LiteLLM."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.plan import PHASES, Leg
from bench.stats import Measured
from bench.usage import Services

__all__ = ["LLMBUS_SERVICES", "Report"]

LLMBUS_SERVICES = ("edge", "router", "worker", "auth")
"""The services whose memory the RSS target bounds (by name prefix: replicas and worker
families count as themselves)."""

GENERATOR = "load generator"


def _num(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    limit: float
    at_least: bool = False
    """A floor (requests/s ratio) rather than a ceiling."""

    def judge(self, value: float) -> tuple[str, str]:
        if math.isnan(value):
            return "—", "not measured"
        ratio = value / self.limit
        met = value >= self.limit if self.at_least else value <= self.limit
        return f"{ratio:.2f}x the {'floor' if self.at_least else 'limit'}", "met" if met else "not met"


@dataclass
class Report:
    command: str
    started: str
    machine: str
    versions: Mapping[str, str]
    latency_ms: int
    legs: Sequence[Leg]
    unavailable: Mapping[str, str]
    """Legs that were not measured, with the reason."""
    results: Mapping[tuple[str, str], Measured]
    services: Services
    rounds: int

    def get(self, phase: str, leg: str) -> Measured | None:
        return self.results.get((phase, leg))

    def value(self, phase: str, leg: str, read: Callable[[Measured], float]) -> float:
        measured = self.get(phase, leg)
        return read(measured) if measured is not None and measured.ok else math.nan

    def added(self, phase: str, read: Callable[[Measured], float], leg: str = "llmbus") -> float:
        return self.value(phase, leg, read) - self.value(phase, "direct", read)

    # sections

    def header(self) -> list[str]:
        versions = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        lines = [
            "# Benchmark: llmbus beside LiteLLM and the upstream called directly",
            "",
            f"`{self.command}`, started {self.started}.",
            "",
            f"- Machine: {self.machine}; every process below, the load generator included, shares it.",
            f"- Versions: {versions}.",
            "- Upstream: llmbus's mock (`python -m llmbus.mock_upstream`, uvicorn), "
            + (f"{self.latency_ms} ms added latency" if self.latency_ms else "no added latency")
            + ", 20-chunk streamed answers; for the 64-stream phase a second mock sends them"
            " 20 ms apart (`LLMBUS_MOCK_CHUNK_DELAY_MS=20`).",
            f"- {self.rounds} rounds; in each, every phase runs every leg in turn, the order of the"
            " legs rotating from round to round, so drift hits every leg alike.",
        ]
        for leg, reason in self.unavailable.items():
            lines.append(f"- **{leg}: not measured**: {reason}")
        return [*lines, ""]

    def targets(self) -> list[str]:
        rss = [
            (self.services.rss_mb(name), name)
            for name in self.services.trees
            if name.startswith(LLMBUS_SERVICES)
        ]
        worst_rss, worst_name = max(rss) if rss else (math.nan, "")
        rps_ratio = self.value("c32", "llmbus", lambda m: m.rps) / self.value(
            "c32", "litellm", lambda m: m.rps
        )
        rows: list[tuple[Target, float, str]] = [
            (Target("added latency p50, non-streamed, concurrency 1", "≤ 1.5 ms", 1.5),
             self.added("c1", lambda m: m.latency_ms(0.5)), "ms"),
            (Target("added latency p99, non-streamed, concurrency 1", "≤ 5 ms", 5.0),
             self.added("c1", lambda m: m.latency_ms(0.99)), "ms"),
            (Target("requests/s at concurrency 32, llmbus ÷ LiteLLM", "≥ 15x", 15.0, at_least=True),
             rps_ratio, "x"),
            (Target("streamed time to first token p50, llmbus - direct", "≤ 2 ms", 2.0),
             self.added("stream", lambda m: m.ttft_ms(0.5)), "ms"),
            (Target(f"RSS per service, largest ({worst_name or 'none'})", "≤ 80 MB", 80.0), worst_rss, "MB"),
            (Target("64 streams: time to first token p50, llmbus - direct", "≤ 10 ms", 10.0),
             self.added("streams64", lambda m: m.ttft_ms(0.5)), "ms"),
            (Target("64 streams: chunk-gap p99, llmbus - direct", "≤ 10 ms", 10.0),
             self.added("streams64", lambda m: m.gap_ms(0.99)), "ms"),
        ]  # fmt: skip
        lines = [
            "## The issue's targets",
            "",
            _row(["target", "goal", "measured", "against the goal", ""]),
            _row(["---", "---", "---:", "---:", "---"]),
        ]
        for target, value, unit in rows:
            ratio, verdict = target.judge(value)
            shown = "—" if math.isnan(value) else f"{_num(value)}{'' if unit == 'x' else ' '}{unit}"
            lines.append(_row([target.name, target.goal, shown, ratio, f"**{verdict}**"]))
        return [*lines, ""]

    def side_by_side(self) -> list[str]:
        legs = [leg for leg in self.legs]
        lines = [
            "## Side by side",
            "",
            _row(["", *(leg.title for leg in legs)]),
            _row(["---", *("---:" for _ in legs)]),
        ]

        def line(label: str, phase: str, read: Callable[[Measured], float], digits: int = 2) -> None:
            lines.append(_row([label, *(_num(self.value(phase, leg.name, read), digits) for leg in legs)]))

        def added(label: str, phase: str, read: Callable[[Measured], float]) -> None:
            cells = ["—" if leg.name == "direct" else _num(self.added(phase, read, leg.name)) for leg in legs]
            lines.append(_row([label, *cells]))

        p50: Callable[[Measured], float] = lambda m: m.latency_ms(0.5)  # noqa: E731
        p99: Callable[[Measured], float] = lambda m: m.latency_ms(0.99)  # noqa: E731
        ttft50: Callable[[Measured], float] = lambda m: m.ttft_ms(0.5)  # noqa: E731
        gap99: Callable[[Measured], float] = lambda m: m.gap_ms(0.99)  # noqa: E731
        line("**non-streamed, concurrency 1**: latency p50 (ms)", "c1", p50)
        line("latency p99 (ms)", "c1", p99)
        added("added latency p50 (ms)", "c1", p50)
        added("added latency p99 (ms)", "c1", p99)
        line("requests/s", "c1", lambda m: m.rps, 0)
        line("**non-streamed, concurrency 32**: requests/s", "c32", lambda m: m.rps, 0)
        line("latency p50 (ms)", "c32", p50)
        line("latency p99 (ms)", "c32", p99)
        added("added latency p50 (ms)", "c32", p50)
        line("**streamed, 20 chunks, concurrency 1**: time to first token p50 (ms)", "stream", ttft50)
        line("time to first token p99 (ms)", "stream", lambda m: m.ttft_ms(0.99))
        added("added time to first token p50 (ms)", "stream", ttft50)
        line("total time p50 (ms)", "stream", p50)
        line("total time p99 (ms)", "stream", p99)
        line("**64 streams, chunks 20 ms apart**: time to first token p50 (ms)", "streams64", ttft50)
        line("time to first token p99 (ms)", "streams64", lambda m: m.ttft_ms(0.99))
        line("chunk gap p50 (ms)", "streams64", lambda m: m.gap_ms(0.5))
        line("chunk gap p99 (ms)", "streams64", gap99)
        added("added chunk gap p99 (ms)", "streams64", gap99)
        line("total time p50 (ms)", "streams64", p50)
        lines.append(
            _row([
                "streams completed in the windows",
                *(self._completed(leg.name) for leg in legs),
            ])
        )  # fmt: skip
        lines.append(_row(["**errors** (of requests sent)", *(self._errors(leg.name) for leg in legs)]))
        return [*lines, ""]

    def _completed(self, leg: str) -> str:
        measured = self.get("streams64", leg)
        if measured is None:
            return "—"
        direct = self.get("streams64", "direct")
        share = ""
        if leg != "direct" and direct is not None and direct.completed_in_window:
            share = f" ({measured.completed_in_window / direct.completed_in_window:.0%} of direct)"
        return f"{measured.completed_in_window:,} in {measured.window:.0f} s{share}"

    def _errors(self, leg: str) -> str:
        sent = errors = 0
        kinds: dict[str, int] = {}
        for phase in PHASES:
            measured = self.get(phase.key, leg)
            if measured is None:
                continue
            sent += measured.requests
            for kind, count in measured.errors.items():
                errors += count
                kinds[kind] = kinds.get(kind, 0) + count
        if not sent:
            return "—"
        detail = "; ".join(f"{count}x {kind}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]))
        return f"{errors:,} of {sent:,}" + (f" ({detail})" if detail else "")

    def cpu(self) -> list[str]:
        lines = [
            "## CPU per request (ms), by process",
            "",
            "From `utime + stime` in /proc/<pid>/stat over each leg's batches, divided by the"
            " requests of those batches. Each leg's rows are the processes on its path; `mock`"
            " is the paced mock in the 64-stream phase.",
            "",
            _row(["leg", "process", *(phase.title for phase in PHASES)]),
            _row(["---", "---", *("---:" for _ in PHASES)]),
        ]
        for leg in self.legs:
            gateway = [p for p in leg.processes if p not in ("mock", GENERATOR)]
            for process in [*leg.processes, "gateway total"] if gateway else leg.processes:
                cells = []
                for phase in PHASES:
                    measured = self.get(phase.key, leg.name)
                    if measured is None:
                        cells.append("—")
                    elif process == "gateway total":
                        cells.append(_num(sum(measured.cpu_ms_per_request(p) for p in gateway), 3))
                    else:
                        cells.append(_num(measured.cpu_ms_per_request(process), 3))
                name = f"**{process}**" if process == "gateway total" else process
                lines.append(_row([leg.label, name, *cells]))
        return [*lines, ""]

    def memory(self) -> list[str]:
        lines = [
            "## Memory and idle CPU",
            "",
            "RSS: the largest `VmRSS` (/proc/<pid>/status) of any one process of the service,"
            " read before and after every batch; peak: the kernel's `VmHWM`, start-up included."
            " Idle CPU: what the process spent, with no request in flight, over"
            " a few seconds after the warm-up (timers, health checks, pings); at concurrency 1 it"
            " is part of the CPU per request above.",
            "",
            _row(
                ["process", "RSS, max over the run (MB)", "peak (VmHWM, MB)", "processes", "idle CPU (ms/s)"]
            ),
            _row(["---", "---:", "---:", "---:", "---:"]),
        ]
        for name in self.services.trees:
            lines.append(
                _row([
                    name,
                    _num(self.services.rss_mb(name), 1),
                    _num(self.services.hwm_mb(name), 1),
                    str(self.services.processes(name)),
                    _num(self.services.idle.get(name, math.nan) * 1000, 1),
                ])
            )  # fmt: skip
        return [*lines, ""]

    def generator(self) -> list[str]:
        measured = self.get("c32", "direct")
        if measured is None or not measured.ok:
            return []
        elapsed = sum(b.elapsed for b in measured.batches)
        busy = measured.cpu[GENERATOR] / elapsed if elapsed else math.nan
        mock_busy = measured.cpu["mock"] / elapsed if elapsed else math.nan
        limit = (
            "the generator had time to spare, so the servers set the pace"
            if busy < 0.8
            else "**the generator was nearly saturated**: the direct leg's numbers are its own limit"
        )
        return [
            "## The load generator",
            "",
            f"Calling the mock directly at concurrency 32, it reached {_num(measured.rps, 0)} requests/s"
            f" using {_num(busy * 100, 0)}% of one core"
            f" ({_num(measured.cpu_ms_per_request(GENERATOR) * 1000, 0)} µs per request), the mock"
            f" {_num(mock_busy * 100, 0)}%: {limit}.",
            "",
        ]

    def markdown(self) -> str:
        sections = [
            self.header(),
            self.targets(),
            self.side_by_side(),
            self.cpu(),
            self.memory(),
            self.generator(),
        ]
        return "\n".join(line for section in sections for line in section).rstrip() + "\n"
