"""A real `orchestr8 serve` for the dashboard's browser tests, and a client to drive it.

Synchronous on purpose: Playwright's sync API runs the browser, and the tests start workflows,
answer gates and read executions through the server's REST API with httpx, like a person with a
second terminal would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx

RETRIED: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "retried",
    "steps": [
        {"id": "first", "agent": "echo", "input": "hello"},
        {
            "id": "flaky",
            "agent": {"id": "fail", "config": {"times": 1}},
            "depends_on": ["first"],
            "input": "x",
            "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.05}},
        },
    ],
}
"""A workflow whose second step fails once and succeeds on its retry: a retry to look at."""


@attrs.define
class DashboardServer:
    """A running `orchestr8 serve`: its URL, journal, process and an HTTP client on it."""

    url: str
    journal: Path | str
    process: subprocess.Popen[bytes]
    client: httpx.Client
    api_key: str | None = None

    def start(self, workflow: dict[str, Any], inputs: dict[str, Any] | None = None) -> str:
        """Start `workflow` through `POST /workflows/execute`; its execution id."""
        response = self.client.post(
            "/workflows/execute", json={"workflow": workflow, "inputs": inputs or {}}
        )
        assert response.status_code == 202, response.text
        execution_id: str = response.json()["execution_id"]
        return execution_id

    def execution(self, execution_id: str) -> dict[str, Any]:
        """`GET /executions/{id}`."""
        response = self.client.get(f"/executions/{execution_id}")
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    def wait_for_status(self, execution_id: str, *statuses: str, within: float = 20.0) -> str:
        """Poll the execution until its status is one of `statuses`; that status."""
        deadline = time.monotonic() + within
        while True:
            status: str = self.execution(execution_id)["status"]
            if status in statuses:
                return status
            assert time.monotonic() < deadline, f"{execution_id} is still {status}"
            time.sleep(0.05)

    def run(self, workflow: dict[str, Any], inputs: dict[str, Any] | None = None) -> str:
        """Start `workflow` and wait until it has ended; its execution id."""
        execution_id = self.start(workflow, inputs)
        self.wait_for_status(execution_id, "succeeded", "failed", "cancelled")
        return execution_id


def _environment(api_key: str | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ORCHESTR8_API_KEY", "ORCHESTR8_JOURNAL")
    }
    env["NO_COLOR"] = "1"
    if api_key is not None:
        env["ORCHESTR8_API_KEY"] = api_key
    return env


@contextmanager
def start_dashboard(
    journal: Path | str, *args: str, api_key: str | None = None, cwd: Path | None = None
) -> Iterator[DashboardServer]:
    """Run `orchestr8 serve --port 0 --journal JOURNAL ARGS` until the block ends (SIGTERM).

    `journal` is a file (the server runs in its directory) or a PostgreSQL URL (in `cwd`).
    """
    command = [sys.executable, "-m", "orchestr8", "serve", "--port", "0"]
    command += ["--journal", str(journal), "--cancel-grace", "0.5", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(api_key),
        cwd=journal.parent if isinstance(journal, Path) else cwd,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("orchestr8 serving on http://127.0.0.1:"):
            process.kill()
            _, stderr = process.communicate(timeout=10)
            raise AssertionError(f"serve did not start: {line!r}\n{stderr.decode()}")
        url = line.split()[-1]
        headers = {} if api_key is None else {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            yield DashboardServer(url, journal, process, client, api_key)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
