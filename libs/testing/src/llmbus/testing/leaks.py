"""The secrets a test run handed out, and a scan of log files for any of them.

Whatever gives a process a secret (a stack's environment and config, the NATS passwords
of a run, the tokens the mock upstream minted) adds it to `SECRETS`; at the end of the
run the suite scans every log file it wrote and fails on any line that holds one. Shapes
that only the gateway mints at run time (client keys created over the API) are found by
pattern, since nobody hands them to the test in advance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SECRETS", "Leak", "SecretBook"]

_SECRET_NAME = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET)$")
"""Environment variables whose value is a secret (`OPENAI_API_KEY`, `LLMBUS_NATS_PASSWORD`);
`*_FILE` and `*_URL` name where one lives, not the secret."""

_TOKEN_FIELDS = ("accessToken", "refreshToken", "clientSecret", "access_token", "refresh_token", "token")

MINTED_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"sk-llmbus-[A-Za-z0-9_-]{32,}", "a client key minted by the gateway"),
)


@dataclass(frozen=True, slots=True)
class Leak:
    """A log line holding a secret; `text` is the line with the secret masked."""

    path: Path
    line: int
    label: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.label}: {self.text}"


class SecretBook:
    """Secrets (value → what it is) and the patterns of minted ones."""

    MIN_LENGTH = 8
    """Shorter values (`k1`, `none`) would match everywhere; tests use longer ones."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}
        self.configs: list[tuple[str, dict[str, str], str]] = []
        """(text, environment, label) of each config file a stack ran on, as it was then:
        the suite reads their keys with the config loader (this package does not use it)."""
        self._patterns: list[tuple[re.Pattern[str], str]] = [
            (re.compile(pattern), label) for pattern, label in MINTED_PATTERNS
        ]

    def add(self, value: str, label: str) -> None:
        if len(value) >= self.MIN_LENGTH:
            self._labels.setdefault(value, label)

    def add_env(self, env: Mapping[str, str], source: str) -> None:
        """Every secret-named variable of `env`, and the tokens in the token files it names."""
        for name, value in env.items():
            if _SECRET_NAME.search(name):
                self.add(value, f"{name} of {source}")
            elif name.endswith("TOKEN_FILE") and value:
                self.add_token_file(Path(value), f"{name} of {source}")

    def add_config(self, text: str, env: Mapping[str, str], label: str) -> None:
        self.configs.append((text, dict(env), label))

    def add_token_file(self, path: Path, label: str) -> None:
        """The tokens in a JSON token file (Kiro's), if it is there."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            for field in _TOKEN_FIELDS:
                value = data.get(field)
                if isinstance(value, str):
                    self.add(value, f"{field} in {label}")

    def __contains__(self, value: object) -> bool:
        return value in self._labels

    def __len__(self) -> int:
        return len(self._labels)

    def scan(self, roots: Iterable[Path], glob: str = "*.log") -> list[Leak]:
        """Every line of every `glob` file below `roots` that holds a secret."""
        known = sorted(self._labels, key=len, reverse=True)
        alternation = re.compile("|".join(re.escape(value) for value in known)) if known else None
        leaks: list[Leak] = []
        for path in _files(roots, glob):
            with path.open(encoding="utf-8", errors="replace") as lines:
                for number, line in enumerate(lines, 1):
                    text = line.rstrip("\n")
                    found = self._leaks_in(path, number, text, alternation)
                    decoded = _json_values(text)
                    if not found and decoded is not None:
                        # A JSON log line: its values unescaped (a secret with a `"`, `\`
                        # or a control character in it is escaped in the raw line).
                        found = self._leaks_in(path, number, decoded, alternation)
                    leaks += found
        return leaks

    def _leaks_in(
        self, path: Path, number: int, line: str, alternation: re.Pattern[str] | None
    ) -> list[Leak]:
        found: list[tuple[re.Pattern[str], str]] = []
        if alternation is not None:
            for match in alternation.finditer(line):
                found.append((re.compile(re.escape(match.group())), self._labels[match.group()]))
        for pattern, label in self._patterns:
            if pattern.search(line):
                found.append((pattern, label))
        if not found:
            return []
        masked = line
        for pattern, label in found:
            masked = pattern.sub(f"<{label}>", masked)
        return [Leak(path, number, label, _shorten(masked)) for _, label in found]


def _json_values(line: str) -> str | None:
    """The string values of a JSON-object log line (one JSON object per line), joined
    by spaces; None for a line that is not one."""
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    values: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(data)
    return " ".join(values)


def _files(roots: Iterable[Path], glob: str) -> Iterator[Path]:
    seen: set[Path] = set()
    for root in roots:
        if root.is_file():
            candidates: Iterable[Path] = [root]
        elif root.is_dir():
            candidates = sorted(root.rglob(glob))
        else:
            continue
        for path in candidates:
            resolved = path.resolve()
            if resolved not in seen and path.is_file():
                seen.add(resolved)
                yield path


def _shorten(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


SECRETS = SecretBook()
"""The run's secrets: one book per process, filled by stacks and fixtures."""
