"""End to end: SIGKILL a real `orchestr8 run` mid-workflow, then `orchestr8 resume` finishes it.

The first step has a side effect (one line appended to a counter file); the journal must prove it
succeeded before the kill, and the resume must reuse its output instead of running it again.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

SIDE_EFFECT = '''
def record(input):
    """Append one line to the counter file, the side effect that must happen exactly once."""
    with open(input["counter"], "a") as file:
        file.write("side effect\\n")
    return {"recorded": input["counter"]}
'''


def orchestr8(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestr8", *args]


def step_succeeded(journal: Path, step_id: str) -> bool:
    """Whether the journal (read-only, as another process would) holds `step.succeeded`."""
    if not journal.exists():
        return False
    try:
        connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.OperationalError:
        return False
    try:
        row = connection.execute(
            "SELECT count(*) FROM events WHERE type = 'step.succeeded' AND step_id = ?",
            (step_id,),
        ).fetchone()
    except sqlite3.OperationalError:  # the tables are not created yet
        return False
    finally:
        connection.close()
    return bool(row[0])


def test_resume_after_sigkill_runs_each_side_effect_once(tmp_path: Path) -> None:
    (tmp_path / "kill_side_effects.py").write_text(SIDE_EFFECT)
    counter, journal = tmp_path / "counter.txt", tmp_path / "journal.db"
    workflow = tmp_path / "workflow.json"
    workflow.write_text(
        json.dumps(
            {
                "schema_version": "1.0",
                "name": "kill-me",
                "steps": [
                    {
                        "id": "record",
                        "agent": {
                            "id": "python",
                            "config": {"callable": "kill_side_effects:record"},
                        },
                        "input": {"counter": str(counter)},
                    },
                    {
                        "id": "nap",
                        "agent": "sleep",
                        "input": {"seconds": 2.0},
                        "depends_on": ["record"],
                    },
                ],
                "output": {"recorded": "${steps.record.output}", "slept": "${steps.nap.output}"},
            }
        )
    )
    # tmp_path goes first; an inherited PYTHONPATH stays, so the code under test stays the same.
    python_path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path, "NO_COLOR": "1"}
    env.pop("ORCHESTR8_JOURNAL", None)
    with subprocess.Popen(
        orchestr8("run", str(workflow), "--journal", str(journal)),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            deadline = time.monotonic() + 20
            while not step_succeeded(journal, "record"):
                assert process.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "the first step never succeeded"
                time.sleep(0.02)
            process.kill()
            _, stderr = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == -9
    match = re.search(r"execution ([0-9a-f]{32}) started", stderr)
    assert match, stderr
    execution_id = match.group(1)
    assert counter.read_text() == "side effect\n"

    killed = subprocess.run(
        orchestr8("inspect", execution_id, "--journal", str(journal), "--json"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(killed.stdout)["status"] == "interrupted"

    resumed = subprocess.run(
        orchestr8("resume", execution_id, "--journal", str(journal), "--json"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "succeeded"
    assert result["output"] == {"recorded": {"recorded": str(counter)}, "slept": {"seconds": 2.0}}
    assert "1 of 2 steps reused" in resumed.stderr
    assert counter.read_text() == "side effect\n"

    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as connection:
        events = connection.execute(
            "SELECT seq, type, step_id FROM events WHERE execution_id = ? ORDER BY seq",
            (execution_id,),
        ).fetchall()
    connection.close()
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    types = [(kind, step) for _, kind, step in events]
    assert types.count(("step.succeeded", "record")) == 1
    assert types.count(("step.started", "record")) == 1
    assert ("execution.resumed", None) in types
    assert types[-1] == ("execution.succeeded", None)
