"""End to end: follow and cancel an execution from a second process, or through a server.

The first process is a real `orchestr8 run` of a workflow whose step sleeps (the `sleep` agent
does not look at the cooperative cancel, so a cancel takes the grace unless forced); the second
is `orchestr8 follow` or `orchestr8 cancel` on the same journal, or on a real `orchestr8 serve`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import trio
from cli_processes import cli, environment
from serve_processes import orchestr8_serve

GRACE = "1"
NAPS = {
    "schema_version": "1.0",
    "name": "naps",
    "strategy": "sequential",
    "steps": [
        {"id": "short", "agent": "sleep", "input": {"seconds": 0.3}},
        {"id": "long", "agent": "sleep", "input": {"seconds": 1.0}, "depends_on": ["short"]},
    ],
}
FOREVER = {
    "schema_version": "1.0",
    "name": "forever",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 600}}],
}


@contextmanager
def running(
    tmp_path: Path, workflow: Mapping[str, object]
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A real `orchestr8 run` of `workflow` on the test's journal, once its execution started."""
    path = tmp_path / f"{workflow['name']}.json"
    path.write_text(json.dumps(workflow))
    journal = tmp_path / "journal.db"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestr8",
            "run",
            str(path),
            "--journal",
            str(journal),
            "--cancel-grace",
            GRACE,
        ],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"execution ([0-9a-f]{32}) started", line)
        assert match, line + process.stderr.read()
        wait_for_event(journal, match.group(1), "step.started")
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def wait_for_event(journal: Path, execution_id: str, kind: str) -> None:
    """Wait until the journal (read as another process) holds an event of type `kind`."""
    deadline = time.monotonic() + 20
    while kind not in journal_events(journal, execution_id):
        assert time.monotonic() < deadline, f"no {kind} in the journal"
        time.sleep(0.02)


def journal_events(journal: Path, execution_id: str) -> list[str]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT type FROM events WHERE execution_id = ? ORDER BY seq", (execution_id,)
        ).fetchall()
    connection.close()
    return [row[0] for row in rows]


def cancelled_reason(journal: Path, execution_id: str) -> str:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as connection:
        (data,) = connection.execute(
            "SELECT data FROM events WHERE execution_id = ? AND type = 'execution.cancelled'",
            (execution_id,),
        ).fetchone()
    connection.close()
    return str(json.loads(data)["reason"])


def test_follow_from_a_second_process_shows_the_run_to_its_end(tmp_path: Path) -> None:
    """`follow` shows the steps of a run another process runs, live, and exits with its code."""
    with running(tmp_path, NAPS) as (process, execution_id):
        followed = cli("follow", execution_id, "--journal", "journal.db", cwd=tmp_path)
        assert process.wait(timeout=20) == 0
    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.splitlines()
    assert [line.split()[1] for line in lines if "succeeded in" in line][:2] == ["short", "long"]
    assert "execution succeeded in" in lines[-1]


def test_cancel_from_a_second_process_ends_the_run_with_the_reason(tmp_path: Path) -> None:
    """The running process acts on the request: it exits 130, the journal records the reason."""
    journal = tmp_path / "journal.db"
    with running(tmp_path, FOREVER) as (process, execution_id):
        started = time.monotonic()
        done = cli(
            "cancel", execution_id, "--journal", str(journal), "--reason", "enough", cwd=tmp_path
        )
        assert process.wait(timeout=20) == 130
        took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert f"execution {execution_id} cancelled: enough" in done.stdout
    assert cancelled_reason(journal, execution_id) == "enough"
    # Within a second for the request, the grace, and two process start-ups.
    assert took < 1 + float(GRACE) + 5


def test_forced_cancel_without_waiting_returns_once_recorded(tmp_path: Path) -> None:
    """`--force --no-wait`: exit 0 at once; the run stops without its grace."""
    journal = tmp_path / "journal.db"
    with running(tmp_path, FOREVER) as (process, execution_id):
        done = cli(
            "cancel", execution_id, "--journal", str(journal), "--force", "--no-wait", cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert "cancel requested (request 1)" in done.stdout
        assert process.wait(timeout=20) == 130
    assert cancelled_reason(journal, execution_id).startswith("cancelled by ")


def test_cancel_of_a_killed_run_marks_it_cancelled(tmp_path: Path) -> None:
    """SIGKILL leaves it `interrupted`; `cancel` (no owner) writes its end under its lock."""
    journal = tmp_path / "journal.db"
    with running(tmp_path, FOREVER) as (process, execution_id):
        process.kill()
        process.wait(timeout=10)
    shown = cli("inspect", execution_id, "--journal", str(journal), "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["status"] == "interrupted"
    done = cli("cancel", execution_id, "--journal", str(journal), "--reason", "dead", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert journal_events(journal, execution_id)[-2:] == ["step.cancelled", "execution.cancelled"]
    shown = cli("inspect", execution_id, "--journal", str(journal), "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["status"] == "cancelled"


async def test_follow_and_cancel_through_a_server_on_the_same_journal(tmp_path: Path) -> None:
    """A server streams and cancels what a CLI process runs: `follow --url` exits 130 after
    `cancel --url`, and the server says `interrupted` for a killed run."""
    journal = tmp_path / "journal.db"
    async with orchestr8_serve(journal) as server:
        with running(tmp_path, FOREVER) as (process, execution_id):
            follow = await trio.lowlevel.open_process(
                [sys.executable, "-m", "orchestr8", "follow", execution_id, "--url", server.url],
                cwd=tmp_path,
                env=environment(tmp_path),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            cancelled = await trio.to_thread.run_sync(
                lambda: cli(
                    "cancel", execution_id, "--url", server.url, "--reason", "via api", cwd=tmp_path
                )
            )
            assert cancelled.returncode == 0, cancelled.stderr
            assert f"execution {execution_id} cancelled: via api" in cancelled.stdout
            with trio.fail_after(20):
                assert await follow.wait() == 130
            assert follow.stdout is not None
            shown = (await follow.stdout.receive_some(1 << 20)).decode()
            assert "execution cancelled after" in shown
            assert "via api" in shown
            assert await trio.to_thread.run_sync(process.wait) == 130
        assert cancelled_reason(journal, execution_id) == "via api"


def test_cancel_outlives_an_owner_that_dies_before_acting(tmp_path: Path) -> None:
    """The owner is stopped (SIGSTOP), then killed while `cancel` waits: `cancel` notices nobody
    holds the lock any more and cancels the execution itself."""
    journal = tmp_path / "journal.db"
    with running(tmp_path, FOREVER) as (process, execution_id):
        os.kill(process.pid, signal.SIGSTOP)
        cancel = subprocess.Popen(
            [sys.executable, "-m", "orchestr8", "cancel", execution_id, "--journal", str(journal)],
            cwd=tmp_path,
            env=environment(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = "", ""
        try:
            deadline = time.monotonic() + 20
            while not pending_cancel(journal):
                assert time.monotonic() < deadline, "no cancel request was recorded"
                time.sleep(0.02)
            process.kill()
            out, err = cancel.communicate(timeout=20)
        finally:
            if cancel.poll() is None:
                cancel.kill()
    assert cancel.returncode == 0, err
    assert "cancel requested (request 1)" in out
    assert f"execution {execution_id} cancelled: cancelled by " in out
    assert journal_events(journal, execution_id)[-1] == "execution.cancelled"


def pending_cancel(journal: Path) -> bool:
    """Whether the journal holds a cancel request nobody settled yet."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT count(*) FROM requests WHERE kind = 'cancel' AND outcome IS NULL"
        ).fetchone()
    connection.close()
    return bool(rows[0])


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_follow_a_waiting_execution_then_cancel_it(tmp_path: Path) -> None:
    """`run --exit-when-waiting` leaves it `waiting`: `follow` names its gate once and follows
    on; `cancel` (no process runs it) cancels it at once, and `follow` then exits 130."""
    journal = tmp_path / "journal.db"
    ran = cli(
        "run",
        str(EXAMPLES / "approval.json"),
        "--journal",
        str(journal),
        "--exit-when-waiting",
        cwd=tmp_path,
    )
    assert ran.returncode == 5, ran.stderr
    match = re.search(r"execution ([0-9a-f]{32}) started", ran.stderr)
    assert match, ran.stderr
    execution_id = match.group(1)
    with subprocess.Popen(
        [sys.executable, "-m", "orchestr8", "follow", execution_id, "--journal", str(journal)],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as follow:
        assert follow.stdout is not None
        try:
            while "waiting for approval" not in (line := follow.stdout.readline()):
                assert line, "follow ended before saying the execution waits"
            assert "gate(s) review" in line
            assert f"orchestr8 approve --journal {journal} {execution_id} GATE" in line
            cancelled = cli(
                "cancel",
                execution_id[:8],
                "--journal",
                str(journal),
                "--reason",
                "no",
                cwd=tmp_path,
            )
            assert cancelled.returncode == 0, cancelled.stderr
            assert cancelled.stdout == f"execution {execution_id} cancelled: no\n"
            out, err = follow.communicate(timeout=20)
        finally:
            if follow.poll() is None:
                follow.kill()
    assert follow.returncode == 130, err
    assert "execution cancelled after" in out
    assert "waiting for approval" not in out
