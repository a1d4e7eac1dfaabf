"""Outside development mode a service refuses to start with the example file's keys or
without a NATS password, and says which setting to change (the real entry points, as
processes: nothing else would show that they check before serving)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LLMBUS_")}
    return subprocess.run(
        [sys.executable, "-m", f"llmbus.{module}"],
        env={
            **clean,
            "LLMBUS_CONFIG": str(ROOT / "config.example.yaml"),
            # Nothing listens here: a service that got past its checks would hang on it.
            "LLMBUS_NATS_URL": "nats://127.0.0.1:1",
            "OTEL_TRACES_EXPORTER": "none",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("module", ["edge", "router"])
def test_a_service_refuses_the_example_keys_and_an_open_bus(module: str) -> None:
    result = _start(module)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "refusing to start outside development mode" in output
    assert "set LLMBUS_CLIENT_KEY" in output
    assert "set LLMBUS_MANAGEMENT_KEY" in output
    assert "LLMBUS_NATS_PASSWORD (or LLMBUS_NATS_PASSWORD_FILE) is not set" in output
    assert "sk-llmbus-dev" not in output


def test_a_service_with_its_own_keys_still_needs_a_bus_password(tmp_path: Path) -> None:
    key = tmp_path / "client-key"
    key.write_text("sk-team-key-0123456789\n")
    result = _start("router", LLMBUS_CLIENT_KEY_FILE=str(key), LLMBUS_MANAGEMENT_KEY="mk-team-key-0123456789")
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "LLMBUS_NATS_PASSWORD (or LLMBUS_NATS_PASSWORD_FILE) is not set" in output
    assert "LLMBUS_CLIENT_KEY" not in output
