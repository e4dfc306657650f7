"""`orchestr8 journal migrate` and `journal copy`, on SQLite files and a real PostgreSQL."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from cli_in_process import call
from cli_processes import environment
from postgres_server import PostgresServer

from orchestr8._journal._events import Event
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._postgres_schema import SCHEMA_VERSION as POSTGRES_VERSION
from orchestr8._journal._sqlite_schema import SCHEMA_VERSION as SQLITE_VERSION

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"

PIPELINE: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "pipeline",
    "inputs": {"type": "object", "properties": {"items": {"type": "array"}}},
    "steps": [
        {"id": "first", "agent": "echo", "input": {"n": 1}},
        {"id": "left", "agent": "echo", "depends_on": ["first"], "input": "l"},
        {"id": "right", "agent": "echo", "depends_on": ["first"], "input": "r"},
        {"id": "each", "agent": "echo", "for_each": "inputs.items", "input": "${item}"},
        {"id": "last", "agent": "echo", "depends_on": ["left", "right", "each"], "input": "end"},
    ],
    "output": {"last": "${steps.last.output}"},
}
"""Sequential, parallel and map steps at once."""

EVENT_COLUMNS = "execution_id, seq, ts, elapsed, type, step_id, attempt, data"


def _run_id(outcome: Any) -> str:
    """The execution id `run --json` printed."""
    document = json.loads(outcome.stdout)
    execution_id: str = document["execution_id"]
    return execution_id


def _record_interrupted(journal: Path, workflow: dict[str, Any]) -> str:
    """An execution a process started and died in (its first step started, never ended)."""

    async def main() -> None:
        async with open_journal(journal) as store:
            await store.create_execution(
                ExecutionRecord(
                    execution_id="dead-run",
                    workflow_name=workflow["name"],
                    workflow=workflow,
                    inputs={"items": [1]},
                )
            )
            stamp = "2025-01-01T00:00:00.000Z"
            for seq, kind in enumerate(("execution.started", "step.started"), start=1):
                step_id = "first" if kind.startswith("step.") else None
                await store.append(
                    Event("dead-run", seq, stamp, float(seq), kind, step_id, None, {})
                )

    trio.run(main)
    return "dead-run"


@pytest.fixture
def source(tmp_path: Path) -> dict[str, Any]:
    """Real runs: a pipeline, children, a failure and its fork, an answered gate, a dead run."""
    journal = tmp_path / "source.db"
    for name in ("sub_workflow.json", "sub_workflow_review.json", "fork.json", "approval.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "pipeline.json").write_text(json.dumps(PIPELINE))
    given = ("--journal", str(journal), "--json")
    ids: dict[str, str] = {}
    pipeline = call("run", "pipeline.json", *given, "--input", "items=[1,2,3]", cwd=tmp_path)
    assert pipeline.code == 0, pipeline.stderr
    ids["pipeline"] = _run_id(pipeline)
    children = call("run", "sub_workflow.json", *given, cwd=tmp_path)
    assert children.code == 0, children.stderr
    ids["children"] = _run_id(children)
    failed = call("run", "fork.json", *given, "--input", "year=20244", cwd=tmp_path)
    assert failed.code == 2, failed.stderr
    ids["failed"] = _run_id(failed)
    forked = call(
        "fork", ids["failed"], "--from", "check", "--input", "year=2024", *given, cwd=tmp_path
    )
    assert forked.code == 0, forked.stderr
    ids["fork"] = _run_id(forked)
    waiting = call("run", "approval.json", *given, "--exit-when-waiting", cwd=tmp_path)
    assert waiting.code == 5, waiting.stderr
    ids["approval"] = _run_id(waiting)
    answered = call(
        "approve",
        ids["approval"],
        "review",
        "--input",
        "amount=20",
        "--journal",
        str(journal),
        cwd=tmp_path,
    )
    assert answered.code == 0, answered.stderr
    resumed = call("resume", ids["approval"], *given, cwd=tmp_path)
    assert resumed.code == 0, resumed.stderr
    ids["interrupted"] = _record_interrupted(journal, PIPELINE)
    return {"root": tmp_path, "journal": journal, "ids": ids}


def _sqlite_rows(journal: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(journal)) as connection:
        return [tuple(row) for row in connection.execute(query)]


def _postgres_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, options="-c search_path=orchestr8") as connection:
        return [tuple(row) for row in connection.execute(query)]


def _inspected(root: Path, journal: str | Path, execution_id: str) -> Any:
    shown = call("inspect", execution_id, "--journal", str(journal), "--json", cwd=root)
    assert shown.code == 0, shown.stderr
    return json.loads(shown.stdout)


def test_a_copy_to_postgresql_and_back_keeps_every_row_and_reads_the_same(
    source: dict[str, Any], postgres_server: PostgresServer
) -> None:
    """SQLite → PostgreSQL → SQLite: every row unchanged; inspect, compare, resume, fork agree."""
    root, journal, ids = source["root"], source["journal"], source["ids"]
    url = postgres_server.create_empty_database()
    there = call("journal", "copy", str(journal), url, "--json", cwd=root)
    assert there.code == 0, there.stderr
    report = json.loads(there.stdout)
    executions = _sqlite_rows(journal, "SELECT count(*) FROM executions")[0][0]
    assert report["executions"] == report["verified"] == executions
    assert report["children"] == 2
    assert report["requests"] == 1
    assert "copied" in there.stderr
    events = f"SELECT {EVENT_COLUMNS} FROM events ORDER BY execution_id, seq"
    assert _postgres_rows(url, events) == _sqlite_rows(journal, events)
    columns = "SELECT * FROM executions ORDER BY execution_id"
    assert _postgres_rows(url, columns) == _sqlite_rows(journal, columns)
    documents = "SELECT * FROM workflow_documents ORDER BY digest"
    assert _postgres_rows(url, documents) == _sqlite_rows(journal, documents)
    requests = "SELECT execution_id, kind, target, body, created_at, outcome, detail, settled_at"
    requests += " FROM requests ORDER BY request_id"
    assert _postgres_rows(url, requests) == _sqlite_rows(journal, requests)

    for name, execution_id in ids.items():
        on_postgres = _inspected(root, url, execution_id)
        on_file = _inspected(root, journal, execution_id)
        if name == "interrupted":
            # Which process runs an execution on PostgreSQL is its lease (the workers' part):
            # until then the dead run shows its journal status.
            on_file["status"] = on_postgres["status"]
        assert on_postgres == on_file
    back = root / "back.db"
    again = call("journal", "copy", url, str(back), cwd=root)
    assert again.code == 0, again.stderr
    assert f"copied {executions} executions (2 children)" in again.stdout
    for execution_id in ids.values():
        assert _inspected(root, back, execution_id) == _inspected(root, journal, execution_id)
    compared = [
        call("compare", ids["failed"], ids["fork"], "--journal", str(where), cwd=root)
        for where in (journal, url, back)
    ]
    assert [one.code for one in compared] == [0, 0, 0]
    assert compared[0].stdout == compared[1].stdout == compared[2].stdout
    resumed = call("resume", ids["interrupted"], "--journal", str(back), "--json", cwd=root)
    assert resumed.code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    forked = call(
        "fork", ids["fork"], "--from", "report", "--journal", str(back), "--json", cwd=root
    )
    assert forked.code == 0, forked.stderr


def test_a_second_copy_is_refused_unless_skip_existing(
    source: dict[str, Any], postgres_url: str
) -> None:
    """The ids are named, nothing written; --skip-existing copies none again, verifies all."""
    root, journal = source["root"], source["journal"]
    first = call("journal", "copy", str(journal), postgres_url, cwd=root)
    assert first.code == 0, first.stderr
    before = _postgres_rows(postgres_url, "SELECT count(*) FROM events")
    refused = call("journal", "copy", str(journal), postgres_url, cwd=root)
    assert refused.code == 1
    assert "already holds execution(s)" in refused.stderr
    assert "--skip-existing" in refused.stderr
    assert _postgres_rows(postgres_url, "SELECT count(*) FROM events") == before
    skipped = call(
        "journal", "copy", str(journal), postgres_url, "--skip-existing", "--json", cwd=root
    )
    assert skipped.code == 0, skipped.stderr
    report = json.loads(skipped.stdout)
    assert report["executions"] == 0
    assert report["skipped"] == report["verified"] > 0


def test_copy_refuses_the_same_journal_a_missing_source_and_an_empty_argument(
    tmp_path: Path,
) -> None:
    """Each a one-line error, exit 1, nothing written."""
    journal = tmp_path / "j.db"
    _record_interrupted(journal, PIPELINE)
    same = call("journal", "copy", str(journal), str(tmp_path / "." / "j.db"), cwd=tmp_path)
    assert same.code == 1
    assert "the source and the destination are the same journal" in same.stderr
    missing = call("journal", "copy", str(tmp_path / "none.db"), str(journal), cwd=tmp_path)
    assert missing.code == 1
    assert f"SRC: there is no journal at {tmp_path / 'none.db'}" in missing.stderr
    empty = call("journal", "copy", str(journal), " ", cwd=tmp_path)
    assert empty.code == 1
    assert "DST: the path is empty" in empty.stderr


def test_migrate_creates_then_finds_nothing_to_do_and_check_says_when_one_is_needed(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """An empty database: --check exits 1; migrate prints none → N; again: already at N."""
    url = postgres_server.create_empty_database()
    needed = call("journal", "migrate", "--check", "--journal", url, cwd=tmp_path)
    assert needed.code == 1
    assert f"schema none, this orchestr8 needs {POSTGRES_VERSION}" in needed.stdout
    made = call("journal", "migrate", "--journal", url, cwd=tmp_path)
    assert made.code == 0, made.stderr
    assert made.stdout.strip().endswith(f"schema none → {POSTGRES_VERSION}")
    again = call("journal", "migrate", "--journal", url, cwd=tmp_path)
    assert again.stdout.strip().endswith(f"already at schema {POSTGRES_VERSION}")
    checked = call("journal", "migrate", "--check", "--journal", url, cwd=tmp_path)
    assert checked.code == 0


def test_migrate_upgrades_an_older_sqlite_file(tmp_path: Path) -> None:
    """A schema-1 journal file is brought to this version; --check said it needed it."""
    journal = tmp_path / "old.db"
    with closing(sqlite3.connect(journal)) as connection:
        connection.execute(
            "CREATE TABLE executions (execution_id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL,"
            " workflow TEXT NOT NULL, inputs TEXT NOT NULL, status TEXT NOT NULL,"
            " created_at TEXT NOT NULL, correlation_id TEXT, idempotency_key TEXT,"
            " started_at TEXT, finished_at TEXT, output TEXT, error TEXT)"
        )
        connection.execute("PRAGMA application_id = 1869756522")
        connection.execute("PRAGMA user_version = 1")
        connection.commit()
    needed = call("journal", "migrate", "--check", "--journal", str(journal), cwd=tmp_path)
    assert needed.code == 1
    made = call("journal", "migrate", "--journal", str(journal), cwd=tmp_path)
    assert made.code == 0, made.stderr
    assert made.stdout.strip() == f"journal {journal}: schema 1 → {SQLITE_VERSION}"
    fresh = call("journal", "migrate", "--journal", str(tmp_path / "new.db"), cwd=tmp_path)
    assert fresh.stdout.strip() == f"journal {tmp_path / 'new.db'}: schema none → {SQLITE_VERSION}"


def test_migrate_refuses_a_newer_schema_and_never_prints_the_password(
    postgres_url: str, tmp_path: Path
) -> None:
    """A newer schema: upgrade orchestr8; the URL shows `***` (the server trusts loopback)."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("UPDATE orchestr8.schema_version SET version = 99")
    secret = postgres_url.replace("postgres@", "postgres:sekret@", 1)
    refused = call("journal", "migrate", "--check", "--journal", secret, cwd=tmp_path)
    assert refused.code == 1
    assert "newer than this orchestr8 knows" in refused.stderr
    assert "sekret" not in refused.stderr + refused.stdout


def test_migrate_names_what_is_wrong_with_a_path(tmp_path: Path) -> None:
    """A directory, a text file; --check of a missing file says it needs creating."""
    directory = call("journal", "migrate", "--journal", str(tmp_path), cwd=tmp_path)
    assert directory.code == 1
    assert "is a directory; the journal must be a file" in directory.stderr
    (tmp_path / "notes.txt").write_text("not a database, only text " * 100)
    text = call("journal", "migrate", "--journal", str(tmp_path / "notes.txt"), cwd=tmp_path)
    assert text.code == 1
    assert "is not a SQLite database" in text.stderr
    missing = call(
        "journal", "migrate", "--check", "--journal", str(tmp_path / "n.db"), cwd=tmp_path
    )
    assert missing.code == 1
    assert f"schema none, this orchestr8 needs {SQLITE_VERSION}" in missing.stdout
    assert not (tmp_path / "n.db").exists()
    (tmp_path / "file").touch()
    under = call("journal", "migrate", "--journal", str(tmp_path / "file" / "j.db"), cwd=tmp_path)
    assert under.code == 1
    assert "cannot create" in under.stderr


def test_copy_refuses_a_journal_a_live_run_writes_then_copies_it_once_killed(
    tmp_path: Path, postgres_url: str
) -> None:
    """While `orchestr8 run` sleeps in a step the copy names it; once killed, it is copied."""
    nap = {
        "schema_version": "1.1",
        "name": "nap",
        "steps": [{"id": "nap", "agent": {"id": "sleep", "config": {"seconds": 60}}}],
    }
    (tmp_path / "nap.json").write_text(json.dumps(nap))
    journal = tmp_path / "j.db"
    with subprocess.Popen(
        [sys.executable, "-m", "orchestr8", "run", "nap.json", "--journal", str(journal)],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            started = re.search(r"execution ([0-9a-f]{32})", process.stderr.readline())
            assert started, "the run did not name its execution"
            assert "started (agent sleep)" in process.stderr.readline()
            refused = call("journal", "copy", str(journal), postgres_url, cwd=tmp_path)
        finally:
            process.kill()
            process.wait(timeout=10)
    assert refused.code == 1
    assert f"a live process runs 1 execution(s) of {journal}: {started[1]}" in refused.stderr
    copied = call("journal", "copy", str(journal), postgres_url, cwd=tmp_path)
    assert copied.code == 0, copied.stderr
    assert "copied 1 execution (0 children), 3 events, 0 control requests" in copied.stdout
