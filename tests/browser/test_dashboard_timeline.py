"""The execution page's timeline, in a real browser: attempts, retry waits, zoom, groups, live."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dashboard_server import RETRIED, DashboardServer, start_dashboard
from link_proxy import link_proxy
from playwright.sync_api import Page, expect

MAPPED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "mapped",
    "steps": [{"id": "each", "agent": "echo", "for_each": "inputs.docs", "input": "${item}"}],
}
LOOPED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "looped",
    "steps": [
        {
            "id": "draft",
            "agent": "echo",
            "input": {"round": "${iteration}"},
            "repeat": {"until": "output.round == `3`", "max_iterations": 5},
        }
    ],
}
SLOW: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "slow",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 1.5}}],
}
PACED_STEPS = 6
PACED: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "paced",
    "strategy": "sequential",
    "steps": [
        {"id": f"s{index}", "agent": "sleep", "input": {"seconds": 0.4}}
        for index in range(PACED_STEPS)
    ],
}
NETWORK_ERROR = re.compile(r"Failed to load resource|WebSocket connection to|net::ERR_")


def test_the_timeline_shows_a_failed_attempt_a_retry_wait_and_the_success(
    page: Page, dashboard: DashboardServer
) -> None:
    """The flaky step's row: attempt 1 failed (hatched), a dotted wait, attempt 2 succeeded."""
    execution_id = dashboard.run(RETRIED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    row = page.locator('#timeline .row[data-step-id="flaky"]')
    expect(row.locator('.seg-failed[data-attempt="1"] .hatching')).to_have_count(1)
    expect(row.locator('.seg-wait[data-attempt="1"]')).to_have_count(1)
    expect(row.locator('.seg-attempt[data-attempt="2"]')).to_have_count(1)
    expect(row.locator(".seg-failed title")).to_contain_text("attempt 1: failed")
    label = page.locator('#timeline .row-label[data-step-id="flaky"]')
    expect(label).to_have_attribute("aria-label", "flaky: succeeded, 2 attempts")
    expect(page.locator("#timeline .timeline-legend")).to_contain_text("retry wait (dotted)")


def test_zoom_changes_the_axis_by_button_and_key(page: Page, dashboard: DashboardServer) -> None:
    """Zooming in gives finer ticks; `-` and Reset go back to the whole run."""
    execution_id = dashboard.run(RETRIED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    ticks = page.locator("#timeline .timeline-axis .tick")
    expect(ticks.first).to_be_visible()
    before = ticks.all_text_contents()
    page.get_by_role("button", name="Zoom in on the timeline").click()
    page.get_by_role("button", name="Zoom in on the timeline").click()
    expect(page.locator("#timeline .timeline-zoom")).to_have_text("Zoom 225%")
    expect(ticks).not_to_have_text(before)
    chart = page.get_by_role("group", name="Timeline chart")
    chart.focus()
    page.keyboard.press("-")
    expect(page.locator("#timeline .timeline-zoom")).to_have_text("Zoom 150%")
    page.keyboard.press("0")
    expect(page.locator("#timeline .timeline-zoom")).to_have_text("Zoom 100%")
    expect(ticks).to_have_text(before)


def test_a_maps_items_are_collapsed_under_it_until_expanded(
    page: Page, dashboard: DashboardServer
) -> None:
    """A map's row holds its items' bars; Enter shows a row per item (arrows move), Enter hides."""
    execution_id = dashboard.run(MAPPED, {"docs": ["a", "b", "c"]})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    group = page.locator('#timeline .row-label[data-step-id="each"]')
    expect(group).to_have_attribute("aria-expanded", "false")
    # Its attempts are its items': it is announced by them.
    expect(group).to_have_attribute("aria-label", re.compile(r"^each: succeeded, 3 items;"))
    expect(page.locator("#timeline .row")).to_have_count(1)
    expect(page.locator('#timeline .row[data-step-id="each"] .seg-attempt').first).to_be_visible()
    group.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowDown")
    expect(page.locator('#timeline .row-label[data-step-id="each[0]"]')).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(group).to_be_focused()
    expect(page.locator('#timeline .row-label[data-step-id="each"]')).to_have_attribute(
        "aria-expanded", "true"
    )
    expect(page.locator('#timeline .row[data-step-id="each[2]"]')).to_have_count(1)
    page.keyboard.press("Enter")
    expect(page.locator("#timeline .row")).to_have_count(1)


def test_a_running_bar_is_drawn_and_ends_when_the_step_does(
    page: Page, dashboard: DashboardServer
) -> None:
    """While the step runs its bar says running; the live events turn it into a finished one."""
    execution_id = dashboard.start(SLOW)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    row = page.locator('#timeline .row[data-step-id="nap"]')
    expect(row.locator(".seg-running")).to_have_count(1)
    expect(row.locator(".seg-attempt")).to_have_count(1, timeout=15_000)
    expect(row.locator(".seg-running")).to_have_count(0)


def test_an_outage_keeps_the_timeline_and_journal_and_they_catch_up_after_it(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """While the link is cut no panel turns into an error; after it both show the final state."""
    port = urlsplit(dashboard.url).port
    assert port is not None
    with link_proxy(port) as proxy:
        execution_id = dashboard.start(PACED)
        page.goto(f"{proxy.url}/ui/executions/{execution_id}")
        page.get_by_role("tab", name="Timeline").click()
        expect(page.locator('#timeline .row-label[data-step-id="s1"]')).to_be_visible(
            timeout=15_000
        )
        proxy.cut()
        expect(page.locator("#banner")).to_contain_text("Connection to the server lost")
        # A read that fails during the outage (a new filter) keeps the rows shown.
        page.get_by_role("tab", name="Journal").click()
        expect(page.locator("#journal tbody tr[data-seq]").first).to_be_visible()
        page.get_by_text("Event types").click()
        page.get_by_label("step.succeeded").check()
        expect(page.locator("#journal .journal-filter-text")).to_have_text("Showing 1 type")
        expect(page.locator("#journal .error-message")).to_have_count(0)
        expect(page.locator("#journal tbody tr[data-seq]").first).to_be_visible()
        dashboard.wait_for_status(execution_id, "succeeded")
        proxy.restore()
        expect(page.locator("#banner")).to_be_hidden(timeout=15_000)
        # "reconnected": the journal reads its filtered page again, the timeline its rows.
        expect(page.locator("#journal tbody tr[data-seq]")).to_have_count(PACED_STEPS)
        page.get_by_role("tab", name="Timeline").click()
        for index in range(PACED_STEPS):
            label = page.locator(f'#timeline .row-label[data-step-id="s{index}"]')
            expect(label).to_have_attribute("data-status", "succeeded")
        expect(page.locator("#timeline .error-message, #journal .error-message")).to_have_count(0)
    unexpected = [problem for problem in browser_problems if not NETWORK_ERROR.search(problem)]
    assert unexpected == []
    browser_problems.clear()


def test_the_axis_starts_at_0_and_reads_milliseconds_below_a_second(
    page: Page, dashboard: DashboardServer
) -> None:
    """A short run's axis: a `0` tick first, then `50 ms`-style ticks, never `0.05s`."""
    execution_id = dashboard.run(RETRIED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    ticks = page.locator("#timeline .timeline-axis .tick")
    expect(ticks.first).to_have_text("0")
    page.get_by_role("button", name="Zoom in on the timeline").click()
    expect(ticks.nth(1)).to_have_text(re.compile(r"^\d+ ms$"))
    labels = ticks.all_text_contents()
    assert not [label for label in labels if re.fullmatch(r"0\.\d+s", label)], labels


def test_a_crash_and_resume_show_the_cut_attempt_the_gap_and_when_it_resumed(
    page: Page, tmp_path: Path
) -> None:
    """A SIGKILLed server's attempt is a visible interrupted bar; the gap says when it resumed."""
    journal = tmp_path / "journal.db"
    with start_dashboard(journal) as first:
        execution_id = first.start(SLOW)
        deadline = time.monotonic() + 20
        while "attempt.started" not in {
            event["type"]
            for event in first.client.get(f"/executions/{execution_id}/journal").json()["events"]
        }:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.process.kill()
        first.process.wait()
    with start_dashboard(journal) as second:
        assert second.client.post(f"/executions/{execution_id}/resume").status_code == 202
        second.wait_for_status(execution_id, "succeeded")
        timeline = second.client.get(f"/executions/{execution_id}/timeline").json()
        [nap] = timeline["rows"]
        assert [(s["kind"], s["attempt"]) for s in nap["segments"]] == [
            ("interrupted", 1),
            ("attempt", 2),
        ]
        assert nap["attempts"] == 2
        page.goto(f"{second.url}/ui/executions/{execution_id}")
        cut = page.locator('#timeline .row[data-step-id="nap"] .seg-interrupted rect')
        expect(cut).to_have_count(1)
        assert float(cut.get_attribute("width") or 0) >= 8
        gap = page.locator("#timeline .timeline-gaps .gap rect")
        expect(gap).to_have_count(1)
        assert float(gap.get_attribute("width") or 0) >= 10
        expect(page.locator("#timeline .timeline-resumes")).to_contain_text(
            re.compile(r"Resumed at .+, .+ after the last event before it")
        )


def test_a_collapsed_loop_row_shows_the_bars_of_its_iterations(
    page: Page, dashboard: DashboardServer
) -> None:
    """Collapsed, a loop's row draws each iteration's attempt, each tooltip naming its iteration."""
    execution_id = dashboard.run(LOOPED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    label = page.locator('#timeline .row-label[data-step-id="draft"]')
    expect(label).to_have_attribute("aria-expanded", "false")
    expect(label).to_have_attribute("aria-label", re.compile(r"^draft: succeeded, 3 iterations;"))
    bars = page.locator('#timeline .row[data-step-id="draft"] .seg-attempt')
    expect(bars).to_have_count(3)
    expect(bars.locator("title")).to_contain_text(
        [
            re.compile(r"^draft#1 — attempt 1: succeeded"),
            re.compile(r"^draft#2 — attempt 1: succeeded"),
            re.compile(r"^draft#3 — attempt 1: succeeded"),
        ]
    )
    label.focus()
    page.keyboard.press("Enter")
    expect(page.locator('#timeline .row[data-step-id="draft#3"] .seg-attempt')).to_have_count(1)
    expect(page.locator('#timeline .row[data-step-id="draft"] .seg')).to_have_count(1)


def test_a_click_anywhere_on_a_step_name_selects_the_step(
    page: Page, dashboard: DashboardServer
) -> None:
    """The name cell takes the click between its words too; the step panel shows the step."""
    execution_id = dashboard.run(RETRIED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    page.locator('#timeline .row-label[data-step-id="flaky"]').click()
    expect(page.get_by_role("complementary", name="flaky")).to_be_visible()
