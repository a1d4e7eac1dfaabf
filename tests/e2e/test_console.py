"""The web console in a real browser: headless Debian chromium driven by selenium through
chromedriver, against the end-to-end stack. Each scenario is checked through the real
API and the openai SDK as well as on the page, and leaves a screenshot (paths printed,
under the pytest basetemp's `console-screenshots/`).

Without chromium and chromedriver these tests skip; under CI they fail (.ci/run installs
both with scripts/ensure-chromium.sh)."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from llmbus.testing import MissingBinary, Stack
from tests.conftest import _missing
from tests.e2e.conftest import MANAGEMENT_KEY

pytestmark = pytest.mark.e2e

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
WAIT = 15.0
"""How long a page may take to show what a test waits for (not a measured bound)."""


def _binary(*candidates: str) -> str:
    for name in candidates:
        if found := shutil.which(name):
            return found
    raise MissingBinary(
        f"{candidates[0]} is not installed (Debian: apt-get install chromium chromium-driver)"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    try:
        chromium = _binary("chromium", "chromium-browser")
        chromedriver = _binary("chromedriver")
    except MissingBinary as exc:
        _missing(exc)
        raise
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[WebDriver, str], Path]:
    folder = tmp_path_factory.getbasetemp() / "console-screenshots"
    folder.mkdir(exist_ok=True)

    def shoot(driver: WebDriver, name: str) -> Path:
        path = folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), path
        print(f"screenshot: {path}")
        return path

    return shoot


@pytest.fixture(scope="module")
def console(stack: Stack, browser: WebDriver) -> WebDriver:
    """The browser, logged in to the stack's console."""
    _login(browser, stack.base_url, MANAGEMENT_KEY)
    WebDriverWait(browser, WAIT).until(lambda d: d.current_url.endswith("/console/providers"))
    return browser


@pytest.fixture
def sdk(stack: Stack) -> Iterator[Callable[[str], openai.OpenAI]]:
    """The openai SDK with a client key; every client closed after the test."""
    made: list[openai.OpenAI] = []

    def make(key: str) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0, timeout=20)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _login(driver: WebDriver, base_url: str, key: str) -> None:
    driver.get(f"{base_url}/console/login")
    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()


def _until(driver: WebDriver, check: Callable[[WebDriver], Any], *, reload: bool = False) -> Any:
    """What `check` returns once it is truthy; the page reloaded between tries when asked."""

    def attempt(d: WebDriver) -> Any:
        try:
            result = check(d)
        except (NoSuchElementException, StaleElementReferenceException):
            result = None
        if not result and reload:
            d.refresh()
        return result

    return WebDriverWait(driver, WAIT, poll_frequency=0.25).until(attempt)


def _eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.1)


def test_login_refuses_a_wrong_key_and_admits_the_right_one(
    stack: Stack, browser: WebDriver, shots: Callable[[WebDriver, str], Path]
) -> None:
    browser.delete_all_cookies()
    browser.get(f"{stack.base_url}/console/keys")
    assert browser.current_url.endswith("/console/login"), "no session: the login form"

    _login(browser, stack.base_url, "mk-wrong")
    error = _until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "p.error"))
    assert "management key" in error.text
    assert browser.get_cookies() == []
    shots(browser, "login-refused")

    _login(browser, stack.base_url, MANAGEMENT_KEY)
    _until(browser, lambda d: d.find_element(By.ID, "providers"))
    (cookie,) = browser.get_cookies()
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    assert MANAGEMENT_KEY not in cookie["value"]
    shots(browser, "providers")

    # The session cookie alone is not a management key for the JSON API.
    refused = httpx.get(f"{stack.base_url}/v1/keys", cookies={cookie["name"]: cookie["value"]})
    assert refused.status_code == 401

    # Logging out ends the session: the old cookie no longer opens a page.
    browser.find_element(By.ID, "logout").click()
    _until(browser, lambda d: d.current_url.endswith("/console/login"))
    stale = httpx.get(
        f"{stack.base_url}/console/keys", cookies={cookie["name"]: cookie["value"]}, follow_redirects=False
    )
    assert (stale.status_code, stale.headers["location"]) == (303, "/console/login")


def test_an_action_without_the_csrf_token_is_refused(stack: Stack, console: WebDriver) -> None:
    (cookie,) = console.get_cookies()
    forged = httpx.post(
        f"{stack.base_url}/console/providers/spare/enabled",
        data={"enabled": "false"},
        cookies={cookie["name"]: cookie["value"]},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    status = httpx.get(
        f"{stack.base_url}/v1/providers/spare", headers={"Authorization": "Bearer sk-test-client"}
    ).json()
    assert status["enabled"] is True


def test_a_key_created_with_limits_works_within_them_until_revoked(
    stack: Stack,
    console: WebDriver,
    sdk: Callable[[str], openai.OpenAI],
    shots: Callable[[WebDriver, str], Path],
) -> None:
    name = f"console-{uuid.uuid4().hex[:8]}"
    console.get(f"{stack.base_url}/console/keys")
    console.find_element(By.TAG_NAME, "summary").click()
    console.find_element(By.ID, "key-name").send_keys(name)
    console.find_element(By.ID, "key-owner").send_keys("browser test")
    console.find_element(By.ID, "key-rpm").clear()
    console.find_element(By.ID, "key-rpm").send_keys("50")
    console.find_element(By.ID, "key-models").send_keys("mini")
    console.find_element(By.ID, "create").click()

    secret = _until(console, lambda d: d.find_element(By.ID, "secret")).text
    assert secret.startswith("sk-")
    row = console.find_element(By.XPATH, f"//tr[td[1][normalize-space()='{name}']]")
    assert row.get_attribute("data-state") == "active"
    assert "rpm 50" in row.text
    assert "models mini" in row.text
    assert secret not in row.text, "the table shows the prefix only"
    shots(console, "key-created")

    client = sdk(secret)
    answer = client.chat.completions.create(model="mini", messages=USER)
    assert answer.choices[0].message.content
    with pytest.raises(openai.APIStatusError) as outside:
        client.chat.completions.create(model="gpt-4-turbo", messages=USER)
    assert outside.value.status_code == 403, "the key's model limit holds"

    # A reload shows the key again, never its secret.
    console.get(f"{stack.base_url}/console/keys")
    assert secret not in console.page_source

    row = console.find_element(By.XPATH, f"//tr[td[1][normalize-space()='{name}']]")
    row.find_element(By.CSS_SELECTOR, "button[data-action=revoke]").click()
    console.switch_to.alert.accept()
    _until(
        console,
        lambda d: (
            d.find_element(By.XPATH, f"//tr[td[1][normalize-space()='{name}']]").get_attribute("data-state")
            == "revoked"
        ),
    )
    assert "revoked" in console.find_element(By.CSS_SELECTOR, "p.notice").text
    shots(console, "key-revoked")

    def refused() -> bool:
        try:
            client.chat.completions.create(model="mini", messages=USER)
        except openai.AuthenticationError:
            return True
        return False

    _eventually(refused)


def test_switching_a_provider_off_and_on_stops_and_resumes_routing_to_it(
    stack: Stack,
    console: WebDriver,
    sdk: Callable[[str], openai.OpenAI],
    shots: Callable[[WebDriver, str], Path],
) -> None:
    client = sdk("sk-test-client")
    refusals: list[tuple[int, str]] = []
    provider = f"{stack.base_url}/v1/providers/spare"
    reader = {"Authorization": "Bearer sk-test-client"}

    def switch() -> None:
        console.get(f"{stack.base_url}/console/providers")
        console.find_element(By.CSS_SELECTOR, "#provider-spare button[data-action=toggle]").click()

    def routes() -> bool:
        try:
            return bool(client.chat.completions.create(model="spare-model", messages=USER).choices)
        except openai.APIStatusError as exc:
            refusals.append((exc.status_code, exc.message))
            return False

    switch()
    try:
        notice = _until(console, lambda d: d.find_element(By.CSS_SELECTOR, "p.notice"))
        assert "spare switched off" in notice.text
        _until(
            console,
            lambda d: d.find_element(By.ID, "provider-spare").get_attribute("data-enabled") == "false",
            reload=True,
        )
        assert "disabled" in console.find_element(By.ID, "provider-spare").text
        shots(console, "provider-off")
        _eventually(lambda: httpx.get(provider, headers=reader).json()["enabled"] is False)
        _eventually(lambda: not routes())
        status, message = refusals[-1]
        assert status == 503
        assert "disabled" in message
    finally:
        switch()
    _until(console, lambda d: "spare switched on" in d.find_element(By.CSS_SELECTOR, "p.notice").text)
    _eventually(lambda: httpx.get(provider, headers=reader).json()["enabled"] is True)
    _eventually(routes)
    _until(
        console,
        lambda d: d.find_element(By.ID, "provider-spare").get_attribute("data-enabled") == "true",
        reload=True,
    )
    shots(console, "provider-on")


def test_provider_status_shows_workers_health_and_a_cooldown_button(stack: Stack, console: WebDriver) -> None:
    console.get(f"{stack.base_url}/console/providers")

    def openai_row(d: WebDriver) -> Any:
        row = d.find_element(By.ID, "provider-openai")
        return row if "ok" in row.find_elements(By.TAG_NAME, "td")[5].text else None

    row = _until(console, openai_row, reload=True)
    cells = row.find_elements(By.TAG_NAME, "td")
    assert "key-1" in cells[3].text
    assert cells[6].text == "2", "two openai workers"
    broken = _until(
        console,
        lambda d: (
            "failing" in d.find_element(By.ID, "provider-broken").text
            and d.find_element(By.ID, "provider-broken")
        ),
        reload=True,
    )
    assert "failing" in broken.text


def test_the_reprobe_button_ends_a_cooldown_on_every_router(
    stack: Stack,
    console: WebDriver,
    sdk: Callable[[str], openai.OpenAI],
    shots: Callable[[WebDriver, str], Path],
) -> None:
    # `flaky/` picks the provider whose only key is rate limited upstream: it rests for
    # the upstream's Retry-After (5 s in the stack), as test_management.py reads too.
    with pytest.raises(openai.RateLimitError):
        sdk("sk-test-client").chat.completions.create(model="flaky/resilient", messages=USER)
    console.get(f"{stack.base_url}/console/providers")
    row = console.find_element(By.ID, "provider-flaky")
    assert "cooling down" in row.text
    shots(console, "provider-cooling-down")
    row.find_element(By.CSS_SELECTOR, "button[data-action=reprobe]").click()
    notice = _until(console, lambda d: d.find_element(By.CSS_SELECTOR, "p.notice"))
    assert "1 cooldown(s) of flaky ended" in notice.text

    def ready() -> bool:
        status = httpx.get(
            f"{stack.base_url}/v1/providers/flaky/status", headers={"Authorization": "Bearer sk-test-client"}
        ).json()
        return bool(status["cooldowns"] == [] and status["credentials"][0]["state"] == "ready")

    _eventually(ready)


def test_live_view_shows_a_request_in_flight(
    stack: Stack,
    console: WebDriver,
    sdk: Callable[[str], openai.OpenAI],
    shots: Callable[[WebDriver, str], Path],
) -> None:
    console.get(f"{stack.base_url}/console/live")
    _until(console, lambda d: d.find_element(By.CSS_SELECTOR, "#live-providers tr[data-provider=openai]"))
    outcome: list[BaseException | None] = []

    def hang() -> None:
        # The mock never answers `hang`: the request stays in flight until the worker gives up.
        try:
            sdk("sk-test-client").chat.completions.create(model="hang", messages=USER)
        except openai.APIError as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=hang)
    thread.start()
    try:
        row = _until(
            console,
            lambda d: (
                (row := d.find_element(By.CSS_SELECTOR, "#live-providers tr[data-provider=openai]"))
                and int(row.get_attribute("data-in-flight") or 0) >= 1
                and row
            ),
        )
        assert int(console.find_element(By.ID, "live-edge-total").text) >= 1
        keys = console.find_elements(By.CSS_SELECTOR, "#live-keys tbody tr")
        assert any(k.text.startswith("e2e (key_") for k in keys), "the key is named"
        # Key, model, provider (none before the answer starts: the mock never answers), stream.
        request = _until(
            console,
            lambda d: next(
                (
                    r
                    for r in d.find_elements(By.CSS_SELECTOR, "#live-requests tbody tr")
                    if [c.text for c in r.find_elements(By.TAG_NAME, "td")][1:5]
                    == ["e2e", "hang", "(not started)", "no"]
                ),
                None,
            ),
        )
        assert len(request.get_attribute("data-request-id") or "") == 32  # its x-request-id
        console.execute_script("document.getElementById('live-requests').scrollIntoView()")
        shots(console, "live-in-flight")
        assert int(row.get_attribute("data-in-flight") or 0) >= 1
    finally:
        thread.join(timeout=60)
    assert outcome, "the hanging request ended"
    assert isinstance(outcome[0], openai.APIError), "with an error: the mock never answers"
    _until(console, lambda d: d.find_element(By.ID, "live-edge-total").text == "0")
    _until(console, lambda d: not d.find_elements(By.CSS_SELECTOR, "#live-requests tbody tr"))


def test_usage_appears_after_requests(
    stack: Stack,
    console: WebDriver,
    sdk: Callable[[str], openai.OpenAI],
    shots: Callable[[WebDriver, str], Path],
) -> None:
    created = httpx.post(
        f"{stack.base_url}/v1/keys",
        json={"name": f"usage-{uuid.uuid4().hex[:8]}"},
        headers={"x-management-key": MANAGEMENT_KEY},
    ).json()
    client = sdk(created["key"])
    for _ in range(3):
        assert client.chat.completions.create(model="mini", messages=USER).choices

    console.get(f"{stack.base_url}/console/usage?by=key&days=7&metric=requests")
    row = _until(
        console,
        lambda d: (
            (r := d.find_element(By.CSS_SELECTOR, f"#usage tr[data-group='{created['id']}']"))
            and int(r.find_element(By.CSS_SELECTOR, "td.requests").text) >= 3
            and r
        ),
        reload=True,
    )
    assert created["name"] in row.text, "the key's name, not only its id"
    bars = console.find_elements(By.CSS_SELECTOR, f"svg.chart rect[data-group='{created['id']}']")
    assert sum(int(bar.get_attribute("data-value") or 0) for bar in bars) >= 3
    shots(console, "usage")
