"""The console's login and forms against the edge app in-process, with the real auth
handlers over the in-memory bus and a real Redis (the `gateway` of test_keys_api.py):
who may log in, the lockout shared with the management API, sessions that any edge
process accepts and a changed management key ends, and a form's bad limits.

(The console in a browser, against the whole stack: tests/e2e/test_console.py.)"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack

import httpx2

from llmbus.config import RemoteManagementConfig
from llmbus.edge.app import create_app
from llmbus.edge.console.sessions import COOKIE
from llmbus.edge.context import EdgeContext
from llmbus.edge.settings import EdgeSettings
from tests.integration.test_keys_api import MANAGEMENT_KEY, Gateway, gateway

__all__ = ["gateway"]  # the fixture, shared with test_keys_api.py


async def _login(http: httpx2.AsyncClient, key: str) -> httpx2.Response:
    return await http.post("/console/login", data={"key": key})


def _session(cookie: str) -> dict[str, str]:
    return {"cookie": f"{COOKIE}={cookie}"}


async def _logged_in(gateway: Gateway) -> tuple[str, str]:
    """A session cookie and its CSRF token."""
    answer = await _login(gateway.http, MANAGEMENT_KEY)
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/providers")
    cookie = answer.cookies[COOKIE]
    gateway.http.cookies.clear()  # sent explicitly, as `_session(cookie)`
    page = await gateway.http.get("/console/keys", headers=_session(cookie))
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return cookie, found.group(1)


async def test_the_console_answers_only_loopback_unless_configured(gateway: Gateway) -> None:
    async with gateway.from_address("10.1.2.3") as office:
        refused = await office.get("/console/login")
        assert refused.status_code == 403
        assert "local clients only" in refused.text
        assert (await _login(office, MANAGEMENT_KEY)).status_code == 403
        gateway.management.set(
            MANAGEMENT_KEY, RemoteManagementConfig(allow_remote=True, allowed_cidrs=["10.0.0.0/8"])
        )
        assert (await office.get("/console/login")).status_code == 200
        assert (await _login(office, MANAGEMENT_KEY)).status_code == 303


async def test_wrong_keys_at_the_login_lock_the_source_out_of_console_and_api(gateway: Gateway) -> None:
    gateway.management.set(MANAGEMENT_KEY, RemoteManagementConfig(allow_remote=True))
    async with gateway.from_address("198.51.100.30") as attacker:
        statuses = [(await _login(attacker, "mk-guess")).status_code for _ in range(5)]
        assert statuses == [403, 403, 403, 403, 429]
        locked = await _login(attacker, MANAGEMENT_KEY)
        assert locked.status_code == 429
        assert "Too many wrong management keys" in locked.text
        assert COOKIE not in locked.cookies
        api = await attacker.get("/v1/keys", headers={"x-management-key": MANAGEMENT_KEY})
        assert api.status_code == 429, "one count for the console and the API"


async def test_a_login_without_a_key_or_with_a_wrong_one_shows_the_form_again(gateway: Gateway) -> None:
    empty = await _login(gateway.http, "")
    assert empty.status_code == 401
    assert 'id="login"' in empty.text
    wrong = await _login(gateway.http, "mk-wrong")
    assert wrong.status_code == 403
    assert "This call needs the management key." in wrong.text
    assert COOKIE not in wrong.cookies


async def test_any_edge_process_accepts_a_session_until_the_key_changes(gateway: Gateway) -> None:
    cookie, _ = await _logged_in(gateway)
    context: EdgeContext = gateway.app.state.context

    async def same_context(settings: EdgeSettings, stack: AsyncExitStack) -> EdgeContext:
        return context

    second = create_app(EdgeSettings(), same_context)
    second.state.context = context
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=second), base_url="http://edge") as http:
        page = await http.get("/console/keys", headers=_session(cookie), follow_redirects=False)
        assert page.status_code == 200, "another process verifies the same cookie"
        gateway.management.set("mk-rotated")
        ended = await http.get("/console/keys", headers=_session(cookie), follow_redirects=False)
        assert (ended.status_code, ended.headers["location"]) == (303, "/console/login")


async def test_a_key_form_with_bad_limits_is_refused_and_creates_nothing(gateway: Gateway) -> None:
    cookie, csrf = await _logged_in(gateway)
    before = (await gateway.http.get("/v1/keys", headers={"x-management-key": MANAGEMENT_KEY})).json()
    for bad in ({"rpm": "-1"}, {"tpm": "lots"}, {"expires_in_days": "soon"}):
        answer = await gateway.http.post(
            "/console/keys", data={"csrf": csrf, "name": "bad", **bad}, headers=_session(cookie)
        )
        assert answer.status_code == 400, bad
        assert "Invalid key" in answer.text
    after = (await gateway.http.get("/v1/keys", headers={"x-management-key": MANAGEMENT_KEY})).json()
    assert after == before


async def test_a_key_form_creates_the_key_with_its_limits_and_shows_it_once(gateway: Gateway) -> None:
    cookie, csrf = await _logged_in(gateway)
    answer = await gateway.http.post(
        "/console/keys",
        data={
            "csrf": csrf,
            "name": "form",
            "owner": "ops",
            "rpm": "7",
            "tpm": "900",
            "max_tokens": "64",
            "models": "gpt-*, claude/x",
            "expires_in_days": "2",
        },
        headers=_session(cookie),
    )
    assert answer.status_code == 201
    secret = re.search(r'<code id="secret">([^<]+)</code>', answer.text)
    assert secret is not None
    (created,) = [
        k
        for k in (await gateway.http.get("/v1/keys", headers={"x-management-key": MANAGEMENT_KEY})).json()[
            "data"
        ]
        if k["name"] == "form"
    ]
    assert created["owner"] == "ops"
    assert created["limits"] == {"rpm": 7, "tpm": 900, "max_tokens": 64, "models": ["gpt-*", "claude/x"]}
    assert created["expires_at"] is not None
    assert secret.group(1).startswith(created["prefix"].rstrip("…"))
    listed = await gateway.http.get("/console/keys", headers=_session(cookie))
    assert secret.group(1) not in listed.text
