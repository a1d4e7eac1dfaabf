"""docs/architecture.md stays true to the code: its subject table is the table of
`llmbus.proto.subjects` with the rules of `llmbus.bus.access`, row for row, and the steps
of adding a provider family name files and registries that exist.

`python -m tests.contract.test_architecture_doc` prints the subject table's rows."""

from __future__ import annotations

import re
from pathlib import Path

from llmbus.bus.access import _RULES, _table
from llmbus.providers.adapters import ADAPTERS, FAMILIES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
HEADER = "| subject | message (→ reply) | queue group | published by | received by |"


def subject_rows() -> list[str]:
    """The rows of the subject table, from the code."""
    rows = []
    for topic in _table():
        rule = _RULES[topic.pattern]
        message = topic.codec.type.__name__
        reply = getattr(topic, "reply", None)
        if reply is not None:
            message += " → " + reply.type.__name__
        queue = f"`{topic.queue}`" if topic.queue else "—"
        publish, subscribe = ", ".join(rule.publish), ", ".join(rule.subscribe)
        rows.append(f"| `{topic.pattern}` | {message} | {queue} | {publish} | {subscribe} |")
    return rows


def _documented_rows() -> list[str]:
    lines = DOC.read_text().splitlines()
    start = lines.index(HEADER) + 2  # past the header and its rule
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_the_subject_table_is_the_code_s() -> None:
    documented = _documented_rows()
    code = subject_rows()
    missing = [row for row in code if row not in documented]
    stale = [row for row in documented if row not in code]
    render = "render the table with: .venv/bin/python -m tests.contract.test_architecture_doc"
    assert not missing, "docs/architecture.md's subject table lacks:\n" + "\n".join(missing) + "\n" + render
    assert not stale, (
        "docs/architecture.md lists subjects the code has not:\n" + "\n".join(stale) + "\n" + render
    )


def test_the_doc_covers_what_a_newcomer_asks() -> None:
    headings = set(re.findall(r"^#+ (.+)$", DOC.read_text(), re.MULTILINE))
    for wanted in ("One request", "Services", "Subjects", "Failure handling", "Adding a provider family"):
        assert wanted in headings, f"docs/architecture.md has no section {wanted!r}"


def test_the_steps_of_adding_a_family_name_what_exists() -> None:
    text = DOC.read_text()
    section = text[text.index("## Adding a provider family") :]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    paths = re.findall(
        r"`((?:libs|services|tests|infra|proto)/[^`*<>{}]+|docker-compose\.yml|config\.example\.yaml)`",
        section,
    )
    assert len(paths) >= 5, "the steps name the files to change"
    for path in paths:
        assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"
    # Every family the code knows went through these steps: an adapter, a fixture folder,
    # a mock module and a compose service each.
    compose = (ROOT / "docker-compose.yml").read_text()
    for family in FAMILIES:
        assert family in ADAPTERS
        assert (ROOT / "tests" / "contract" / "fixtures" / family).is_dir()
        assert (
            ROOT / "services" / "mock-upstream" / "src" / "llmbus" / "mock_upstream" / f"{family}.py"
        ).is_file()
        assert f"worker-{family}:" in compose


if __name__ == "__main__":
    print(HEADER)
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(subject_rows()))


def test_every_document_link_stays_in_the_repository_and_resolves() -> None:
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = document.read_text()
        assert not re.search(r"DESIGN\.md|\.\./shared|\bshared/", text), (
            f"{document.name} points outside the project"
        )
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            resolved = (document.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{document.name} links {target}, outside the repository"
            assert resolved.exists(), f"{document.name} links {target}, which does not exist"
