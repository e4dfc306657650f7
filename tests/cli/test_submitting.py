"""`orchestr8 run --submit [--wait]` and `orchestr8 worker`: what they refuse, what they print."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from cli_in_process import call

ECHO = {
    "schema_version": "1.0",
    "name": "echo-once",
    "steps": [{"id": "a", "agent": "echo", "input": {"text": "hi"}}],
}


def flow(directory: Path) -> Path:
    """The echo workflow's file in `directory`."""
    path = directory / "echo.json"
    path.write_text(json.dumps(ECHO))
    return path


def test_submit_prints_the_id_of_the_queued_execution(tmp_path: Path, postgres_url: str) -> None:
    """`--submit --json` prints the id and status `pending`; the execution waits in the queue."""
    outcome = call(
        "run", str(flow(tmp_path)), "--submit", "--json", "--journal", postgres_url, cwd=tmp_path
    )
    assert outcome.code == 0, outcome.stderr
    document = json.loads(outcome.stdout)
    assert document["status"] == "pending"
    assert f"orchestr8 follow --journal {postgres_url} {document['execution_id']}" in outcome.stderr
    with psycopg.connect(postgres_url, options="-c search_path=orchestr8") as connection:
        rows = connection.execute("SELECT execution_id FROM leases WHERE queued").fetchall()
    assert rows == [(document["execution_id"],)]
    # Queued for the workers, not interrupted: no `orchestr8 resume` needed.
    shown = call(
        "inspect", document["execution_id"], "--json", "--journal", postgres_url, cwd=tmp_path
    )
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "pending"


def test_submit_needs_a_postgresql_journal_and_wait_needs_submit(tmp_path: Path) -> None:
    """`--submit` on a SQLite journal and `--wait` alone are refused with the fix, exit 1."""
    path = flow(tmp_path)
    refused = call("run", str(path), "--submit", "--journal", str(tmp_path / "j.db"), cwd=tmp_path)
    assert refused.code == 1
    assert "PostgreSQL journal" in refused.stderr
    alone = call("run", str(path), "--wait", cwd=tmp_path)
    assert alone.code == 1
    assert "--wait follows a submitted execution: give --submit too" in alone.stderr


@pytest.mark.parametrize(
    ("option", "instead"),
    [
        (["--timeout", "5"], "the worker applies the workflow's own timeout"),
        (["--secrets-file", "secrets.json"], "from its own --secrets-file"),
        (["--sync-workers", "4"], "the worker's --sync-workers applies"),
        (["--exit-when-waiting"], "add --wait to follow it"),
    ],
)
def test_submit_refuses_the_options_only_a_worker_decides(
    tmp_path: Path, postgres_url: str, option: list[str], instead: str
) -> None:
    """An option a worker cannot honour is refused with what applies instead; nothing queued."""
    outcome = call(
        "run", str(flow(tmp_path)), "--submit", *option, "--journal", postgres_url, cwd=tmp_path
    )
    assert outcome.code == 1
    assert f"{option[0]} does not apply with --submit: " in outcome.stderr
    assert instead in outcome.stderr
    with psycopg.connect(postgres_url, options="-c search_path=orchestr8") as connection:
        assert connection.execute("SELECT count(*) FROM executions").fetchone() == (0,)


def test_a_worker_needs_a_postgresql_journal(tmp_path: Path) -> None:
    """`orchestr8 worker` without a PostgreSQL URL says what to give it, exit 1."""
    outcome = call("worker", "--journal", str(tmp_path / "j.db"), cwd=tmp_path)
    assert outcome.code == 1
    assert "orchestr8 worker needs a PostgreSQL journal" in outcome.stderr
    malformed = call("worker", "--journal", "postgresql://x@127.0.0.1:99999/db", cwd=tmp_path)
    assert malformed.code == 1
    assert "is malformed" in malformed.stderr
