"""The dashboard of a server on a PostgreSQL journal follows a run another process runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_processes import environment
from dashboard_server import start_dashboard
from playwright.sync_api import Page, expect

NAPS = {
    "schema_version": "1.0",
    "name": "naps-on-postgresql",
    "strategy": "sequential",
    "steps": [
        {"id": "first", "agent": "sleep", "input": {"seconds": 0.5}},
        {"id": "second", "agent": "sleep", "input": {"seconds": 0.5}},
        {"id": "last", "agent": "echo", "input": {"done": True}},
    ],
}


def test_a_run_elsewhere_turns_succeeded_live_on_a_postgresql_server(
    page: Page, postgres_url: str, tmp_path: Path
) -> None:
    """`orchestr8 run --journal URL` runs it; the server's list and page show it live to its end."""
    workflow = tmp_path / "naps.json"
    workflow.write_text(json.dumps(NAPS))
    with start_dashboard(postgres_url, cwd=tmp_path) as dashboard:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestr8", "run", str(workflow), "--journal", postgres_url],
            cwd=tmp_path,
            env=environment(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            first = process.stderr.readline()
            assert first.startswith("execution "), first
            execution_id = first.split()[1]
            page.goto(f"{dashboard.url}/ui/executions/{execution_id}")
            expect(page.locator('[data-step-id="last"] .status')).to_have_text(
                "succeeded", timeout=15_000
            )
            expect(page.locator("#execution-status")).to_have_text("succeeded")
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)
        page.goto(f"{dashboard.url}/ui/")
        row = page.locator(f'tr[data-execution-id="{execution_id}"]')
        expect(row).to_contain_text("succeeded")
        expect(row).to_contain_text("naps-on-postgresql")
