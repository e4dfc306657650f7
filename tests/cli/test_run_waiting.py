"""`run --exit-when-waiting` and `resume` as real processes: stop at open gates, exit 5, go on.

The example `examples/approval.json` runs here: the answer is given through the journal while no
process runs the execution, as `orchestr8 approve` from another terminal would leave it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from cli_processes import cli, event_types

from orchestr8._cli._run import waiting_note
from orchestr8._journal._journal import open_journal
from orchestr8._journal._requests import RequestKind

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "approval.json"


def started_units(journal: Path, execution_id: str) -> list[str]:
    """The step ids of every `step.started` event, in order."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT step_id FROM events WHERE execution_id = ? AND type = 'step.started'"
            " ORDER BY seq",
            (execution_id,),
        ).fetchall()
    connection.close()
    return [row[0] for row in rows]


def gate_openings(journal: Path, execution_id: str) -> list[str]:
    """The data of every `gate.opened` event, as JSON text, in order."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT data FROM events WHERE execution_id = ? AND type = 'gate.opened' ORDER BY seq",
            (execution_id,),
        ).fetchall()
    connection.close()
    return [row[0] for row in rows]


def execution_id_in(stderr: str) -> str:
    """The execution id `run` announced on stderr."""
    line = next(line for line in stderr.splitlines() if " started: workflow " in line)
    return line.split()[1]


async def test_run_stops_at_the_gate_exits_5_and_resume_applies_the_answer(
    tmp_path: Path,
) -> None:
    """exit 5 with the commands to answer and resume (again 5 while unanswered, the same
    deadline); the answer recorded meanwhile is applied, and nothing before the gate re-runs."""
    ran = cli(
        "run",
        str(EXAMPLE),
        "--journal",
        "j.db",
        "-i",
        "customer=bob",
        "--exit-when-waiting",
        cwd=tmp_path,
    )
    assert ran.returncode == 5, ran.stderr
    execution_id = execution_id_in(ran.stderr)
    assert f"execution {execution_id} is waiting for approval: review" in ran.stderr
    assert f"orchestr8 approve --journal j.db {execution_id} review" in ran.stderr
    assert f"orchestr8 resume --journal j.db {execution_id}" in ran.stderr
    types = event_types(tmp_path / "j.db", execution_id)
    assert types[-1] == "execution.waiting"
    assert "gate.opened" in types
    inspected = cli("inspect", execution_id, "--journal", "j.db", "--json", cwd=tmp_path)
    detail = json.loads(inspected.stdout)
    assert detail["status"] == "waiting"
    assert detail["gates"]["review"]["status"] == "open"
    assert detail["steps"]["review"]["status"] == "waiting"
    assert detail["gates"]["review"]["prompt"] == "Refund bob? Proposed amount: 25"
    shown = cli("inspect", execution_id, "--journal", "j.db", cwd=tmp_path)
    assert "GATE" in shown.stdout
    again = cli("resume", execution_id, "--journal", "j.db", "--exit-when-waiting", cwd=tmp_path)
    assert again.returncode == 5, again.stderr
    assert f"execution {execution_id} is waiting for approval: review" in again.stderr
    async with open_journal(tmp_path / "j.db") as journal:
        body = {"approve": True, "input": {"amount": 20}, "reason": "ok", "by": "ops"}
        await journal.submit_request(execution_id, RequestKind.ANSWER, body, target="review")
    resumed = cli("resume", execution_id, "--journal", "j.db", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    output = json.loads(resumed.stdout)["output"]
    assert output["payment"] == {"customer": "bob", "terms": {"amount": 20}}
    assert output["review"] == {
        "approved": True,
        "input": {"amount": 20},
        "by": "ops",
        "reason": "ok",
    }
    started = started_units(tmp_path / "j.db", execution_id)
    # Nothing before the gate ran again: the gate re-opened (twice), then pay ran.
    assert started == ["draft", "review", "review", "review", "pay"]
    opened = [json.loads(data) for data in gate_openings(tmp_path / "j.db", execution_id)]
    assert [gate.get("reopened", False) for gate in opened] == [False, True, True]
    assert len({gate["deadline"] for gate in opened}) == 1


def test_the_waiting_note_names_each_gate_and_the_commands() -> None:
    """The note quotes odd gate ids and repeats --journal."""
    note = waiting_note("abc", ["g[0]", "g[1]"], "my journal.db")
    assert "execution abc is waiting for approval: g[0], g[1]" in note
    assert "orchestr8 approve --journal 'my journal.db' abc 'g[0]'" in note
    assert "orchestr8 reject --journal 'my journal.db' abc 'g[1]' --reason TEXT" in note
    assert note.endswith("then continue it: orchestr8 resume --journal 'my journal.db' abc")
    assert "waiting for approval: gates" in waiting_note("abc", [], None)


def test_a_gate_that_timed_out_for_good_points_to_fork_not_resume(tmp_path: Path) -> None:
    """on_timeout fail: run and resume fail the same way, each says so and names fork --from."""
    document = {
        "schema_version": "1.1",
        "name": "late",
        "steps": [
            {"id": "g", "approval": {"prompt": "ok?", "timeout": 0.05, "on_timeout": "fail"}}
        ],
    }
    (tmp_path / "late.json").write_text(json.dumps(document))
    ran = cli("run", "late.json", "--journal", "j.db", cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    execution_id = execution_id_in(ran.stderr)
    for done in (ran, cli("resume", execution_id, "--journal", "j.db", cwd=tmp_path)):
        assert done.returncode == 2, done.stderr
        assert "gate g timed out for good (on_timeout: fail)" in done.stderr
        fork = f"orchestr8 fork --journal j.db {execution_id} --from g"
        assert f"ask it again with a fresh deadline: {fork}" in done.stderr
        assert "resume it:" not in done.stderr


async def test_inspect_lists_an_answer_the_resumed_run_refused(tmp_path: Path) -> None:
    """An answer that does not fit is refused by the next run; inspect says so, and why."""
    ran = cli("run", str(EXAMPLE), "--journal", "j.db", "--exit-when-waiting", cwd=tmp_path)
    assert ran.returncode == 5, ran.stderr
    execution_id = execution_id_in(ran.stderr)
    async with open_journal(tmp_path / "j.db") as journal:
        body = {"approve": True, "input": {"amount": -1}, "reason": None, "by": "ops"}
        await journal.submit_request(execution_id, RequestKind.ANSWER, body, target="review")
    again = cli("resume", execution_id, "--journal", "j.db", "--exit-when-waiting", cwd=tmp_path)
    assert again.returncode == 5, again.stderr
    shown = cli("inspect", execution_id, "--journal", "j.db", cwd=tmp_path).stdout
    assert (
        "  approval #1 of gate review by ops was refused: invalid answer: $.input.amount:" in shown
    )
    inspected = cli("inspect", execution_id, "--journal", "j.db", "--json", cwd=tmp_path)
    (refused,) = json.loads(inspected.stdout)["refused_answers"]
    assert (refused["gate_id"], refused["by"]) == ("review", "ops")


def test_a_gate_past_its_deadline_shows_expired_while_nobody_runs_it(tmp_path: Path) -> None:
    """Its deadline passed while no process ran it: inspect says expired and what resume does."""
    ran = cli("run", str(EXAMPLE), "--journal", "j.db", "--exit-when-waiting", cwd=tmp_path)
    assert ran.returncode == 5, ran.stderr
    execution_id = execution_id_in(ran.stderr)
    # A day passes: the gate's recorded deadline is moved into the past.
    with sqlite3.connect(tmp_path / "j.db") as connection:
        connection.execute(
            "UPDATE events SET data = json_set(data, '$.deadline', '2000-01-01T00:00:00.000Z')"
            " WHERE execution_id = ? AND type = 'gate.opened'",
            (execution_id,),
        )
    connection.close()
    listed = cli("inspect", "--journal", "j.db", cwd=tmp_path).stdout
    assert "waiting (gates expired)" in listed
    (row,) = json.loads(cli("inspect", "--journal", "j.db", "--json", cwd=tmp_path).stdout)
    assert row["gates_expired"] is True
    shown = cli("inspect", execution_id, "--journal", "j.db", cwd=tmp_path).stdout
    (gate_row,) = [line for line in shown.splitlines() if line.startswith("review ")][-1:]
    assert "expired" in gate_row
    assert gate_row.endswith("timed out; resolves as rejected when resumed")
    detail = json.loads(
        cli("inspect", execution_id, "--journal", "j.db", "--json", cwd=tmp_path).stdout
    )
    assert detail["gates"]["review"]["expired"] is True
    assert detail["steps"]["review"]["status"] == "waiting"
