"""The Makefile keeps the README's promise that `make help` lists every target: each
target has a `## ` description, is phony, and shows in the output of `make help` itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"

# `name: prerequisites ## description`; not `VAR := value` nor `VAR ?= value`.
_RULE = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?![:=])([^#\n]*)(?:##\s*(.*))?$")


def _targets() -> dict[str, str]:
    """Target -> its `## ` description ("" when it has none)."""
    targets: dict[str, str] = {}
    for line in MAKEFILE.read_text().splitlines():
        match = _RULE.match(line)
        if match is None or match.group(1).startswith("."):
            continue
        targets[match.group(1)] = (match.group(3) or "").strip()
    return targets


TARGETS = _targets()


def test_the_makefile_has_the_targets_the_readme_names() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`make ([a-z0-9-]+)", readme))
    assert named, "the README names no make target"
    assert named <= set(TARGETS), (
        f"the README names targets the Makefile lacks: {sorted(named - set(TARGETS))}"
    )
    assert {"help", "setup", "run", "test", "unit", "e2e"} <= set(TARGETS)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_is_described_and_phony(target: str) -> None:
    assert TARGETS[target], f"`{target}` has no `## ` description, so `make help` cannot list it"
    phony = re.search(r"^\.PHONY:(.*)$", MAKEFILE.read_text(), re.MULTILINE)
    assert phony is not None
    assert target in phony.group(1).split(), f"`{target}` is not in .PHONY"


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_make_help_lists_every_target_with_its_description() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-f", str(MAKEFILE), "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    listed = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^\s*make (\S+)\s+(.*)$", line)
        assert match is not None, f"unexpected line in `make help`: {line!r}"
        listed[match.group(1)] = match.group(2).strip()
    assert listed == TARGETS
