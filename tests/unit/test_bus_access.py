"""The bus's permissions, derived from the subject table: every subject has a rule, each
service may use what its code uses and nothing more."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmbus.bus import access
from llmbus.bus.access import UnruledSubject, authorization, permissions, service_users
from llmbus.proto import Codec, KeyEvent, Topic, subjects

ROOT = Path(__file__).resolve().parents[2]
_USE = re.compile(r"\.(publish|subscribe|request)\(\s*([A-Z][A-Z_]+)\b")


def _allows(patterns: tuple[str, ...], subject: str) -> bool:
    """NATS matching: `*` one token, `>` the rest."""
    wanted = subject.split(".")
    for pattern in patterns:
        tokens = pattern.split(".")
        if tokens[-1] == ">" and len(wanted) >= len(tokens) and _same(tokens[:-1], wanted[: len(tokens) - 1]):
            return True
        if len(tokens) == len(wanted) and _same(tokens, wanted):
            return True
    return False


def _same(pattern: list[str], subject: list[str]) -> bool:
    return all(p in ("*", s) for p, s in zip(pattern, subject, strict=True))


def test_a_worker_may_not_write_control_or_auth_state() -> None:
    worker = permissions("worker")
    for subject in (
        "control.v1.providers.enabled",
        "control.v1.cooldowns.cleared",
        "auth.v1.providers.toggle",
        "auth.v1.keys.create",
        "auth.v1.keys.revoke",
        "auth.v1.cooldowns.clear",
        "auth.v1.credentials.remove",
        "llm.v1.route",
    ):
        assert not _allows(worker.publish, subject), subject
    for subject in ("auth.v1.events.cooldowns", "health.v1.worker", "auth.v1.tokens.get", "_INBOX.edge.x.y"):
        assert _allows(worker.publish, subject), subject


def test_an_edge_reads_only_its_own_inboxes_and_answers_none() -> None:
    edge = permissions("edge", "edge-2")
    assert _allows(edge.subscribe, "_INBOX.edge-2.abc.1")
    assert not _allows(edge.subscribe, "_INBOX.edge.abc.1")
    assert not _allows(edge.publish, "_INBOX.edge.abc.1")
    assert not _allows(edge.subscribe, "llm.v1.exec.openai"), "prompts go to workers only"


def test_only_workers_get_tokens_and_only_auth_announces_key_revocations() -> None:
    for role in access.ROLES:
        granted = permissions(role)
        assert _allows(granted.publish, "auth.v1.tokens.get") == (role == "worker"), role
        assert _allows(granted.publish, "auth.v1.events.keys") == (role == "auth"), role


@pytest.mark.parametrize("service", ["edge", "router", "worker", "auth"])
def test_every_subject_a_service_uses_in_its_code_is_allowed(service: str) -> None:
    granted = permissions(service)  # type: ignore[arg-type]
    used = 0
    for path in sorted((ROOT / "services" / service / "src").rglob("*.py")):
        for verb, name in _USE.findall(path.read_text()):
            topic = getattr(subjects, name, None)
            if not isinstance(topic, Topic):
                continue
            used += 1
            subject = topic.subject(service=service) if "{service}" in topic.pattern else topic.wildcard()
            if verb == "subscribe":
                assert _allows(granted.subscribe, subject), f"{path.name}: {service} subscribes {subject}"
            else:
                assert _allows(granted.publish, subject), f"{path.name}: {service} {verb}s {subject}"
    assert used, f"found no bus use in {service}'s code"


def test_a_subject_without_a_rule_refuses_to_render(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subjects, "NEW_SUBJECT", Topic("auth.v1.events.new", Codec(KeyEvent)), raising=False)
    with pytest.raises(UnruledSubject, match=r"auth\.v1\.events\.new"):
        authorization(service_users())


def test_the_rendered_block_names_passwords_by_variable_only() -> None:
    block = authorization(service_users(("edge", "edge-2")))
    assert "password: $LLMBUS_NATS_EDGE_2_PASSWORD," in block
    assert block.count("{user: ") == 5
    assert '"_INBOX.edge-2.>"' in block
