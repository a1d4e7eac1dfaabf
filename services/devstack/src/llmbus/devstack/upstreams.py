"""Which upstream each provider of `config.example.yaml` talks to under `make run`.

The example file reads every upstream's address and credential from the environment
and defaults to the real provider. `make run` serves the providers that the
environment leaves unconfigured from the built-in mock upstream, and leaves alone any
provider whose credential the environment sets: with `OPENAI_API_KEY=sk-...` the
`openai` provider reaches OpenAI itself (or `OPENAI_BASE_URL`, when that is set too).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["MOCKED", "Upstream", "mock_environment"]


@dataclass(frozen=True)
class Upstream:
    """One provider's variables in `config.example.yaml`: the credential that decides
    whether the environment configures it, and what the mock needs besides."""

    provider: str
    credential: str
    mock_credential: str
    urls: tuple[tuple[str, str], ...]
    """(variable, path on the mock) pairs: where its API or its token service lives."""


MOCKED = (
    Upstream("openai", "OPENAI_API_KEY", "sk-mock-openai", (("OPENAI_BASE_URL", ""),)),
    Upstream("claude", "CLAUDE_API_KEY", "sk-ant-mock-claude", (("CLAUDE_BASE_URL", ""),)),
    Upstream("gemini", "GEMINI_API_KEY", "mock-gemini-key", (("GEMINI_BASE_URL", ""),)),
    # The Copilot API's own address comes with each minted token (`endpoints.api`).
    Upstream("copilot", "COPILOT_GITHUB_TOKEN", "gho_mockcopilotgithubtoken", (("COPILOT_GITHUB_API", ""),)),
    Upstream("kiro", "KIRO_TOKEN_FILE", "", (("KIRO_BASE_URL", ""), ("KIRO_AUTH_URL", ""))),
)


def mock_environment(mock_url: str, state_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Variables pointing every provider the environment leaves unconfigured at the mock."""
    out: dict[str, str] = {}
    for upstream in MOCKED:
        if environ.get(upstream.credential):
            continue  # the user's own credential: the real provider (or the user's URL)
        credential = upstream.mock_credential or str(_kiro_token_file(state_dir))
        out[upstream.credential] = credential
        for variable, path in upstream.urls:
            if not environ.get(variable):
                out[variable] = mock_url + path
    return out


def _kiro_token_file(state_dir: Path) -> Path:
    """A token file as the Kiro IDE writes it, already expired: the first request refreshes
    it at the mock's `/refreshToken`, as a real one would be after an hour."""
    path = state_dir / "kiro-auth-token.json"
    expired = datetime.fromtimestamp(time.time() - 60, UTC).isoformat().replace("+00:00", "Z")
    token = {
        "accessToken": "aoa-mock-expired-access-token",
        "refreshToken": "aor-mock-refresh-token",
        "expiresAt": expired,
        "authMethod": "social",
        "provider": "Google",
        "profileArn": "arn:aws:codewhisperer:us-east-1:000000000000:profile/MOCKPROFILE",
        "region": "us-east-1",
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(token, indent=2))
    path.chmod(0o600)
    return path
