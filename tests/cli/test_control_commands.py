"""`follow` and `cancel` on a journal: real `orchestr8` processes (across processes: acceptance)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from cli_processes import cli, environment

from orchestr8 import Event, ExecutionRecord
from orchestr8._journal._journal import open_journal

WORKFLOW = {
    "schema_version": "1.0",
    "name": "pair",
    "steps": [
        {"id": "first", "agent": "echo", "input": {"n": 1}},
        {"id": "second", "agent": "echo", "input": {"n": 2}, "depends_on": ["first"]},
    ],
}
FAILING = {
    "schema_version": "1.0",
    "name": "failing",
    "steps": [{"id": "boom", "agent": {"id": "fail", "config": {"retryable": False}}}],
}


def run_workflow(tmp_path: Path, workflow: dict[str, Any]) -> tuple[str, str]:
    """Run `workflow` to its end on the test's journal; its execution id and the journal."""
    journal = str(tmp_path / "journal.db")
    path = tmp_path / f"{workflow['name']}.json"
    path.write_text(json.dumps(workflow))
    done = cli("run", str(path), "--journal", journal, "--json", cwd=tmp_path)
    return json.loads(done.stdout)["execution_id"], journal


def record_unfinished(journal: Path, execution_id: str, *types: str) -> None:
    """Record an execution some process started and left unfinished (no process runs it)."""

    async def main() -> None:
        async with open_journal(journal) as store:
            await store.create_execution(
                ExecutionRecord(execution_id=execution_id, workflow_name="pair", workflow=WORKFLOW)
            )
            stamp = "2025-01-01T00:00:00.000Z"
            for seq, kind in enumerate(("execution.started", *types), start=1):
                step_id = "first" if kind.startswith("step.") else None
                data: dict[str, Any] = {"gates": []} if kind == "execution.waiting" else {}
                await store.append(
                    Event(execution_id, seq, stamp, float(seq), kind, step_id, None, data)
                )

    trio.run(main)


def test_follow_shows_a_finished_execution_and_exits_with_its_code(tmp_path: Path) -> None:
    """Its events as `run` shows them, then exit 0; `--after` leaves out the earlier ones."""
    execution_id, journal = run_workflow(tmp_path, WORKFLOW)
    shown = cli("follow", execution_id[:8], "--journal", journal, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any("first" in line and "succeeded in" in line for line in lines)
    assert "execution succeeded in" in lines[-1]
    later = cli("follow", execution_id, "--journal", journal, "--after", "4", cwd=tmp_path)
    assert later.returncode == 0
    assert "first" not in later.stdout
    assert "execution succeeded" in later.stdout
    beyond = cli("follow", execution_id, "--journal", journal, "--after", "99", cwd=tmp_path)
    assert (beyond.returncode, beyond.stdout) == (0, "")


def test_follow_exits_2_for_a_failed_execution(tmp_path: Path) -> None:
    """The exit code is the execution's, as `run` gives it."""
    execution_id, journal = run_workflow(tmp_path, FAILING)
    shown = cli("follow", execution_id, "--journal", journal, cwd=tmp_path)
    assert shown.returncode == 2
    assert "failed" in shown.stdout


def test_follow_and_cancel_name_a_missing_execution_or_journal(tmp_path: Path) -> None:
    """Unknown id, no journal, or two sources: one line on stderr, exit 1."""
    _, journal = run_workflow(tmp_path, WORKFLOW)
    for command in ("follow", "cancel"):
        unknown = cli(command, "zzz", "--journal", journal, cwd=tmp_path)
        assert unknown.returncode == 1
        assert f"error: no execution 'zzz' in the journal {journal}" in unknown.stderr
        both = cli(command, "x", "--journal", journal, "--url", "http://127.0.0.1:1", cwd=tmp_path)
        assert both.returncode == 1
        assert "--url and --journal are two ways to reach an execution: give one" in both.stderr
        missing = cli(command, "x", "--journal", str(tmp_path / "none.db"), cwd=tmp_path)
        assert missing.returncode == 1


def test_cancel_of_a_finished_execution_says_there_is_nothing_to_cancel(tmp_path: Path) -> None:
    """Exit 1, naming how it ended."""
    execution_id, journal = run_workflow(tmp_path, WORKFLOW)
    refused = cli("cancel", execution_id, "--journal", journal, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: execution {execution_id} already succeeded; nothing to cancel"
    )


def test_cancel_of_an_interrupted_execution_cancels_it_at_once(tmp_path: Path) -> None:
    """No process runs it: cancelled durably here, exit 0; inspect and follow then agree."""
    journal = tmp_path / "journal.db"
    record_unfinished(journal, "dead-run", "step.started")
    done = cli("cancel", "dead-run", "--journal", str(journal), "--reason", "gone", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "execution dead-run cancelled: gone"
    detail = cli("inspect", "dead-run", "--journal", str(journal), "--json", cwd=tmp_path)
    document = json.loads(detail.stdout)
    assert document["status"] == "cancelled"
    assert document["steps"]["first"]["status"] == "cancelled"
    followed = cli("follow", "dead-run", "--journal", str(journal), cwd=tmp_path)
    assert followed.returncode == 130
    assert "execution cancelled after" in followed.stdout
    assert "gone" in followed.stdout


@pytest.mark.parametrize(
    ("types", "told"),
    [
        (("step.started",), "is interrupted: no process runs it"),
        (("execution.waiting",), "is waiting for approval"),
    ],
)
def test_follow_tells_once_that_no_process_runs_it_and_stops_on_ctrl_c(
    tmp_path: Path, types: tuple[str, ...], told: str
) -> None:
    """An interrupted or waiting execution is said so once, with what to do; SIGINT exits 130."""
    journal = tmp_path / "journal.db"
    record_unfinished(journal, "idle-run", *types)
    with subprocess.Popen(
        [sys.executable, "-m", "orchestr8", "follow", "idle-run", "--journal", str(journal)],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        try:
            lines = []
            while told not in (line := process.stdout.readline()):
                assert line, "follow ended before saying it"
                lines.append(line)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, err
    assert told not in out
    assert "orchestr8 resume --journal" in line


def test_inspect_shows_waiting_as_waiting_and_a_dead_run_as_interrupted(tmp_path: Path) -> None:
    """Neither runs in a process: the one waiting for approval is never shown as interrupted."""
    journal = tmp_path / "journal.db"
    record_unfinished(journal, "waiting-run", "execution.waiting")
    record_unfinished(journal, "dead-run", "step.started")
    listed = cli("inspect", "--journal", str(journal), "--json", cwd=tmp_path)
    statuses = {item["execution_id"]: item["status"] for item in json.loads(listed.stdout)}
    assert statuses == {"waiting-run": "waiting", "dead-run": "interrupted"}
    for execution_id, status in statuses.items():
        detail = cli("inspect", execution_id, "--journal", str(journal), "--json", cwd=tmp_path)
        assert json.loads(detail.stdout)["status"] == status
    only = cli("inspect", "--journal", str(journal), "--status", "waiting", cwd=tmp_path)
    assert "waiting-run" in only.stdout
    assert "dead-run" not in only.stdout


def test_cancel_prints_the_reason_the_journal_recorded_not_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier cancel's reason won: `cancel` prints it, and says its own was not recorded."""
    from orchestr8._cli import _control_commands
    from orchestr8._cli._control_commands import _cancel_in_journal
    from orchestr8._execution._lock import ExecutionLocks

    # The journal is read in threads: on the real clock, with a short poll.
    monkeypatch.setattr(_control_commands, "CANCEL_POLL_INTERVAL", 0.01)

    async def main() -> int:
        async with open_journal(tmp_path / "journal.db") as store:
            await store.create_execution(ExecutionRecord("run-1", "pair", WORKFLOW))
            stamp = "2025-01-01T00:00:00.000Z"
            await store.append(Event("run-1", 1, stamp, 0.0, "execution.started"))
            await store.flush()
            owner = ExecutionLocks(store.path, journal=store)
            assert owner.acquire("run-1")
            code = -1

            async def cancel() -> None:
                nonlocal code
                code = await _cancel_in_journal(
                    store, "run-1", reason="third", force=True, by="me", wait=True
                )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel)
                while not await store.requests("run-1"):
                    await store.wait_for_request(0.05)
                data = {"reason": "first", "error": {"type": "Cancelled", "message": "first"}}
                await store.append(Event("run-1", 2, stamp, 1.0, "execution.cancelled", data=data))
                await store.flush()
            owner.close()
            return code

    assert trio.run(main) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "execution run-1 cancelled: first (the reason of an earlier cancel, kept; 'third' was "
        "not recorded)"
    )


def test_an_execution_not_ending_cancelled_has_no_recorded_reason(tmp_path: Path) -> None:
    """The recorded reason is read from an `execution.cancelled` last event only."""
    from orchestr8._cli._control_commands import _recorded_reason

    async def main() -> str | None:
        async with open_journal(tmp_path / "journal.db") as store:
            await store.create_execution(ExecutionRecord("run-1", "pair", WORKFLOW))
            stamp = "2025-01-01T00:00:00.000Z"
            await store.append(Event("run-1", 1, stamp, 0.0, "execution.started"))
            await store.flush()
            return await _recorded_reason(store, "run-1")

    assert trio.run(main) is None
