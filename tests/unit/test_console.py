"""The console's parts that need no server: sessions and their CSRF tokens, the pages'
escaping, the usage charts. (The console itself runs in a browser in
tests/e2e/test_console.py.)"""

from __future__ import annotations

import re
from datetime import date

from llmbus.edge.console import views
from llmbus.edge.console.charts import MAX_GROUPS, Point, daily_bars, last_days
from llmbus.edge.console.sessions import Sessions
from llmbus.edge.management import ManagementKey
from llmbus.proto import ClientLimits, KeyInfo, UsageReport, UsageRow

KEY = ManagementKey("mk-unit")
NOW = 1_800_000_000.0
HOSTILE = '<script>alert("x")</script>'


def test_a_session_cookie_verifies_and_never_holds_the_key() -> None:
    sessions = Sessions()
    token = sessions.issue(KEY, NOW)
    assert "mk-unit" not in token
    session = sessions.verify(KEY, token, NOW + 60)
    assert session is not None
    assert session.expires_at == int(NOW) + sessions.lifetime
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches("")
    assert not session.csrf_matches(None)
    assert not session.csrf_matches(session.csrf[:-1] + "x")


def test_sessions_are_new_each_login_with_their_own_csrf_token() -> None:
    sessions = Sessions()
    first = sessions.verify(KEY, sessions.issue(KEY, NOW), NOW)
    second = sessions.verify(KEY, sessions.issue(KEY, NOW), NOW)
    assert first is not None
    assert second is not None
    assert first.id != second.id
    assert first.csrf != second.csrf


def test_a_forged_expired_or_foreign_cookie_is_no_session() -> None:
    sessions = Sessions()
    token = sessions.issue(KEY, NOW)
    session_id, expires, mac = token.split(".")
    assert sessions.verify(KEY, token, NOW + sessions.lifetime) is None, "expired"
    assert sessions.verify(KEY, f"{session_id}.{int(expires) + 3600}.{mac}", NOW) is None, "longer"
    assert sessions.verify(KEY, f"other.{expires}.{mac}", NOW) is None, "another id"
    assert sessions.verify(ManagementKey("mk-rotated"), token, NOW) is None, "the key changed"
    assert sessions.verify(ManagementKey(""), token, NOW) is None, "no key configured"
    for junk in ("", "a.b", "a.b.c.d", f"{session_id}.soon.{mac}", None):
        assert sessions.verify(KEY, junk, NOW) is None


def test_logging_out_ends_the_session_in_this_process() -> None:
    sessions = Sessions()
    token = sessions.issue(KEY, NOW)
    session = sessions.verify(KEY, token, NOW)
    assert session is not None
    sessions.end(session, NOW)
    assert sessions.verify(KEY, token, NOW) is None
    other = sessions.issue(KEY, NOW)
    assert sessions.verify(KEY, other, NOW) is not None


def test_ended_sessions_are_forgotten_once_they_would_have_expired() -> None:
    sessions = Sessions(lifetime=10)
    old = sessions.verify(KEY, sessions.issue(KEY, NOW), NOW)
    assert old is not None
    sessions.end(old, NOW)
    newer = sessions.verify(KEY, sessions.issue(KEY, NOW + 20), NOW + 20)
    assert newer is not None
    sessions.end(newer, NOW + 20)
    assert set(sessions._ended) == {newer.id}


def test_pages_escape_what_comes_from_outside() -> None:
    provider = {"id": HOSTILE, "type": "openai", "auth_type": "api_key", "enabled": True, "routable": False}
    status = {
        "credentials": [{"name": HOSTILE, "state": "cooling_down", "health_reason": HOSTILE}],
        "cooldowns": [{"credential": HOSTILE, "model": HOSTILE, "remaining_s": 3.0, "reason": HOSTILE}],
        "health": {"ok": False, "error": HOSTILE},
    }
    key = KeyInfo(id="key_1", prefix="sk-llmbus-ab", name=HOSTILE, owner=HOSTILE, limits=ClientLimits())
    report = UsageReport(by="model", days=1, rows=[UsageRow(day="2026-12-07", group=HOSTILE, requests=1)])
    pages = [
        views.providers_page([provider], {HOSTILE: status}, "t", error=HOSTILE, notice=HOSTILE),
        views.keys_page([key], "t", created=(key, HOSTILE), error=HOSTILE),
        views.usage_page(report, ["2026-12-07"], "requests", {}, "t", error=HOSTILE),
        views.login_page(HOSTILE),
        views.error_page(403, HOSTILE),
    ]
    for page in pages:
        assert "<script>" not in page
        assert "&lt;script&gt;" in page
        assert not re.search(r"<script(?! src=\"/console/static/console.js\")", page), "only the console's"


def test_every_form_of_a_page_carries_the_csrf_token() -> None:
    provider = {"id": "p", "enabled": True, "routable": True}
    status = {"cooldowns": [{"credential": "key-1", "remaining_s": 1, "reason": "429"}]}
    key = KeyInfo(id="key_1", prefix="sk-llmbus-ab", name="n")
    for page in (
        views.providers_page([provider], {"p": status}, "tok-123"),
        views.keys_page([key], "tok-123"),
        views.live_page("tok-123", {}),
    ):
        forms = re.findall(r"<form method=\"post\".*?</form>", page, re.S)
        assert forms
        for form in forms:
            assert '<input type="hidden" name="csrf" value="tok-123">' in form


def test_only_api_keys_that_are_not_revoked_can_be_revoked() -> None:
    keys = [
        KeyInfo(id="key_live", prefix="sk-a", source="api"),
        KeyInfo(id="key_gone", prefix="sk-b", source="api", revoked=True),
        KeyInfo(id="key_file", prefix="sk-c", source="config"),
    ]
    page = views.keys_page(keys, "t")
    assert "/console/keys/key_live/revoke" in page
    assert "/console/keys/key_gone/revoke" not in page
    assert "/console/keys/key_file/revoke" not in page


def test_last_days_end_today_oldest_first() -> None:
    assert last_days(3, date(2026, 3, 1)) == ["2026-02-27", "2026-02-28", "2026-03-01"]


def test_a_chart_stacks_each_days_groups_to_their_total() -> None:
    days = ["2026-12-06", "2026-12-07"]
    points = [
        Point("2026-12-06", "a", 3),
        Point("2026-12-07", "a", 1),
        Point("2026-12-07", "b", 4),
        Point("2026-11-01", "a", 100),
    ]
    svg = daily_bars(points, days, "requests", {"a": "Key A"})
    bars = re.findall(r'data-group="(\w+)" data-day="([\d-]+)" data-value="(\d+)"', svg)
    assert sorted(bars) == [("a", "2026-12-06", "3"), ("a", "2026-12-07", "1"), ("b", "2026-12-07", "4")]
    assert "Key A" in svg, "groups are named by their labels"
    assert "2026-11-01" not in svg, "days outside the window are left out"


def test_a_chart_folds_the_smallest_groups_into_other() -> None:
    points = [Point("2026-12-07", f"g{i:02}", 100 - i) for i in range(MAX_GROUPS + 3)]
    svg = daily_bars(points, ["2026-12-07"], "requests", {})
    groups = re.findall(r'data-group="([\w-]+)"', svg)
    assert len(groups) == MAX_GROUPS
    assert groups[-1] == "other"
    other = re.search(r'data-group="other" data-day="2026-12-07" data-value="(\d+)"', svg)
    assert other is not None
    assert int(other.group(1)) == sum(100 - i for i in range(MAX_GROUPS - 1, MAX_GROUPS + 3))


def test_a_chart_without_usage_says_so() -> None:
    assert "No usage" in daily_bars([], ["2026-12-07"], "requests", {})


def test_the_live_view_names_keys_without_trusting_their_names() -> None:
    page = views.live_page("t", {"key_1": HOSTILE})
    assert "<script>alert" not in page
    names = re.search(r'data-names="([^"]*)"', page)
    assert names is not None
    assert "&lt;script&gt;" in names.group(1)
