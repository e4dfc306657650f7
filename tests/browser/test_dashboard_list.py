"""The executions list in a browser: live rows, filters in the URL, id search, paging, compare.

Every test takes `dashboard` before `page`, so the page (which polls every second) closes before
the server stops: a poll of a stopped server would be a console error, failing the test.
"""

from __future__ import annotations

import re
from typing import Any

from dashboard_server import DashboardServer
from playwright.sync_api import Page, expect


def workflow(name: str, seconds: float = 0.0) -> dict[str, Any]:
    """A one-step workflow called `name` that sleeps `seconds` (an echo when 0)."""
    step: dict[str, Any] = {"id": "only", "agent": "echo", "input": {"n": 1}}
    if seconds:
        step = {"id": "only", "agent": "sleep", "input": {"seconds": seconds}}
    return {"schema_version": "1.0", "name": name, "steps": [step]}


FAILING: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "breaks",
    "steps": [{"id": "boom", "agent": {"id": "fail", "config": {"message": "nope"}}}],
}


def row(page: Page, execution_id: str) -> Any:
    """The table row of one execution."""
    return page.locator(f'tr[data-execution-id="{execution_id}"]')


def test_a_run_started_after_the_page_opened_appears_and_turns_succeeded(
    dashboard: DashboardServer, page: Page
) -> None:
    """Without a reload, a new run appears at the top as running, then says succeeded."""
    earlier = dashboard.run(workflow("earlier"))
    page.goto(f"{dashboard.url}/ui/")
    expect(row(page, earlier).locator(".status")).to_have_text("succeeded")
    execution_id = dashboard.start(workflow("later", seconds=1.5))
    live = row(page, execution_id)
    expect(live.locator(".status")).to_have_text("running")
    expect(page.locator("tbody tr").first).to_have_attribute("data-execution-id", execution_id)
    expect(page.locator("#list-announcer")).to_have_text("1 new execution")
    expect(live.locator(".status")).to_have_text("succeeded", timeout=15_000)
    expect(live.locator("a")).to_have_attribute("href", f"/ui/executions/{execution_id}")


def test_filters_by_status_and_workflow_are_kept_in_the_url(
    dashboard: DashboardServer, page: Page
) -> None:
    """Status and workflow filters narrow the rows, land in the URL and survive a reload."""
    good = dashboard.run(workflow("good"))
    bad = dashboard.run(FAILING)
    page.goto(f"{dashboard.url}/ui/")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Status").select_option("failed")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row(page, bad).locator(".status")).to_have_text("failed")
    expect(page).to_have_url(re.compile(r"\?status=failed$"))
    page.get_by_label("Status").select_option("")
    page.get_by_label("Workflow").fill("good")
    page.get_by_label("Workflow").press("Enter")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row(page, good)).to_contain_text("good")
    page.reload()
    expect(page.get_by_label("Workflow")).to_have_value("good")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_label("Workflow").fill("nothing-like-it")
    expect(page.locator(".empty")).to_have_text("No executions match workflow “nothing-like-it”.")


def test_an_id_prefix_finds_the_execution_and_a_bad_one_says_why(
    dashboard: DashboardServer, page: Page
) -> None:
    """Typing the start of an id keeps its row; a non-hex prefix is a readable error."""
    first = dashboard.run(workflow("one"))
    second = dashboard.run(workflow("two"))
    page.goto(f"{dashboard.url}/ui/")
    expect(page.locator("tbody tr")).to_have_count(2)
    search = page.get_by_label("Id starts with")
    search.fill(second[:6])
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row(page, second)).to_be_visible()
    expect(row(page, first)).to_have_count(0)
    search.fill("zz-top")
    error = page.get_by_role("alert")
    expect(error).to_contain_text("Invalid id prefix")
    expect(error).to_contain_text("“zz-top” cannot start an execution id.")
    expect(error).to_contain_text("id_prefix: use 1 to 32 characters from 0 to 9 and a to f")
    expect(search).to_have_attribute("aria-invalid", "true")
    search.fill("")
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_role("alert")).to_have_count(0)


def test_older_and_newer_page_through_the_executions(
    dashboard: DashboardServer, page: Page
) -> None:
    """With `?limit=2`, five runs make three pages; Older and Newer walk them by cursor."""
    ids = [dashboard.run(workflow(f"run-{index}")) for index in range(5)]
    page.goto(f"{dashboard.url}/ui/?limit=2")
    rows = page.locator("tbody tr")
    older = page.get_by_role("button", name="Older →")
    newer = page.get_by_role("button", name="← Newer")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-execution-id", ids[4])
    expect(newer).to_be_disabled()
    older.click()
    expect(page.locator("#page-number")).to_have_text("Page 2")
    expect(rows.first).to_have_attribute("data-execution-id", ids[2])
    older.click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-execution-id", ids[0])
    expect(older).to_be_disabled()
    newer.click()
    expect(rows.first).to_have_attribute("data-execution-id", ids[2])
    newer.click()
    expect(rows.first).to_have_attribute("data-execution-id", ids[4])
    expect(newer).to_be_disabled()


def test_child_executions_show_only_when_asked(dashboard: DashboardServer, page: Page) -> None:
    """A sub-workflow's child row is hidden until "Show child executions" is ticked."""
    parent = dashboard.run(
        {
            "schema_version": "1.1",
            "name": "parent",
            "steps": [{"id": "sub", "workflow": workflow("child")}],
        }
    )
    page.goto(f"{dashboard.url}/ui/")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_label("Show child executions").check()
    child = row(page, f"{parent}.sub")
    expect(child.locator("a").first).to_have_text(f"{parent[:8]}.sub")
    expect(child.locator(".lineage")).to_have_text(f"child of {parent[:8]}")
    expect(page).to_have_url(re.compile(r"top_level=false"))


def test_ticking_two_rows_opens_their_comparison(dashboard: DashboardServer, page: Page) -> None:
    """Compare stays disabled until two rows are ticked, then goes to /ui/compare?a=&b=."""
    first = dashboard.run(workflow("left"))
    second = dashboard.run(workflow("right"))
    third = dashboard.run(workflow("other"))
    page.goto(f"{dashboard.url}/ui/")
    compare = page.locator("#compare")
    expect(compare).to_be_disabled()
    page.get_by_label(f"Select {first[:8]} (left) for comparison").check()
    page.get_by_label(f"Select {second[:8]} (right) for comparison").check()
    expect(page.get_by_label(f"Select {third[:8]} (other) for comparison")).to_be_disabled()
    expect(compare).to_have_text("Compare selected (2 of 2)")
    compare.click()
    expect(page).to_have_url(f"{dashboard.url}/ui/compare?a={first}&b={second}")


def test_an_older_page_updates_statuses_but_takes_no_new_rows(
    dashboard: DashboardServer, page: Page
) -> None:
    """On page 2 a running row turns succeeded in place; a newer run does not push into it."""
    slow = dashboard.start(workflow("slow", seconds=2.0))
    newer = dashboard.run(workflow("quick"))
    page.goto(f"{dashboard.url}/ui/?limit=1")
    rows = page.locator("tbody tr")
    expect(rows.first).to_have_attribute("data-execution-id", newer)
    page.get_by_role("button", name="Older →").click()
    expect(rows.first).to_have_attribute("data-execution-id", slow)
    expect(rows.first.locator(".status")).to_have_text("running")
    newest = dashboard.run(workflow("quicker"))
    expect(rows.first.locator(".status")).to_have_text("succeeded", timeout=15_000)
    expect(rows).to_have_count(1)
    page.get_by_role("button", name="← Newer").click()
    expect(rows.first).to_have_attribute("data-execution-id", newest)


def test_a_bad_status_or_cursor_in_the_url_shows_the_api_s_problem(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """?status=bogus and ?cursor=garbage are not ignored: the API's problem replaces the table."""
    dashboard.run(workflow("one"))
    page.goto(f"{dashboard.url}/ui/?status=bogus")
    error = page.get_by_role("alert")
    expect(error).to_contain_text("status: expected one of")
    expect(error).to_contain_text("got 'bogus'")
    expect(page.get_by_label("Status")).to_have_value("bogus")
    expect(page.locator("tbody tr")).to_have_count(0)
    page.goto(f"{dashboard.url}/ui/?cursor=garbage")
    expect(page.get_by_role("alert")).to_contain_text("cursor: not a cursor from a previous page")
    expect(page.locator("tbody tr")).to_have_count(0)
    page.get_by_label("Status").select_option("succeeded")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.get_by_role("alert")).to_have_count(0)
    browser_problems.clear()


def test_a_bad_limit_is_said_once(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """?limit=0: the problem's detail names the parameter; the same words are not listed again."""
    page.goto(f"{dashboard.url}/ui/?limit=0")
    error = page.get_by_role("alert")
    expect(error).to_contain_text("limit:")
    assert error.inner_text().count("limit:") == 1
    browser_problems.clear()


def test_the_page_shown_is_in_the_url_so_reload_and_back_keep_it(
    dashboard: DashboardServer, page: Page
) -> None:
    """Older pushes a history entry with its cursor: reload stays on page 2, Back returns to 1."""
    ids = [dashboard.run(workflow(f"run-{index}")) for index in range(3)]
    page.goto(f"{dashboard.url}/ui/?limit=2")
    rows = page.locator("tbody tr")
    expect(rows.first).to_have_attribute("data-execution-id", ids[2])
    page.get_by_role("button", name="Older →").click()
    expect(page).to_have_url(re.compile(r"limit=2&cursor=[^&]+&page=2$"))
    expect(rows.first).to_have_attribute("data-execution-id", ids[0])
    page.reload()
    expect(page.locator("#page-number")).to_have_text("Page 2")
    expect(rows.first).to_have_attribute("data-execution-id", ids[0])
    expect(page.get_by_role("button", name="← Newer")).to_be_enabled()
    page.go_back()
    expect(page).to_have_url(re.compile(r"/ui/\?limit=2$"))
    expect(page.locator("#page-number")).to_have_text("Page 1")
    expect(rows.first).to_have_attribute("data-execution-id", ids[2])
    page.go_forward()
    expect(page.locator("#page-number")).to_have_text("Page 2")
    page.get_by_role("button", name="← Newer").click()
    expect(page.locator("#page-number")).to_have_text("Page 1")
    expect(rows.first).to_have_attribute("data-execution-id", ids[2])


def test_an_unreachable_server_reads_plainly_and_keeps_the_rows(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """No raw 'Failed to fetch': a sentence for people (the browser's words in the tooltip)."""
    execution_id = dashboard.run(workflow("one"))
    page.goto(f"{dashboard.url}/ui/")
    expect(row(page, execution_id)).to_be_visible()
    page.route("**/executions?*", lambda route: route.abort())
    error = page.get_by_role("alert")
    expect(error).to_contain_text("The server cannot be reached")
    expect(error).to_contain_text("Is it still running?")
    expect(error).not_to_contain_text("Failed to fetch")
    expect(error).to_have_attribute("title", "Failed to fetch")
    expect(row(page, execution_id)).to_be_visible()
    page.unroute("**/executions?*")
    expect(error).to_have_count(0)
    browser_problems.clear()
