"""Take the screenshots of docs/dashboard.md from real runs: one per view of the dashboard.

Starts `orchestr8 serve --port 0` on 127.0.0.1 over a fresh journal, runs a few workflows through
the REST API (the retry example, a map, a refund that waits for approval, two runs to compare),
opens each view in Debian's Chromium through Playwright and saves a PNG per view under
`docs/images/` (and one of the execution page in dark mode). Nothing is staged: the pictures are
whatever the dashboard draws today, so run it again after a visible change and commit the result.

    python scripts/dashboard_screenshots.py                  # writes docs/images/dashboard-*.png
    python scripts/dashboard_screenshots.py --out /tmp/shots  # elsewhere
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1360, "height": 860}
API_KEY = "screenshots-only-key"

MAP: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "enrich-customers",
    "description": "Look up every customer (a map of 24 items, 6 at a time), then merge.",
    "inputs": {"type": "object", "properties": {"ids": {"type": "array"}}},
    "steps": [
        {"id": "load", "agent": "echo", "input": "${inputs.ids}"},
        {
            "id": "lookup",
            "depends_on": ["load"],
            "for_each": "steps.load.output",
            "max_concurrency": 6,
            "agent": "sleep",
            "input": {"seconds": 0.05, "customer": "${item}"},
        },
        {"id": "score", "depends_on": ["load"], "agent": "echo", "input": {"n": 3}},
        {"id": "merge", "depends_on": ["lookup", "score"], "agent": "echo", "input": "done"},
    ],
}


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "examples" / name).read_text())
    return document


@contextmanager
def server(journal: Path, api_key: str | None = None) -> Iterator[httpx.Client]:
    """`orchestr8 serve --port 0` over `journal` until the block ends; a client on it."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("ORCHESTR8_API_KEY", "ORCHESTR8_JOURNAL")
    }
    if api_key is not None:
        env["ORCHESTR8_API_KEY"] = api_key
    command = [sys.executable, "-m", "orchestr8", "serve", "--port", "0", "--journal", str(journal)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("orchestr8 serving on "):
            raise SystemExit(f"serve did not start: {line!r}")
        headers = {} if api_key is None else {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=line.split()[-1], headers=headers, timeout=30) as client:
            yield client
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def start(client: httpx.Client, workflow: dict[str, Any], inputs: dict[str, Any]) -> str:
    response = client.post("/workflows/execute", json={"workflow": workflow, "inputs": inputs})
    response.raise_for_status()
    execution_id: str = response.json()["execution_id"]
    return execution_id


def wait_for(client: httpx.Client, execution_id: str, *statuses: str) -> None:
    deadline = time.monotonic() + 60
    while client.get(f"/executions/{execution_id}").json()["status"] not in statuses:
        if time.monotonic() > deadline:
            raise SystemExit(f"{execution_id} never became {statuses}")
        time.sleep(0.05)


def open_gate(client: httpx.Client, execution_id: str) -> str:
    """Wait until the execution's approval gate is open; its id."""
    deadline = time.monotonic() + 60
    while True:
        gates = client.get(f"/executions/{execution_id}/gates").json()["gates"]
        if gates and gates[0]["status"] == "open":
            gate_id: str = gates[0]["gate_id"]
            return gate_id
        if time.monotonic() > deadline:
            raise SystemExit(f"{execution_id} never opened its gate")
        time.sleep(0.05)


def shoot(page: Page, out: Path, name: str) -> None:
    page.wait_for_timeout(400)  # let the last animation frame settle
    page.screenshot(path=out / f"dashboard-{name}.png")
    print(out / f"dashboard-{name}.png")


def execution_views(browser: Browser, client: httpx.Client, out: Path) -> None:
    base = str(client.base_url)
    retried = start(client, example("retry.json"), {})
    wait_for(client, retried, "succeeded")
    mapped = start(client, MAP, {"ids": [f"c{n:02d}" for n in range(24)]})
    wait_for(client, mapped, "succeeded")
    refund = start(client, example("approval.json"), {"customer": "ada", "amount": 25})
    other = start(client, example("approval.json"), {"customer": "grace", "amount": 40})
    for execution_id, amount in ((refund, 20), (other, 40)):
        gate = open_gate(client, execution_id)
        answer = {"approve": True, "by": "ann", "input": {"amount": amount}}
        client.post(f"/executions/{execution_id}/gates/{gate}", json=answer).raise_for_status()
        wait_for(client, execution_id, "succeeded")
    waiting = start(client, example("approval.json"), {"customer": "alan", "amount": 90})
    open_gate(client, waiting)

    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{base}/ui/")
    expect(page.locator(f'[data-execution-id="{waiting}"]')).to_be_visible()
    shoot(page, out, "list")

    page.goto(f"{base}/ui/executions/{mapped}?step=lookup")
    expect(page.locator('#graph [data-step-id="lookup"]')).to_be_visible()
    page.locator('#graph [data-step-id="lookup"]').click()
    shoot(page, out, "execution")

    page.goto(f"{base}/ui/executions/{retried}?step=flaky")
    expect(page.locator("#timeline svg").first).to_be_visible()
    page.locator("#timeline").scroll_into_view_if_needed()
    shoot(page, out, "timeline")

    page.get_by_role("tab", name="Journal").click()
    rows = page.locator("#journal tbody tr")
    expect(rows.first).to_be_visible()
    page.locator('#journal tbody tr:has-text("attempt.failed")').first.click()
    page.locator("#journal").scroll_into_view_if_needed()
    shoot(page, out, "journal")

    page.goto(f"{base}/ui/executions/{waiting}")
    expect(page.locator(".gate .gate-form")).to_be_visible()
    shoot(page, out, "gate")

    page.goto(f"{base}/ui/compare?a={refund}&b={other}")
    expect(page.locator("#comparison")).not_to_be_empty()
    shoot(page, out, "compare")
    page.close()

    dark = browser.new_page(viewport=VIEWPORT, color_scheme="dark")
    dark.goto(f"{base}/ui/executions/{retried}?step=flaky")
    expect(dark.locator('#graph [data-step-id="flaky"]')).to_be_visible()
    shoot(dark, out, "execution-dark")
    dark.close()


def login_view(browser: Browser, journal: Path, out: Path) -> None:
    with server(journal, api_key=API_KEY) as client:
        page = browser.new_page(viewport={"width": 900, "height": 560})
        page.goto(f"{client.base_url}/ui/")
        expect(page.get_by_label("API key")).to_be_visible()
        shoot(page, out, "login")
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=arguments.chromium, args=LAUNCH_ARGS)
        with server(Path(folder) / "journal.db") as client:
            execution_views(browser, client, arguments.out)
        login_view(browser, Path(folder) / "login.db", arguments.out)
        browser.close()


if __name__ == "__main__":
    main()
