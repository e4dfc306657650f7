"""Signing in to the dashboard in a real browser: the key once, then a session for pages, API
calls and the live WebSocket, until signing out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from dashboard_server import DashboardServer, start_dashboard
from playwright.sync_api import Page, expect

KEY = "dashboard-browser-key-0123456789"
NAP: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "nap",
    "strategy": "sequential",
    "steps": [
        {"id": "first", "agent": "echo", "input": {"n": 1}},
        {"id": "wait", "agent": "sleep", "input": {"seconds": 1.5}},
        {"id": "last", "agent": "echo", "input": {"n": 2}},
    ],
}
GATE: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "gate",
    "steps": [{"id": "review", "approval": {"prompt": "Go on?"}}],
}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[DashboardServer]:
    """A real `orchestr8 serve` with an API key (its `client` sends the key as Bearer)."""
    with start_dashboard(tmp_path / "journal.db", api_key=KEY) as server:
        yield server


def sign_in(page: Page, key: str) -> None:
    """Type `key` into the login form and submit it with Enter, as a person would."""
    field = page.get_by_label("API key")
    expect(field).to_be_focused()
    field.fill(key)
    field.press("Enter")


def test_with_a_key_the_dashboard_opens_on_the_login_page(
    page: Page, keyed: DashboardServer
) -> None:
    """Opening /ui/ without a session shows the login form, the key field ready to type in."""
    page.goto(keyed.url + "/ui/")
    expect(page).to_have_url(keyed.url + "/ui/login?next=/ui/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("API key")).to_be_focused()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_a_wrong_key_says_so_and_keeps_the_field_focused(
    page: Page, keyed: DashboardServer, browser_problems: list[str]
) -> None:
    """A wrong key: the page says the key is wrong, and the field keeps the focus for a retry."""
    page.goto(keyed.url + "/ui/")
    sign_in(page, "not-the-key")
    expect(page.get_by_role("alert")).to_contain_text("That key is wrong")
    field = page.get_by_label("API key")
    expect(field).to_be_focused()
    expect(field).to_have_attribute("aria-invalid", "true")
    assert browser_problems == [
        "console error: Failed to load resource: the server responded with a status of 401 ()"
    ]
    browser_problems.clear()


def test_the_right_key_opens_the_page_asked_for_and_it_follows_the_run_live(
    page: Page, keyed: DashboardServer
) -> None:
    """Signed in, the execution page first asked for opens; its API calls and WebSocket work."""
    execution_id = keyed.start(NAP)
    page.goto(f"{keyed.url}/ui/executions/{execution_id}")
    expect(page).to_have_url(f"{keyed.url}/ui/login?next=/ui/executions/{execution_id}")
    sign_in(page, KEY)
    expect(page).to_have_url(f"{keyed.url}/ui/executions/{execution_id}")
    # The step's badge is drawn from the API's summary and moved on by the WebSocket's events.
    expect(page.locator('[data-step-id="last"] .status')).to_have_text("succeeded", timeout=15_000)
    expect(page.locator("#execution-status")).to_have_text("succeeded")
    page.get_by_role("link", name="Executions").click()
    expect(page.locator(f'tr[data-execution-id="{execution_id}"]')).to_contain_text("succeeded")


def test_the_session_lets_the_page_change_things_through_the_api(
    page: Page, keyed: DashboardServer
) -> None:
    """A POST the page sends with its session (as its action buttons do) passes the CSRF check."""
    page.goto(keyed.url + "/ui/")
    sign_in(page, KEY)
    expect(page).to_have_url(keyed.url + "/ui/")
    started = page.evaluate(
        """async (workflow) => {
            const response = await fetch("/workflows/execute", {
                method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({workflow}),
            });
            return [response.status, (await response.json()).execution_id];
        }""",
        {**NAP, "name": "from-the-page"},
    )
    assert started[0] == 202
    keyed.wait_for_status(started[1], "succeeded")
    page.reload()
    row = page.locator(f'tr[data-execution-id="{started[1]}"]')
    expect(row).to_contain_text("from-the-page")
    expect(row).to_contain_text("succeeded")


def test_a_new_key_ends_the_session_of_an_open_page(
    page: Page, tmp_path: Path, browser_problems: list[str]
) -> None:
    """The server restarts with another key: the open execution page goes to the login page,
    and the new key brings it back."""
    journal = tmp_path / "journal.db"
    with start_dashboard(journal, api_key=KEY) as first:
        # Waiting at a gate, it outlives the server: the page's socket closes 1001 and retries.
        execution_id = first.start(GATE)
        page.goto(f"{first.url}/ui/executions/{execution_id}")
        sign_in(page, KEY)
        expect(page.locator('#graph [data-step-id="review"]')).to_be_visible()
        gates = first.client.get(f"/executions/{execution_id}/gates")
        assert gates.status_code == 200, gates.text
    port = first.url.rsplit(":", 1)[1]
    with start_dashboard(journal, "--port", port, api_key=KEY + "-new") as second:
        assert second.url == first.url
        # api.js sends the browser there on the 401, `next` percent-encoded whole.
        back = quote(f"/ui/executions/{execution_id}", safe="")
        expect(page).to_have_url(f"{first.url}/ui/login?next={back}", timeout=20_000)
        sign_in(page, KEY + "-new")
        expect(page).to_have_url(f"{second.url}/ui/executions/{execution_id}")
        expect(page.locator('#graph [data-step-id="review"]')).to_be_visible()
        # Leave before this server stops too, or the page would retry against it meanwhile.
        page.goto("about:blank")
    # Meanwhile the browser logged the refused reconnections and the 401 that ended them.
    expected = ("WebSocket connection to", "Failed to load resource")
    assert all(any(words in problem for words in expected) for problem in browser_problems)
    browser_problems.clear()


def test_signing_out_returns_to_the_login_page_and_stays_signed_out(
    page: Page, keyed: DashboardServer
) -> None:
    """Sign out: the login page again, and the dashboard asks for the key once more."""
    page.goto(keyed.url + "/ui/")
    sign_in(page, KEY)
    expect(page).to_have_url(keyed.url + "/ui/")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(keyed.url + "/ui/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(keyed.url + "/ui/compare")
    expect(page).to_have_url(keyed.url + "/ui/login?next=/ui/compare")


def test_without_a_key_the_login_page_sends_you_to_the_dashboard(
    page: Page, dashboard: DashboardServer
) -> None:
    """No API key, no login: /ui/login goes straight on to the executions list."""
    page.goto(dashboard.url + "/ui/login")
    expect(page).to_have_url(dashboard.url + "/ui/")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
