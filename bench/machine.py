"""What the numbers were measured on: the machine and the versions of everything."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
from pathlib import Path

from llmbus.testing.processes import MissingBinary, find_binary

__all__ = ["machine", "versions"]


def _code_dir() -> Path:
    """Where the llmbus code that the stack runs lives (PYTHONPATH may point elsewhere
    than this checkout, e.g. at a worktree of an older commit)."""
    spec = importlib.util.find_spec("llmbus.edge")
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parent
    return Path(__file__).resolve().parent


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def machine() -> str:
    cpu = "unknown CPU"
    memory = "? GiB"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {memory} memory, {platform.system()} {platform.release()}"


def _binary_version(name: str, argv: list[str], word: int) -> str:
    try:
        path = find_binary(name)
    except MissingBinary:
        return "not installed"
    words = _run([path, *argv]).split()
    return words[word].removeprefix("v=").removeprefix("v") if len(words) > word else "?"


def versions(litellm: str) -> dict[str, str]:
    code = _code_dir()
    commit = _run(["git", "rev-parse", "--short", "HEAD"], code) or "?"
    if _run(["git", "status", "--porcelain", "--untracked-files=no"], code):
        commit += " (with uncommitted changes)"
    return {
        "python": platform.python_version(),
        "llmbus": commit,
        "litellm": litellm,
        "nats-server": _binary_version("nats-server", ["--version"], 1),
        "redis": _binary_version("redis-server", ["--version"], 2),
    }
