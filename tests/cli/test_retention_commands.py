"""`orchestr8 prune`, run as a real process against a real journal file."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import trio
from cli_processes import cli, environment, event_types

from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import ExecutionRecord, open_journal

OLD = "2026-01-01T00:00:00.000Z"


async def _record(path: Path) -> None:
    """An old succeeded execution with a child, an old failed one and a running one."""
    document = {"schema_version": "1.0", "name": "wf", "steps": [{"id": "a", "agent": "echo"}]}
    async with open_journal(path) as journal:
        for execution_id, parent, ending in (
            ("done", None, EventType.EXECUTION_SUCCEEDED),
            ("done.s", "done", EventType.EXECUTION_SUCCEEDED),
            ("broke", None, EventType.EXECUTION_FAILED),
            ("going", None, None),
        ):
            await journal.create_execution(
                ExecutionRecord(
                    execution_id,
                    "wf",
                    document,
                    created_at=OLD,
                    parent_id=parent,
                    parent_step=None if parent is None else "s",
                )
            )
            await journal.append(Event(execution_id, 1, OLD, 0.0, EventType.EXECUTION_STARTED))
            if ending is not None:
                await journal.append(Event(execution_id, 2, OLD, 1.0, ending))


def _journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.db"
    trio.run(_record, path)
    return path


def _ids(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT execution_id FROM executions ORDER BY 1").fetchall()
    return [row[0] for row in rows]


def test_prune_deletes_old_finished_trees_and_says_what_it_freed(tmp_path: Path) -> None:
    """The report counts executions, children, events and bytes; the running one stays."""
    path = _journal(tmp_path)
    done = cli("prune", "--older-than", "30d", "--journal", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "pruned 3 executions (1 child execution) that ended before" in done.stdout
    assert "(older than 30d): 6 events, 0 control requests, 0 workflow documents" in done.stdout
    assert f"journal {path}: " in done.stdout
    assert _ids(path) == ["going"]


def test_a_dry_run_lists_what_would_go_as_json_and_deletes_nothing(tmp_path: Path) -> None:
    """`--dry-run --json` reports the plan; every execution is still there."""
    path = _journal(tmp_path)
    done = cli(
        "prune", "--older-than", "2w", "--dry-run", "--json", "--journal", str(path), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is True
    assert report["older_than"] == "2w"
    assert sorted(report["pruned"]) == ["broke", "done"]
    assert (report["executions"], report["bytes_after"]) == (3, None)
    assert _ids(path) == ["broke", "done", "done.s", "going"]
    text = cli("prune", "--older-than", "2w", "--dry-run", "--journal", str(path), cwd=tmp_path)
    assert "would prune 3 executions" in text.stdout
    assert "nothing deleted (--dry-run)" in text.stdout


def test_status_narrows_and_unfinished_statuses_are_refused_with_a_reason(tmp_path: Path) -> None:
    """`--status failed` prunes only failed runs; `running` alone is an error, mixed a note."""
    path = _journal(tmp_path)
    refused = cli(
        "prune", "--older-than", "1d", "--status", "running", "--journal", str(path), cwd=tmp_path
    )
    assert refused.returncode == 1
    assert "error: running executions are never pruned" in refused.stderr
    mixed = cli(
        "prune",
        "--older-than",
        "1d",
        "--status",
        "waiting",
        "--status",
        "failed",
        "--journal",
        str(path),
        cwd=tmp_path,
    )
    assert mixed.returncode == 0, mixed.stderr
    assert "note: waiting executions are never pruned" in mixed.stderr
    assert _ids(path) == ["done", "done.s", "going"]


def test_a_bad_duration_or_a_missing_journal_is_one_clear_error(tmp_path: Path) -> None:
    """Exit code 1 and one line naming the problem, never a traceback."""
    path = _journal(tmp_path)
    bad = cli("prune", "--older-than", "30 days", "--journal", str(path), cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: --older-than: '30 days' is not a duration")
    missing = cli("prune", "--older-than", "1d", "--journal", str(tmp_path / "no.db"), cwd=tmp_path)
    assert missing.returncode == 1
    assert "there is no journal at" in missing.stderr
    ancient = cli("prune", "--older-than", "999999999w", "--journal", str(path), cwd=tmp_path)
    assert ancient.returncode == 1
    assert "reaches back before the year 1" in ancient.stderr
    assert "Traceback" not in bad.stderr + missing.stderr + ancient.stderr


def test_an_execution_another_process_holds_is_kept_and_compaction_waits(tmp_path: Path) -> None:
    """This process locks `done` and runs `going`: prune keeps `done` and does not compact."""
    from orchestr8._execution._lock import ExecutionLocks

    path = _journal(tmp_path)
    locks = ExecutionLocks(path)
    try:
        assert locks.acquire("done")
        assert locks.acquire("going")
        done = cli("prune", "--older-than", "1d", "--journal", str(path), cwd=tmp_path)
    finally:
        locks.close()
    assert done.returncode == 0, done.stderr
    assert "kept done: a live process holds done (it runs it)" in done.stdout
    assert "not compacted: another process runs 1 execution on this journal" in done.stdout
    assert _ids(path) == ["done", "done.s", "going"]


def test_prune_beside_a_live_run_leaves_the_run_whole(tmp_path: Path) -> None:
    """A run writes its steps while prune deletes old executions: both succeed, nothing is lost."""
    path = _journal(tmp_path)
    steps = [{"id": "s0", "agent": {"id": "sleep", "config": {"seconds": 0.05}}}]
    steps += [
        {
            "id": f"s{number}",
            "agent": {"id": "sleep", "config": {"seconds": 0.05}},
            "depends_on": [f"s{number - 1}"],
        }
        for number in range(1, 40)
    ]
    workflow = tmp_path / "slow.json"
    workflow.write_text(json.dumps({"schema_version": "1.0", "name": "slow", "steps": steps}))
    command = [sys.executable, "-m", "orchestr8", "run", str(workflow), "--journal", str(path)]
    with subprocess.Popen(
        command,
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        watchdog = threading.Timer(60, process.kill)
        watchdog.start()
        try:
            assert process.stderr is not None
            match = re.search(r"execution ([0-9a-f]{32}) started", process.stderr.readline())
            assert match
            pruned = cli("prune", "--older-than", "1d", "--journal", str(path), cwd=tmp_path)
            stdout, stderr = process.communicate(timeout=50)
        finally:
            watchdog.cancel()
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 3 executions" in pruned.stdout
    assert process.returncode == 0, stderr
    assert stdout.startswith("status: succeeded")
    assert _ids(path) == sorted(["going", match.group(1)])
    types = event_types(path, match.group(1))
    assert types.count("step.succeeded") == 40
    assert types[-1] == "execution.succeeded"


def test_prune_on_postgresql_deletes_the_same_and_vacuums(
    tmp_path: Path, postgres_url: str
) -> None:
    """`--journal URL`: the same executions go as from the file; the report says it vacuumed."""
    from orchestr8._journal._journal_copy import copy_journal

    copy_journal(_journal(tmp_path), postgres_url, held=lambda ids: ())
    dry = cli("prune", "--older-than", "30d", "--dry-run", "--journal", postgres_url, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would prune 3 executions (1 child execution)" in dry.stdout
    assert f"journal {postgres_url}: " in dry.stdout
    done = cli("prune", "--older-than", "30d", "--journal", postgres_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "pruned 3 executions (1 child execution) that ended before" in done.stdout
    assert "freed; vacuumed (VACUUM (ANALYZE))" in done.stdout
