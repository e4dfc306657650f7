"""The execution page's graph in a real browser: live statuses, groups, keyboard, a big run."""

from __future__ import annotations

import re
from typing import Any

from dashboard_server import DashboardServer
from playwright.sync_api import Page, expect

LIVE: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "live",
    "steps": [
        {"id": "nap", "agent": "sleep", "input": {"seconds": 1.5}},
        {"id": "broken", "agent": "fail", "depends_on": ["nap"], "input": {}},
    ],
}
MAPPED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "mapped",
    "steps": [
        {"id": "fetch", "agent": "echo", "input": {"xs": [1, 2, 3, 4, 5]}},
        {
            "id": "each",
            "agent": "echo",
            "for_each": "steps.fetch.output.xs",
            "depends_on": ["fetch"],
            "input": {"x": "${item}"},
        },
    ],
}
DIAMOND: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "diamond",
    "steps": [
        {"id": "a", "agent": "echo", "input": 1},
        {"id": "b", "agent": "echo", "depends_on": ["a"], "input": 2},
        {"id": "c", "agent": "echo", "depends_on": ["a"], "input": 3},
        {"id": "d", "agent": "echo", "depends_on": ["b", "c"], "input": 4},
    ],
}


def node(page: Page, step_id: str) -> Any:
    """The graph node of `step_id`."""
    return page.locator(f'.graph-node[data-step-id="{step_id}"]')


def test_nodes_change_status_word_and_colour_as_events_arrive(
    page: Page, dashboard: DashboardServer
) -> None:
    """A sleeping step shows running then succeeded; the step after it ends failed."""
    execution_id = dashboard.start(LIVE)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(node(page, "nap")).to_have_attribute("data-status", "running")
    expect(node(page, "nap").locator(".status")).to_have_text("running")
    expect(node(page, "broken")).to_have_attribute("data-status", "pending")
    expect(node(page, "nap").locator(".status")).to_have_text("succeeded", timeout=15_000)
    expect(node(page, "broken")).to_have_attribute("data-status", "failed", timeout=15_000)
    expect(node(page, "broken").locator(".status")).to_have_text("failed")
    expect(node(page, "broken")).to_have_attribute("aria-label", "step broken, failed, 3 attempts")
    expect(page.locator("#execution-status")).to_have_text("failed")


def test_a_map_is_one_node_with_counts_that_expands_into_its_items(
    page: Page, dashboard: DashboardServer
) -> None:
    """The map node counts its items; a click lists them; an item is selectable."""
    execution_id = dashboard.run(MAPPED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    each = node(page, "each")
    expect(each).to_have_attribute("data-group", "map")
    expect(each).to_contain_text("5/5 succeeded")
    expect(page.locator(".graph-node")).to_have_count(2)
    each.click()
    expect(each).to_have_attribute("aria-expanded", "true")
    members = page.locator(".graph-members")
    expect(members.get_by_role("heading")).to_have_text("each: items")
    expect(members.locator(".member")).to_have_count(5)
    item = members.locator('[data-member-id="each[3]"] button')
    expect(item).to_contain_text("succeeded")
    item.click()
    expect(item).to_have_attribute("aria-current", "true")
    expect(each).to_have_attribute("aria-current", "true")
    each.press("Enter")
    expect(members).to_be_hidden()
    expect(each).to_have_attribute("aria-expanded", "false")


def test_a_maps_counts_follow_its_items_live(page: Page, dashboard: DashboardServer) -> None:
    """Items finishing one by one move the map node's counts while the page watches."""
    workflow = {
        "schema_version": "1.1",
        "name": "slow-map",
        "steps": [
            {
                "id": "each",
                "agent": "sleep",
                "for_each": "inputs.xs",
                "max_concurrency": 1,
                "input": {"seconds": 1.5},
            }
        ],
    }
    execution_id = dashboard.start(workflow, {"xs": [1, 2, 3]})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    each = node(page, "each")
    expect(each).to_contain_text("1/3 succeeded \u00b7 1 running", timeout=10_000)
    expect(each).to_contain_text("2/3 succeeded \u00b7 1 running", timeout=10_000)
    expect(each).to_contain_text("3/3 succeeded", timeout=10_000)
    expect(each).to_have_attribute("data-status", "succeeded")


def test_a_sub_workflow_node_links_to_its_child_execution(
    page: Page, dashboard: DashboardServer
) -> None:
    """Expanding a sub-workflow step offers its child execution's page."""
    inner = {"schema_version": "1.0", "name": "inner", "steps": [{"id": "x", "agent": "echo"}]}
    workflow = {
        "schema_version": "1.1",
        "name": "outer",
        "steps": [{"id": "nested", "workflow": inner, "input": {}}],
    }
    execution_id = dashboard.run(workflow)
    (child,) = dashboard.execution(execution_id)["children"]
    child_id = child["execution_id"]
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    nested = node(page, "nested")
    expect(nested).to_have_attribute("data-group", "workflow")
    expect(nested).to_contain_text(f"child run {child_id[:8]}")
    nested.press("Enter")
    page.get_by_role("link", name=f"Open child execution {child_id[:8]}").click()
    expect(page).to_have_url(f"{dashboard.url}/ui/executions/{child_id}")
    expect(node(page, "x").locator(".status")).to_have_text("succeeded")


def test_the_keyboard_moves_along_edges_and_selects(page: Page, dashboard: DashboardServer) -> None:
    """The first step is the tab stop; arrows follow edges and columns; Enter selects."""
    execution_id = dashboard.run(DIAMOND)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(node(page, "a")).to_have_attribute("tabindex", "0")
    node(page, "a").focus()
    page.keyboard.press("ArrowRight")
    first = page.locator(".graph-node:focus")
    expect(first).to_have_attribute("data-step-id", "b")
    page.keyboard.press("ArrowUp")
    expect(node(page, "c")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(node(page, "c")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(node(page, "d")).to_be_focused()
    page.keyboard.press("Enter")
    expect(node(page, "d")).to_have_attribute("aria-current", "true")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Space")
    expect(node(page, "d")).not_to_have_attribute("aria-current", "true")
    expect(page.locator('.graph-node[aria-current="true"]')).to_have_count(1)


def test_five_hundred_steps_draw_with_the_layered_layout_and_their_final_statuses(
    page: Page, dashboard: DashboardServer
) -> None:
    """Above 300 steps the layered layout draws only what is visible; fitting shows them all."""
    steps = [
        {"id": f"s{n}", "agent": "echo", "input": n}
        | ({"depends_on": [f"s{n - 50}"]} if n >= 50 else {})
        for n in range(500)
    ]
    execution_id = dashboard.run({"schema_version": "1.0", "name": "wide", "steps": steps})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(page.locator(".graph-info")).to_have_text("500 steps \u00b7 layered layout")
    expect(node(page, "s0").locator(".status")).to_have_text("succeeded")
    assert page.locator(".graph-node").count() < 500
    page.get_by_role("button", name="Fit the whole graph").click()
    expect(node(page, "s499").locator(".status")).to_have_text("succeeded")
    expect(page.locator('.graph-node[data-status="succeeded"]')).to_have_count(500)


def test_up_and_down_carry_on_into_a_wrapped_ranks_next_sub_column(
    page: Page, dashboard: DashboardServer
) -> None:
    """A rank of 320 steps wraps into sub-columns of 40; ArrowDown walks on from s39 to s40."""
    steps = [{"id": f"s{n}", "agent": "echo", "input": n} for n in range(320)]
    execution_id = dashboard.run({"schema_version": "1.0", "name": "wide", "steps": steps})
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(page.locator(".graph-info")).to_have_text("320 steps \u00b7 layered layout")
    node(page, "s0").focus()
    for _ in range(40):
        page.keyboard.press("ArrowDown")
    expect(node(page, "s40")).to_be_focused()
    # The head of the second sub-column: one node width and half a rank gap right of the first.
    expect(node(page, "s40")).to_have_attribute("transform", "translate(232,16)")
    page.keyboard.press("ArrowUp")
    expect(node(page, "s39")).to_be_focused()


def test_a_maps_node_is_announced_by_its_items_not_its_attempts(
    page: Page, dashboard: DashboardServer
) -> None:
    """A map of five items reads `5 items` to a screen reader, not `0 attempts`."""
    execution_id = dashboard.run(MAPPED)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(node(page, "each")).to_have_attribute("aria-label", re.compile(r", 5 items,"))
    expect(node(page, "each")).not_to_have_attribute("aria-label", re.compile("attempt"))


def test_a_map_cancelled_before_its_items_were_known_says_so(
    page: Page, dashboard: DashboardServer
) -> None:
    """Cancelled while the step giving its items ran, a map reads so, not `0/? succeeded`."""
    workflow = {
        "schema_version": "1.1",
        "name": "early",
        "steps": [
            {"id": "fetch", "agent": "sleep", "input": {"seconds": 60}},
            {
                "id": "each",
                "agent": "echo",
                "for_each": "steps.fetch.output.xs",
                "depends_on": ["fetch"],
                "input": {"x": "${item}"},
            },
        ],
    }
    execution_id = dashboard.start(workflow)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(node(page, "fetch").locator(".status")).to_have_text("running")
    response = dashboard.client.post(f"/executions/{execution_id}/cancel", json={})
    assert response.status_code in (200, 202), response.text
    expect(page.locator("#execution-status")).to_have_text("cancelled", timeout=15_000)
    status = node(page, "each").get_attribute("data-status")
    expect(node(page, "each").locator(".node-subtitle")).to_have_text(
        f"{status} before items known"
    )


def test_a_rejected_gates_node_says_rejected_while_its_status_is_the_apis(
    page: Page, dashboard: DashboardServer
) -> None:
    """The gate's answer is the node's second line; its status word stays `succeeded`."""
    workflow = {
        "schema_version": "1.1",
        "name": "gated",
        "steps": [{"id": "review", "approval": {"prompt": "Ship it?"}}],
    }
    execution_id = dashboard.start(workflow)
    page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
    expect(node(page, "review").locator(".node-subtitle")).to_have_text("approval \u00b7 gate open")
    answer = {"approve": False, "reason": "not today", "by": "ann"}
    response = dashboard.client.post(f"/executions/{execution_id}/gates/review", json=answer)
    assert response.status_code in (200, 202), response.text
    expect(node(page, "review").locator(".status")).to_have_text("succeeded", timeout=15_000)
    expect(node(page, "review").locator(".node-subtitle")).to_have_text(
        "approval \u00b7 gate rejected"
    )
    page.reload()
    expect(node(page, "review").locator(".node-subtitle")).to_have_text(
        "approval \u00b7 gate rejected"
    )
