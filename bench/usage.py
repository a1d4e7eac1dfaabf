"""CPU time and memory of the services, read from /proc.

Each service is a process tree (a service that starts workers of its own is counted
whole): CPU is the sum of `utime + stime` (/proc/<pid>/stat) over the tree, RSS the
largest `VmRSS` (/proc/<pid>/status) of any one process in it, sampled between batches,
and `VmHWM` the kernel's own peak of VmRSS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Services", "children_of"]

_TICK = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def children_of(pid: int) -> list[int]:
    """`pid` and all its descendants (those alive now)."""
    found = [pid]
    index = 0
    while index < len(found):
        parent = found[index]
        index += 1
        try:
            tasks = (_PROC / str(parent) / "task").iterdir()
            for task in tasks:
                text = (task / "children").read_text()
                found.extend(int(child) for child in text.split())
        except OSError:
            continue
    return found


def _cpu_seconds(pid: int) -> float | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count fields after its closing ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class _Tree:
    root: int
    whole_tree: bool = True
    rss_kb: int = 0
    hwm_kb: int = 0
    processes: int = 1

    def read(self) -> dict[int, float]:
        now: dict[int, float] = {}
        pids = children_of(self.root) if self.whole_tree else [self.root]
        self.processes = max(self.processes, len(pids))
        for pid in pids:
            seconds = _cpu_seconds(pid)
            if seconds is not None:
                now[pid] = seconds
            self.rss_kb = max(self.rss_kb, _status_kb(pid, "VmRSS:"))
            self.hwm_kb = max(self.hwm_kb, _status_kb(pid, "VmHWM:"))
        return now


@dataclass
class Services:
    """The services being watched, by name; `snapshot()` before and after a batch,
    `cpu_since()` the seconds each used in between."""

    trees: dict[str, _Tree] = field(default_factory=dict)
    idle: dict[str, float] = field(default_factory=dict)
    """CPU seconds per second of each process while no request was in flight."""

    def watch(self, name: str, pid: int, *, whole_tree: bool = True) -> None:
        self.trees[name] = _Tree(pid, whole_tree)

    def snapshot(self) -> dict[str, dict[int, float]]:
        return {name: tree.read() for name, tree in self.trees.items()}

    def cpu_since(self, before: Mapping[str, Mapping[int, float]]) -> dict[str, float]:
        after = self.snapshot()
        used: dict[str, float] = {}
        for name, now in after.items():
            then = before.get(name, {})
            # A process born during the batch counts from 0.
            used[name] = sum(seconds - then.get(pid, 0.0) for pid, seconds in now.items())
        return used

    def rss_mb(self, name: str) -> float:
        return self.trees[name].rss_kb / 1024

    def hwm_mb(self, name: str) -> float:
        return self.trees[name].hwm_kb / 1024

    def processes(self, name: str) -> int:
        return self.trees[name].processes
