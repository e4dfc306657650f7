"""A lost connection shows a banner, and the page reconnects from its cursor, losing nothing."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from dashboard_server import DashboardServer
from link_proxy import link_proxy
from playwright.sync_api import Page, expect

STEPS = 8
PACED: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "paced",
    "strategy": "sequential",
    "steps": [
        {"id": f"s{index}", "agent": "sleep", "input": {"seconds": 0.4}} for index in range(STEPS)
    ],
}
NETWORK_ERROR = re.compile(r"Failed to load resource|WebSocket connection to|net::ERR_")


def test_a_cut_link_shows_a_banner_and_the_page_catches_up_without_gaps(
    dashboard: DashboardServer, page: Page, browser_problems: list[str]
) -> None:
    """Steps that ended while the link was down turn succeeded after it, each event once."""
    port = urlsplit(dashboard.url).port
    assert port is not None
    with link_proxy(port) as proxy:
        execution_id = dashboard.start(PACED)
        page.goto(f"{proxy.url}/ui/executions/{execution_id}")
        status = page.locator('#graph [data-step-id="s1"] .status')
        expect(status).to_have_text("succeeded", timeout=15_000)
        proxy.cut()
        banner = page.locator("#banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Connection to the server lost")
        # The run goes on while the page cannot see it.
        dashboard.wait_for_status(execution_id, "succeeded")
        proxy.restore()
        expect(banner).to_be_hidden(timeout=15_000)
        # The graph draws only what is in view: fit it all in first.
        page.get_by_role("button", name="Fit the whole graph").click()
        for index in range(STEPS):
            step = page.locator(f'#graph [data-step-id="s{index}"] .status')
            expect(step).to_have_text("succeeded")
        expect(page.locator("#execution-status")).to_have_text("succeeded")
        last_seq = dashboard.execution(execution_id)["last_seq"]
        page.get_by_role("tab", name="Journal").click()
        rows = page.locator("#journal tbody tr[data-seq]")
        expect(rows).to_have_count(last_seq)
        seqs = [int(seq) for seq in rows.evaluate_all("rows => rows.map(r => r.dataset.seq)")]
        assert seqs == list(range(last_seq, 0, -1))
    # What the browser logged about the refused connections is the point of the test.
    unexpected = [problem for problem in browser_problems if not NETWORK_ERROR.search(problem)]
    assert unexpected == []
    browser_problems.clear()
