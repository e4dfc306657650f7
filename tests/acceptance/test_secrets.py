"""No secret from a workflow's config or the environment leaks into any output of a real run.

Runs the real `orchestr8 run` with secrets in an agent's config, in its input and in the
environment, debug-level JSON logs and the console span exporter on, then searches stdout, stderr
(progress, logs, spans) and every row of the SQLite journal for them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

CONFIG_SECRET = "cfg-secret-value-4242"
ENVIRONMENT_SECRET = "sk-ant-env-secret-98765"
INPUT_SECRET = "input-password-31337"

AGENT_MODULE = '''
import logging
import os

import orchestr8


class Leaky(orchestr8.Agent):
    """Does everything an agent should not do with secrets."""

    async def run(self, input, context):
        key = self.config["api_key"]
        env_key = os.environ["ANTHROPIC_API_KEY"]
        logging.getLogger("leaky").warning("calling with api_key=%s and %s", key, env_key)
        context.logger.info("token: %s", key)
        context.progress({"token": key, "note": "using " + env_key})
        if input.get("fail"):
            raise orchestr8.NonRetryableError(f"upstream refused key {key} / {env_key}")
        return {"password": input["password"], "echo": f"key was {env_key}", "ok": True}
'''


def test_no_secret_appears_in_output_logs_spans_or_journal(tmp_path: Path) -> None:
    """Secrets in config, input and environment are `***` everywhere a run writes."""
    (tmp_path / "leaky_agents.py").write_text(AGENT_MODULE)
    workflow = {
        "schema_version": "1.0",
        "name": "secrets",
        "fail_fast": False,
        "steps": [
            {
                "id": "works",
                "input": {"password": INPUT_SECRET},
                "agent": {"id": "leaky_agents:Leaky", "config": {"api_key": CONFIG_SECRET}},
            },
            {
                "id": "breaks",
                "input": {"fail": True, "password": INPUT_SECRET},
                "agent": {"id": "leaky_agents:Leaky", "config": {"api_key": CONFIG_SECRET}},
                "policy": {"retry": {"max_attempts": 1}},
            },
        ],
    }
    (tmp_path / "secrets.json").write_text(json.dumps(workflow))
    journal = tmp_path / "journal.db"
    environment = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    environment.update(
        PYTHONPATH=str(tmp_path),
        NO_COLOR="1",
        ANTHROPIC_API_KEY=ENVIRONMENT_SECRET,
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestr8",
            "run",
            "secrets.json",
            "--journal",
            str(journal),
            "--json",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert '"name": "agent.run"' in done.stdout + done.stderr  # spans were exported
    assert '"message": "calling with' in done.stderr  # the agent's log line was written
    with sqlite3.connect(journal) as connection:
        rows = [
            repr(row)
            for table in ("executions", "events")
            for row in connection.execute(f"SELECT * FROM {table}")
        ]
    assert any("upstream refused key" in row for row in rows)
    for secret in (CONFIG_SECRET, ENVIRONMENT_SECRET, INPUT_SECRET):
        assert secret not in done.stdout
        assert secret not in done.stderr
        assert not [row for row in rows if secret in row]
    assert "***" in done.stdout
    assert "upstream refused key *** / ***" in done.stdout
