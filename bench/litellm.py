"""LiteLLM's proxy as the peer gateway: installed into an environment of its own
(`bench/.litellm`, kept between runs, ignored by git) at a pinned version, and configured
as LiteLLM's "Best Practices for Production" page says: a master key, one uvicorn
worker, no debug logging (`set_verbose: false`, `LITELLM_LOG=ERROR`, JSON logs),
`LITELLM_MODE=PRODUCTION`, no database (so no spend or error logs written), the
`openai/` provider pointed at the bench's mock.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from llmbus.testing.processes import Process, free_port

__all__ = ["PIN", "LiteLLM", "install"]

PIN = "1.108.7"
"""The newest 1.x release whose `[proxy]` extra resolves from the package index here
(1.108.8 and later pin `litellm-enterprise`, `litellm-proxy-extras` or `litellm-proxy`
releases the index does not have)."""

HOME = Path(__file__).with_name(".litellm")


def _uv() -> str | None:
    return shutil.which("uv") or next((str(p) for p in (Path.home() / ".local/bin/uv",) if p.exists()), None)


def installed_version(home: Path = HOME) -> str | None:
    python = home / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        return None
    return probe.stdout.strip() or None


def install(pin: str = PIN, home: Path = HOME) -> str:
    """The environment's `litellm` executable, installing the pinned release first if the
    environment lacks it. Raises RuntimeError saying why when it cannot."""
    executable = home / "bin" / "litellm"
    if executable.exists() and installed_version(home) == pin:
        return str(executable)
    uv = _uv()
    if uv is None:
        raise RuntimeError("uv is not installed (make setup installs it)")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    print(f"bench: installing litellm[proxy]=={pin} into {home} (once) ...", flush=True)
    steps = [
        [uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(home)],
        [uv, "pip", "install", "--quiet", "--python", str(home / "bin" / "python"), f"litellm[proxy]=={pin}"],
    ]
    for argv in steps:
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"`{' '.join(argv[:3])}` failed: {exc}") from exc
        if done.returncode != 0:
            lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            last = lines[-1] if lines else f"exit status {done.returncode}"
            reason = next((line for line in lines if line.startswith(("cause:", "error:"))), last)
            raise RuntimeError(f"`uv {' '.join(argv[1:3])}` failed: {reason}")
    if not executable.exists():
        raise RuntimeError(f"the install left no {executable}")
    return str(executable)


@dataclass
class LiteLLM:
    """The proxy, serving `models` (client name → (upstream name, base URL))."""

    executable: str
    log_dir: Path
    models: dict[str, tuple[str, str]]
    upstream_key: str
    port: int = 0
    master_key: str = ""
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = ["model_list:"]
        for name, (upstream, base_url) in self.models.items():
            lines += [
                f"  - model_name: {name}",
                "    litellm_params:",
                f"      model: openai/{upstream}",
                f"      api_base: {base_url}",
                f"      api_key: {self.upstream_key}",
            ]
        lines += [
            "general_settings:",
            "  master_key: os.environ/LITELLM_MASTER_KEY",
            "  disable_spend_logs: true",
            "  disable_error_logs: true",
            "litellm_settings:",
            "  request_timeout: 600",
            "  set_verbose: false",
            "  json_logs: true",
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> LiteLLM:
        self.port = self.port or free_port()
        self.master_key = self.master_key or f"sk-bench-{secrets.token_hex(16)}"
        config = self.log_dir / "litellm.yaml"
        config.write_text(self.config())
        argv = [
            self.executable,
            "--config", str(config),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--num_workers", "1",
        ]  # fmt: skip
        env = {
            "LITELLM_MASTER_KEY": self.master_key,
            "LITELLM_MODE": "PRODUCTION",
            "LITELLM_LOG": "ERROR",
            # The model cost map ships with the package; do not fetch it at start.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        self.process = Process("litellm", argv, env=env, log_path=self.log_dir / "litellm.log").start()
        return self

    @property
    def readiness_url(self) -> str:
        return f"{self.url}/health/readiness"

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
