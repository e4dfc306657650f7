"""The `orchestr8` command line, run as a real process, plus its pure helpers in-process."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import types
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

import attrs
import pytest
import trio
from cli_processes import cli, environment, event_types

from orchestr8._cli._progress import ProgressView
from orchestr8._cli._support import CommandError, exit_code, find_execution, parse_inputs
from orchestr8._cli._views import render_table
from orchestr8._console import main
from orchestr8._execution._results import ExecutionResult
from orchestr8._journal._events import EventFactory, EventType, ExecutionStatus
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._workflow._document import workflow_schema

EXECUTION_LINE = re.compile(r"execution ([0-9a-f]{32}) (started|resumed)")

SIDE_EFFECTS = '''
import pathlib


def record(input):
    """Append one line to the counter file: a side effect that must happen once."""
    with open(input["counter"], "a") as file:
        file.write("done\\n")
    return {"recorded": True}


def needs_marker(input):
    """Fail until the marker file exists."""
    if not pathlib.Path(input["marker"]).exists():
        raise RuntimeError("the marker file is missing")
    return "marker found"
'''


@attrs.frozen
class Outcome:
    code: int
    stdout: str
    stderr: str


def call(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = "") -> Outcome:
    """Run the command line in this process (fast), as `main()` does for the console script."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = os.getcwd(), sys.argv, sys.stdin, list(sys.path)
    environ = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    os.chdir(cwd)
    sys.argv, sys.stdin = ["orchestr8", *args], io.StringIO(stdin)
    try:
        with (
            mock.patch.dict(os.environ, {**environ, **(env or {})}, clear=True),
            # The console script's __main__, not pytest's (`python -m pytest` under coverage):
            # click names the program after it in usage lines.
            mock.patch.dict(sys.modules, {"__main__": types.ModuleType("__main__")}),
            redirect_stdout(stdout),
            redirect_stderr(stderr),
            pytest.raises(SystemExit) as exited,
        ):
            main()
    finally:
        os.chdir(saved[0])
        sys.argv, sys.stdin, sys.path[:] = saved[1], saved[2], saved[3]
    code = exited.value.code
    assert isinstance(code, int)
    return Outcome(code, stdout.getvalue(), stderr.getvalue())


def write_workflow(path: Path, steps: list[dict[str, Any]], **fields: Any) -> Path:
    document = {"schema_version": "1.0", "name": path.stem, "steps": steps, **fields}
    path.write_text(json.dumps(document))
    return path


def no_retry(**policy: Any) -> dict[str, Any]:
    return {"retry": {"max_attempts": 1}, **policy}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One journal holding a succeeded and a failed execution, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("runs")
    journal = root / "journal.db"
    ok = write_workflow(root / "ok.json", [{"id": "hello", "agent": "echo", "input": "hi"}])
    bad = write_workflow(
        root / "bad.json",
        [
            {"id": "first", "agent": "echo", "input": 1},
            {
                "id": "boom",
                "agent": {"id": "fail", "config": {"message": "kaput"}},
                "input": 2,
                "depends_on": ["first"],
                "policy": no_retry(),
            },
        ],
    )
    ids = {}
    for name, workflow in (("ok", ok), ("bad", bad)):
        done = call("run", str(workflow), "--journal", str(journal), "--json", cwd=root)
        ids[name] = json.loads(done.stdout)["execution_id"]
    return {"root": root, "journal": journal, **ids}


# -- run ------------------------------------------------------------------------------------------


def test_run_parses_inputs_and_prints_the_json_result(tmp_path: Path) -> None:
    workflow = write_workflow(
        tmp_path / "echo.json",
        [{"id": "echo", "agent": "echo", "input": "${inputs}"}],
        inputs={"type": "object"},
        output={"got": "${steps.echo.output}"},
    )
    (tmp_path / "inputs.json").write_text(json.dumps({"from_file": [1, 2], "n": 0}))
    done = call(
        "run",
        str(workflow),
        "--journal",
        str(tmp_path / "j.db"),
        "--json",
        "--inputs-file",
        "inputs.json",
        "--input",
        "n=5",
        "-i",
        "flag=true",
        "-i",
        "name=world",
        "-i",
        'quoted="007"',
        "-i",
        "zeros=007",
        "-i",
        'obj={"a": null}',
        "-i",
        "eq=a=b",
        "-i",
        "nan=NaN",
        "-i",
        "empty=",
        cwd=tmp_path,
    )
    assert done.code == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"execution_id", "status", "output", "error", "steps"}
    assert result["status"] == "succeeded"
    assert result["error"] is None
    assert result["output"] == {
        "got": {
            "from_file": [1, 2],
            "n": 5,
            "flag": True,
            "name": "world",
            "quoted": "007",
            "zeros": "007",
            "obj": {"a": None},
            "eq": "a=b",
            "nan": "NaN",
            "empty": "",
        }
    }
    assert result["steps"] == {
        "echo": {
            "status": "succeeded",
            "attempts": 1,
            "output": result["output"]["got"],
            "error": None,
        },
    }
    assert f"execution {result['execution_id']} started" in done.stderr
    assert "echo  succeeded in" in done.stderr


def test_run_uses_the_default_journal_and_prints_a_human_result(tmp_path: Path) -> None:
    write_workflow(tmp_path / "w.json", [{"id": "a", "agent": "echo", "input": [1]}])
    done = call("run", "w.json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert done.stdout.startswith("status: succeeded\noutput: {\n")
    assert json.loads(done.stdout.split("output: ", 1)[1]) == {"a": [1]}
    execution_id = EXECUTION_LINE.search(done.stderr).group(1)  # type: ignore[union-attr]
    assert event_types(tmp_path / ".orchestr8" / "journal.db", execution_id)[-1] == (
        "execution.succeeded"
    )


def test_output_that_is_not_text_is_journaled_and_printed_escaped(tmp_path: Path) -> None:
    """An output holding a lone surrogate is stored and shown as `\\ud800`, never a hang."""
    (tmp_path / "odd.py").write_text('def odd(input):\n    return {"text": "x\\ud800y"}\n')
    workflow = write_workflow(
        tmp_path / "odd.json",
        [
            {"id": "odd", "agent": {"id": "python", "config": {"callable": "odd:odd"}}},
            {
                "id": "after",
                "agent": "echo",
                "input": "${steps.odd.output.text}",
                "depends_on": ["odd"],
            },
        ],
    )
    journal = tmp_path / "j.db"
    done = cli("run", str(workflow), "--journal", str(journal), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"text": "x\\ud800y"' in done.stdout
    execution_id = EXECUTION_LINE.search(done.stderr).group(1)  # type: ignore[union-attr]
    assert event_types(journal, execution_id)[-1] == "execution.succeeded"
    shown = cli("inspect", execution_id, "--journal", str(journal), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["output"] == {"odd": {"text": "x\ud800y"}, "after": "x\ud800y"}
    undecodable = cli("inspect", "\udcff", "--journal", str(journal), cwd=tmp_path)
    assert (undecodable.returncode, undecodable.stdout) == (1, "")
    assert "no execution '\\udcff'" in undecodable.stderr
    assert "Traceback" not in undecodable.stderr


INTRUDER = '''
import pathlib
import sqlite3


def intrude(input, context):
    """Once, write rows for this execution's next seqs into the journal, as a stray program."""
    marker = pathlib.Path(input["marker"])
    if not marker.exists():
        marker.touch()
        with sqlite3.connect(input["journal"], timeout=5) as connection:
            (last,) = connection.execute(
                "SELECT coalesce(max(seq), 0) FROM events WHERE execution_id = ?",
                (context.execution_id,),
            ).fetchone()
            connection.executemany(
                "INSERT OR IGNORE INTO events VALUES (?, ?, '2025-01-01T00:00:00.000Z', 0,"
                " 'vendor.stray', NULL, NULL, '{}')",
                [(context.execution_id, seq) for seq in range(last + 1, last + 100)],
            )
        connection.close()
    return "intruded"
'''


def test_a_journal_failing_mid_run_stops_it_with_a_resume_hint(tmp_path: Path) -> None:
    """A journal that fails mid-run stops the run: exit 1, the error and how to resume, no trace."""
    (tmp_path / "intruder.py").write_text(INTRUDER)
    journal = tmp_path / "j.db"
    workflow = write_workflow(
        tmp_path / "w.json",
        [
            {
                "id": "intrude",
                "agent": {"id": "python", "config": {"callable": "intruder:intrude"}},
                "input": {"journal": str(journal), "marker": str(tmp_path / "marker")},
            },
            {
                "id": "after",
                "agent": "echo",
                "input": "${steps.intrude.output}",
                "depends_on": ["intrude"],
            },
        ],
    )
    done = cli("run", str(workflow), "--journal", str(journal), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    execution_id = EXECUTION_LINE.search(done.stderr).group(1)  # type: ignore[union-attr]
    assert (
        f"error: execution {execution_id} stopped: the journal failed: writing the journal "
        "failed: UNIQUE constraint failed" in done.stderr
    )
    assert (
        f"resume it once the journal works again: orchestr8 resume --journal {journal} "
        f"{execution_id}\n" in done.stderr
    )
    assert "Traceback" not in done.stderr
    with sqlite3.connect(journal) as connection:
        connection.execute("DELETE FROM events WHERE type = 'vendor.stray'")
    connection.close()
    resumed = cli("resume", execution_id, "--journal", str(journal), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["output"] == {"intrude": "intruded", "after": "intruded"}


def test_a_failed_step_exits_2_with_a_line_per_transition(tmp_path: Path) -> None:
    workflow = write_workflow(
        tmp_path / "w.json",
        [
            {
                "id": "flaky",
                "agent": {"id": "fail", "config": {"times": 1}},
                "input": 1,
                "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.01, "jitter": "none"}},
            },
            {
                "id": "broken",
                "agent": {"id": "fail", "config": {"message": "it broke"}},
                "input": 2,
                "depends_on": ["flaky"],
                "policy": no_retry(),
            },
            {"id": "after", "agent": "echo", "input": 3, "depends_on": ["broken"]},
        ],
    )
    done = cli("run", str(workflow), "--journal", "j.db", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    expected = [
        r"flaky\s+started \(agent fail\)",
        r"flaky\s+attempt 1 failed: RetryableError: .*; retrying in 0\.01s",
        r"flaky\s+succeeded in \d+\.\d+s after 2 attempts",
        r"broken\s+failed \(1 attempt, \d+\.\d+s\): RetryableError: it broke",
        r"after\s+skipped \(a dependency failed: broken\)",
        r"execution failed after .*: step broken failed",
        r"resume it:  orchestr8 resume --journal j.db [0-9a-f]{32}",
        r"fork it:    orchestr8 fork --journal j.db [0-9a-f]{32} --from broken",
    ]
    for pattern in expected:
        assert any(re.search(pattern, line) for line in lines), (pattern, done.stderr)
    assert done.stdout.startswith("status: failed\nerror: RetryableError: it broke (step broken)")


def test_the_timeout_option_exits_3(tmp_path: Path) -> None:
    workflow = write_workflow(
        tmp_path / "w.json", [{"id": "nap", "agent": {"id": "sleep", "config": {"seconds": 30}}}]
    )
    done = call(
        "run", str(workflow), "--journal", "j.db", "--timeout", "0.2", "--json", cwd=tmp_path
    )
    assert done.code == 3, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "failed"
    assert result["error"]["type"] == "ExecutionTimeoutError"
    assert result["steps"]["nap"]["status"] == "cancelled"
    assert "nap  cancelled (timed_out)" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.json"], "missing.json: invalid workflow (1 problem):\n  $: no such file"),
        (["w.json", "--input", "novalue"], "error: --input 'novalue': expected KEY=VALUE"),
        (["w.json"], "invalid inputs:\n  $.inputs: missing required key 'who'"),
        (["w.json", "--inputs-file", "-"], "expected a JSON object of inputs, got list"),
        (["w.json", "--inputs-file", "nope.json"], "error: --inputs-file nope.json:"),
        (["w.json", "-i", "who=x", "--timeout", "-1"], "--timeout must be a number of seconds"),
        (["w.json", "-i", "who=x", "--journal", "."], "error: . is a directory"),
        (["w.json", "--bogus"], "No such option '--bogus'"),
        (
            ["w.json", "-i", "who=x", "--cancel-grace", "nan"],
            "'--cancel-grace': expected a finite number of seconds, 0 or more, got nan",
        ),
        (["w.json", "-i", "who=x", "--cancel-grace", "inf"], "got inf"),
        (["w.json", "-i", "who=x", "--journal", ""], "error: --journal: the path is empty"),
        (["w.json", "-i", "who=" + "[" * 100_000], "error: --input who: nested too deeply"),
        (["w.json", "--inputs-file", "big.json"], "error: --inputs-file big.json: larger than 10"),
    ],
)
def test_invalid_runs_exit_1_without_a_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "w.json").write_text(
        json.dumps(
            {
                "schema_version": "1.0",
                "name": "needs-input",
                "steps": [{"id": "a", "agent": "echo"}],
                "inputs": {"type": "object", "required": ["who"]},
            }
        )
    )
    if "big.json" in args:
        (tmp_path / "big.json").write_bytes(b" " * (10 * 1024 * 1024 + 1))
    done = call("run", *args, cwd=tmp_path, stdin="[1, 2]")
    assert done.code == 1, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_timeout_over_before_the_first_step_starts_none(tmp_path: Path) -> None:
    """`--timeout 1e-9` is over before anything is ready: exit 3 and no step ever starts."""
    workflow = write_workflow(tmp_path / "w.json", [{"id": "a", "agent": "echo", "input": 1}])
    done = call("run", str(workflow), "--journal", "j.db", "--timeout", "1e-9", cwd=tmp_path)
    assert done.code == 3, done.stderr
    execution_id = EXECUTION_LINE.search(done.stderr).group(1)  # type: ignore[union-attr]
    types = event_types(tmp_path / "j.db", execution_id)
    assert "step.started" not in types
    assert types[-1] == "execution.failed"


def test_sigint_cancels_the_run_exits_130_and_journals_the_cancel(tmp_path: Path) -> None:
    workflow = write_workflow(
        tmp_path / "w.json", [{"id": "nap", "agent": {"id": "sleep", "config": {"seconds": 30}}}]
    )
    journal = tmp_path / "j.db"
    command = [
        sys.executable,
        "-m",
        "orchestr8",
        "run",
        str(workflow),
        "--journal",
        str(journal),
        "--cancel-grace",
        "0.1",
    ]
    with subprocess.Popen(
        command,
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        watchdog = threading.Timer(30, process.kill)
        watchdog.start()
        try:
            assert process.stderr is not None
            first = process.stderr.readline()
            match = EXECUTION_LINE.search(first)
            assert match, first
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=20)
        finally:
            watchdog.cancel()
    assert process.returncode == 130, stderr
    assert "interrupted: cancelling" in stderr
    assert stdout.startswith("status: cancelled")
    types = event_types(journal, match.group(1))
    assert types[-2:] == ["step.cancelled", "execution.cancelled"]


# -- validate and schema --------------------------------------------------------------------------


def test_validate_reports_every_broken_file_cleanly(tmp_path: Path) -> None:
    write_workflow(
        tmp_path / "good.json",
        [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "depends_on": ["a"]}],
    )
    (tmp_path / "folder").mkdir()
    (tmp_path / "binary.json").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "empty.json").write_bytes(b"")
    with (tmp_path / "huge.json").open("wb") as file:
        file.truncate(50 * 1024 * 1024)
    write_workflow(
        tmp_path / "agents.json",
        [
            {"id": "a", "agent": "no-such-agent"},
            {"id": "b", "agent": "echo", "depends_on": ["c"]},
        ],
    )
    write_workflow(
        tmp_path / "config.json",
        [
            {"id": "a", "agent": {"id": "fail", "config": {"times": "twice"}}},
            {"id": "b", "agent": {"id": "python", "config": {"callable": "no_such_module:f"}}},
        ],
    )
    files = [
        "good.json",
        "folder",
        "binary.json",
        "empty.json",
        "huge.json",
        "missing.json",
        "agents.json",
        "config.json",
    ]
    done = call("validate", *files, cwd=tmp_path)
    assert done.code == 1
    assert done.stdout == "good.json: valid workflow 'good' (2 steps)\n"
    for expected in [
        "folder: invalid workflow (1 problem):\n  $: this is a directory",
        "binary.json: invalid workflow (1 problem):\n  $: this is a binary file",
        "empty.json: invalid workflow (1 problem):\n  $: ",
        "huge.json: invalid workflow (1 problem):\n  $: the file is larger than",
        "missing.json: invalid workflow (1 problem):\n  $: no such file",
        "  $.steps[0].agent: unknown agent 'no-such-agent'",
        "  $.steps[1].depends_on[0]: unknown step 'c'",
        "config.json: invalid workflow (2 problems):\n  $.steps[0].agent: agent 'fail': times",
        "  $.steps[1].agent: agent 'python': callable 'no_such_module:f'",
    ]:
        assert expected in done.stderr, (expected, done.stderr)
    assert "Traceback" not in done.stderr
    valid = call("validate", "good.json", cwd=tmp_path)
    assert (valid.code, valid.stderr) == (0, "")


def test_schema_prints_the_workflow_json_schema(tmp_path: Path) -> None:
    done = call("schema", cwd=tmp_path)
    assert done.code == 0
    assert json.loads(done.stdout) == workflow_schema()


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    """Importing the CLI loads none of trio, anyio, jsonschema, cattrs or sqlite3 itself."""
    # Only what the import adds counts: a coverage tracer may have loaded sqlite3 before.
    probe = (
        "import sys; before = set(sys.modules); import orchestr8._cli._main; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
        "{'trio', 'anyio', 'jsonschema', 'cattrs', 'sqlite3'} or m.startswith('orchestr8.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=environment(tmp_path),
    )
    assert done.stdout.strip() == str(
        [
            "orchestr8._cli",
            "orchestr8._cli._compare",
            "orchestr8._cli._control_commands",
            "orchestr8._cli._eval_command",
            "orchestr8._cli._fork_command",
            "orchestr8._cli._gate_commands",
            "orchestr8._cli._group",
            "orchestr8._cli._inspect_commands",
            "orchestr8._cli._journal_commands",
            "orchestr8._cli._main",
            "orchestr8._cli._retention_commands",
            "orchestr8._cli._run_commands",
            "orchestr8._cli._worker_command",
            "orchestr8._shell",
            "orchestr8._shell._options",
            "orchestr8._version",
        ]
    )
    helped = cli("--help", cwd=tmp_path)
    assert helped.returncode == 0
    for command in ("run", "validate", "schema", "inspect", "resume"):
        assert f"  {command} " in helped.stdout


# -- inspect --------------------------------------------------------------------------------------


def test_inspect_lists_executions_newest_first(runs: dict[str, Any]) -> None:
    journal = str(runs["journal"])
    table = call("inspect", "--journal", journal, cwd=runs["root"])
    assert table.code == 0, table.stderr
    header, newest, oldest = table.stdout.splitlines()
    assert header.split() == ["ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"]
    assert newest.split()[:3] == [runs["bad"], "bad", "failed"]
    assert oldest.split()[:3] == [runs["ok"], "ok", "succeeded"]
    assert header.index("STATUS") == newest.index("failed") == oldest.index("succeeded")
    listed = call(
        "inspect",
        "--journal",
        journal,
        "--json",
        "--status",
        "succeeded",
        "--limit",
        "5",
        cwd=runs["root"],
    )
    [only] = json.loads(listed.stdout)
    assert only["execution_id"] == runs["ok"]
    assert set(only) == {
        "execution_id",
        "workflow",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "duration",
        "parent_id",
    }


def test_inspect_shows_one_execution_by_unique_prefix(runs: dict[str, Any]) -> None:
    journal, execution_id = str(runs["journal"]), runs["bad"]
    shown = call("inspect", execution_id[:6], "--journal", journal, cwd=runs["root"])
    assert shown.code == 0, shown.stderr
    text = shown.stdout
    assert f"execution  {execution_id}\n" in text
    assert "status     failed\n" in text
    assert "error      RetryableError: kaput (step boom)" in text
    assert re.search(r"^first\s+succeeded\s+1\s+\d", text, re.MULTILINE)
    assert re.search(r"^boom\s+failed\s+1\s+\d.*kaput$", text, re.MULTILINE)
    assert re.search(r"^1\s+0\.\d{3}\s+execution\.started\s+\{", text, re.MULTILINE)
    assert re.search(r"execution\.failed\s+\{\"error\"", text)
    detail = json.loads(
        call("inspect", execution_id, "--journal", journal, "--json", cwd=runs["root"]).stdout
    )
    assert detail["status"] == "failed"
    assert list(detail["steps"]) == ["first", "boom"]
    assert detail["steps"]["boom"]["error"]["message"] == "kaput"
    assert [event["seq"] for event in detail["events"]] == list(range(1, len(detail["events"]) + 1))
    assert detail["events"][-1]["type"] == "execution.failed"


def test_inspect_refuses_a_limit_it_could_not_list(runs: dict[str, Any]) -> None:
    """`--limit` beyond 100,000 is a usage error (exit 1), not a database overflow."""
    done = call(
        "inspect", "--journal", str(runs["journal"]), "--limit", str(2**63), cwd=runs["root"]
    )
    assert done.code == 1
    assert "'--limit': 9223372036854775808 is not in the range 1<=x<=100000" in done.stderr


def test_inspect_shows_a_killed_run_as_interrupted_and_a_live_one_as_running(
    tmp_path: Path,
) -> None:
    """A run's lock tells live from dead: running while its process lives, interrupted after."""
    workflow = write_workflow(
        tmp_path / "nap.json",
        [
            {"id": "nap", "agent": {"id": "sleep", "config": {"seconds": 60}}},
        ],
    )
    journal = str(tmp_path / "j.db")
    with subprocess.Popen(
        [sys.executable, "-m", "orchestr8", "run", str(workflow), "--journal", journal],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            started = EXECUTION_LINE.search(process.stderr.readline())
            assert started, "the run did not name its execution"
            execution_id = started.group(1)
            assert "started (agent sleep)" in process.stderr.readline()

            def shown(*args: str) -> Any:
                done = call("inspect", *args, "--json", "--journal", journal, cwd=tmp_path)
                assert done.code == 0, done.stderr
                return json.loads(done.stdout)

            assert shown()[0]["status"] == "running"
            assert shown(execution_id)["status"] == "running"
        finally:
            process.kill()
            process.wait(timeout=10)
    assert [item["status"] for item in shown()] == ["interrupted"]
    assert shown(execution_id)["status"] == "interrupted"
    assert [item["execution_id"] for item in shown("--status", "interrupted")] == [execution_id]
    assert shown("--status", "running") == []
    table = call("inspect", execution_id, "--journal", journal, cwd=tmp_path).stdout
    assert re.search(r"^status +interrupted$", table, re.MULTILINE)
    assert f"`orchestr8 resume --journal {journal} {execution_id}` continues it" in table
    chart = call("inspect", execution_id, "--timeline", "--journal", journal, cwd=tmp_path).stdout
    assert re.search(r"^nap +~+ +interrupted$", chart, re.MULTILINE), chart


def test_inspect_counts_the_items_of_a_map_and_the_timeline_folds_them(tmp_path: Path) -> None:
    """`inspect ID` lists steps and a MAP table (`map 12: 11 succeeded, 1 failed`), not items."""
    workflow = tmp_path / "map.json"
    document = {
        "schema_version": "1.1",
        "name": "map",
        "fail_fast": False,
        "steps": [
            {
                "id": "summarise",
                "agent": {"id": "python", "config": {"callable": "builtins:abs"}},
                "for_each": "inputs.numbers",
                "input": "${item}",
                "policy": {"retry": {"max_attempts": 1}},
            }
        ],
    }
    workflow.write_text(json.dumps(document), encoding="utf-8")
    journal = str(tmp_path / "journal.db")
    numbers = json.dumps([*range(-5, 0), "x", *range(6)])
    ran = call("run", str(workflow), "-i", f"numbers={numbers}", "--journal", journal, cwd=tmp_path)
    assert ran.code == 2, ran.stderr
    listed = json.loads(call("inspect", "--json", "--journal", journal, cwd=tmp_path).stdout)
    execution_id = listed[0]["execution_id"]
    table = call("inspect", execution_id, "--journal", journal, cwd=tmp_path).stdout
    assert re.search(r"^summarise +map 12: 11 succeeded, 1 failed$", table, re.MULTILINE), table
    assert "summarise[" not in table.split("SEQ")[0]
    detail = json.loads(
        call("inspect", execution_id, "--json", "--journal", journal, cwd=tmp_path).stdout
    )
    assert list(detail["steps"]) == ["summarise"]
    assert detail["steps"]["summarise"]["items"]["failed_items"] == [5]
    chart = call("inspect", execution_id, "--timeline", "--journal", journal, cwd=tmp_path).stdout
    assert "map 12: 11 succeeded, 1 failed" in chart
    assert "summarise[" not in chart
    resumed = call("resume", execution_id, "--journal", journal, cwd=tmp_path)
    assert "0 of 1 steps reused (and 11 map items)" in resumed.stderr


def test_inspect_counts_the_items_a_map_filter_skipped(tmp_path: Path) -> None:
    """`run` of a map with a per-item `when`: `null` for left-out items, `inspect` counts them."""
    workflow = tmp_path / "filter.json"
    document = {
        "schema_version": "1.1",
        "name": "filter",
        "steps": [
            {
                "id": "each",
                "agent": "echo",
                "for_each": "inputs.docs",
                "when": "item.lang == 'en'",
                "input": "${item.title}",
            }
        ],
        "output": "${steps.each.output}",
    }
    workflow.write_text(json.dumps(document), encoding="utf-8")
    journal = str(tmp_path / "journal.db")
    docs = json.dumps([{"title": "A", "lang": "en"}, {"title": "B", "lang": "fr"}])
    ran = call(
        "run", str(workflow), "-i", f"docs={docs}", "--json", "--journal", journal, cwd=tmp_path
    )
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout)["output"] == ["A", None]
    listed = json.loads(call("inspect", "--json", "--journal", journal, cwd=tmp_path).stdout)
    table = call("inspect", listed[0]["execution_id"], "--journal", journal, cwd=tmp_path).stdout
    assert re.search(r"^each +map 2: 1 succeeded, 1 skipped$", table, re.MULTILINE), table
    assert "when was false: item.lang == 'en'" in table


def test_inspect_unknown_id_and_missing_journal_exit_1(runs: dict[str, Any]) -> None:
    unknown = call("inspect", "zzz", "--journal", str(runs["journal"]), cwd=runs["root"])
    assert (unknown.code, unknown.stdout) == (1, "")
    assert unknown.stderr.startswith("error: no execution 'zzz' in the journal")
    env = {"ORCHESTR8_JOURNAL": str(runs["root"] / "none.db")}
    missing = call("inspect", "abc", cwd=runs["root"], env=env)
    assert missing.code == 1
    assert "error: there is no journal at" in missing.stderr
    assert not (runs["root"] / "none.db").exists()


# -- resume ---------------------------------------------------------------------------------------


def test_resume_continues_a_failed_run_without_repeating_done_steps(tmp_path: Path) -> None:
    (tmp_path / "side_effects.py").write_text(SIDE_EFFECTS)
    workflow = write_workflow(
        tmp_path / "w.json",
        [
            {
                "id": "record",
                "agent": {"id": "python", "config": {"callable": "side_effects:record"}},
                "input": {"counter": "${inputs.counter}"},
            },
            {
                "id": "check",
                "agent": {"id": "python", "config": {"callable": "side_effects:needs_marker"}},
                "input": {"marker": "${inputs.marker}"},
                "depends_on": ["record"],
                "policy": no_retry(),
            },
        ],
        inputs={"type": "object"},
    )
    counter, marker = tmp_path / "counter.txt", tmp_path / "marker"
    env = environment(tmp_path, ORCHESTR8_JOURNAL=str(tmp_path / "j.db"))
    first = cli(
        "run",
        str(workflow),
        "-i",
        f"counter={counter}",
        "-i",
        f"marker={marker}",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert first.returncode == 2, first.stderr
    failed = json.loads(first.stdout)
    assert failed["steps"]["check"]["error"]["message"] == "the marker file is missing"
    marker.touch()
    second = cli("resume", failed["execution_id"][:8], "--json", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    resumed = json.loads(second.stdout)
    assert resumed["execution_id"] == failed["execution_id"]
    assert resumed["output"] == {"record": {"recorded": True}, "check": "marker found"}
    assert f"execution {failed['execution_id']} resumed" in second.stderr
    assert "1 of 2 steps reused" in second.stderr
    assert counter.read_text() == "done\n"


def test_resuming_a_succeeded_execution_exits_1(runs: dict[str, Any]) -> None:
    done = call("resume", runs["ok"], "--journal", str(runs["journal"]), cwd=runs["root"])
    assert done.code == 1
    assert done.stderr == (
        f"error: execution {runs['ok']} already succeeded; there is nothing to resume\n"
    )


# -- helpers, in-process --------------------------------------------------------------------------


def test_parse_inputs_reads_json_values_else_text(tmp_path: Path) -> None:
    assert parse_inputs(["a=1", "b=[1, 2]", "c=hello", "d=", "e=null", "a=2"], None) == {
        "a": 2,
        "b": [1, 2],
        "c": "hello",
        "d": "",
        "e": None,
    }
    (tmp_path / "in.json").write_text('{"a": 1, "b": 2}')
    assert parse_inputs(["b=3"], str(tmp_path / "in.json")) == {"a": 1, "b": 3}
    for bad in (["=1"], ["novalue"]):
        with pytest.raises(CommandError, match="expected KEY=VALUE"):
            parse_inputs(bad, None)
    (tmp_path / "nan.json").write_text('{"a": NaN}')
    with pytest.raises(CommandError, match="not JSON"):
        parse_inputs([], str(tmp_path / "nan.json"))


def test_exit_codes_follow_how_the_execution_ended() -> None:
    def result(status: ExecutionStatus, error: dict[str, Any] | None = None) -> ExecutionResult:
        return ExecutionResult("x", status, None, error)

    assert exit_code(result(ExecutionStatus.SUCCEEDED)) == 0
    assert exit_code(result(ExecutionStatus.FAILED, {"type": "RetryableError"})) == 2
    assert exit_code(result(ExecutionStatus.FAILED, {"type": "ExecutionTimeoutError"})) == 3
    assert exit_code(result(ExecutionStatus.CANCELLED, {"type": "Cancelled"})) == 130


async def test_find_execution_accepts_unique_prefixes() -> None:
    async with open_journal() as journal:
        for execution_id in ("abc123", "abc456", "def789"):
            await journal.create_execution(ExecutionRecord(execution_id, "w", {}))
        assert (await find_execution(journal, "abc123")).execution_id == "abc123"
        assert (await find_execution(journal, "d")).execution_id == "def789"
        with pytest.raises(CommandError, match="'abc' is ambiguous: it matches abc"):
            await find_execution(journal, "abc")
        for unknown in ("x", ""):
            with pytest.raises(CommandError, match="no execution"):
                await find_execution(journal, unknown)


async def test_a_prefix_without_a_dot_resolves_among_top_level_executions() -> None:
    """Children `PARENT.STEP` share their parent's prefix: they count only once it has a dot."""
    async with open_journal() as journal:
        await journal.create_execution(ExecutionRecord("abc123", "w", {}))
        for child in ("abc123.p", "abc123.lc#2"):
            record = ExecutionRecord(child, "kid", {}, parent_id="abc123", parent_step="p")
            await journal.create_execution(record)
        assert (await find_execution(journal, "abc")).execution_id == "abc123"
        assert (await find_execution(journal, "abc123.l")).execution_id == "abc123.lc#2"
        with pytest.raises(CommandError, match=r"'abc123\.' is ambiguous"):
            await find_execution(journal, "abc123.")


async def test_progress_view_writes_one_line_per_transition(
    autojump_clock: trio.abc.Clock,
) -> None:
    factory = EventFactory("e1")
    events = [
        factory.create(EventType.STEP_STARTED, step_id="a", data={"agent": "echo"}),
        factory.create(EventType.ATTEMPT_STARTED, step_id="a", attempt=1),
        factory.create(
            EventType.ATTEMPT_FAILED,
            step_id="a",
            attempt=1,
            data={"error": {"type": "OSError", "message": "down"}},
        ),
        factory.create(EventType.RETRY_SCHEDULED, step_id="a", attempt=1, data={"delay": 0.5}),
        factory.create(EventType.STEP_SUCCEEDED, step_id="a", attempt=2, data={"output": 1}),
        factory.create(EventType.STEP_CANCELLED, step_id="bb", data={"reason": "cancelled"}),
        factory.create(EventType.EXECUTION_CANCELLED, data={"reason": "interrupted (SIGINT)"}),
    ]
    await trio.lowlevel.checkpoint()
    complete, lossy = io.StringIO(), io.StringIO()
    for stream, shown in ((complete, events), (lossy, events[:2] + events[4:])):
        view = ProgressView(stream, ["a", "bb"], live=False)
        view.show(object(), "e1")
        view.show(EventFactory("other").create(EventType.STEP_STARTED, step_id="a"), "e1")
        for event in shown:
            view.show(event, "e1")
    assert [line.split(None, 1)[1] for line in complete.getvalue().splitlines()] == [
        "a   started (agent echo)",
        "a   attempt 1 failed: OSError: down; retrying in 0.50s",
        "a   succeeded in 0.00s after 2 attempts",
        "bb  cancelled",
        "execution cancelled after 0.00s: interrupted (SIGINT)",
    ]
    assert "(2 events not shown: the display fell behind)\n" in lossy.getvalue()
    assert "\x1b[" not in complete.getvalue()


def test_render_table_aligns_columns() -> None:
    text = render_table(["A", "BBB"], [["xxxx", ("ok", "green")], ["y", "z"]], color=False)
    assert text.splitlines() == ["A     BBB", "xxxx  ok", "y     z"]


# -- logging and the timeline ---------------------------------------------------------------------


def test_run_writes_json_log_lines_with_the_execution_ids(tmp_path: Path) -> None:
    """`--log-format json --log-level info` puts one JSON object per log line on stderr."""
    workflow = write_workflow(
        tmp_path / "flaky.json",
        [
            {
                "id": "flaky",
                "agent": {"id": "fail", "config": {"times": 1}},
                "input": 1,
                "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.01, "jitter": "none"}},
            },
        ],
    )
    done = call(
        "run",
        str(workflow),
        "--journal",
        str(tmp_path / "j.db"),
        "--json",
        "--log-format",
        "json",
        "--log-level",
        "info",
        cwd=tmp_path,
    )
    assert done.code == 0, done.stderr
    execution_id = json.loads(done.stdout)["execution_id"]
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    retry = next(record for record in records if "retrying" in record["message"])
    assert retry["level"] == "INFO"
    assert retry["logger"] == "orchestr8.engine"
    assert retry["execution_id"] == execution_id
    assert retry["correlation_id"] == execution_id
    assert retry["step_id"] == "flaky"
    assert set(retry) >= {"time", "level", "message", "logger"}


def test_log_settings_come_from_the_environment_and_bad_ones_exit_1(tmp_path: Path) -> None:
    """ORCHESTR8_LOG_LEVEL / ORCHESTR8_LOG_FORMAT apply; an unknown value is exit 1, named."""
    workflow = write_workflow(tmp_path / "ok.json", [{"id": "a", "agent": "echo", "input": 1}])
    done = call(
        "run",
        str(workflow),
        "--journal",
        str(tmp_path / "j.db"),
        cwd=tmp_path,
        env={"ORCHESTR8_LOG_LEVEL": "info"},
    )
    assert done.code == 0
    assert "INFO     orchestr8.engine: execution" in done.stderr
    bad = call("schema", cwd=tmp_path, env={"ORCHESTR8_LOG_FORMAT": "xml"})
    assert bad.code == 1
    assert "unknown log format 'xml'" in bad.stderr


def test_inspect_timeline_draws_attempts_and_retry_waits(tmp_path: Path) -> None:
    """`inspect ID --timeline` draws each step's attempts and waits on one time axis."""
    workflow = write_workflow(
        tmp_path / "flaky.json",
        [
            {
                "id": "flaky",
                "agent": {"id": "fail", "config": {"times": 1}},
                "input": 1,
                "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.05, "jitter": "none"}},
            },
            {"id": "after", "agent": "echo", "input": 2, "depends_on": ["flaky"]},
        ],
    )
    journal = str(tmp_path / "j.db")
    ran = call("run", str(workflow), "--journal", journal, "--json", cwd=tmp_path)
    execution_id = json.loads(ran.stdout)["execution_id"]
    done = call("inspect", execution_id, "--timeline", "--journal", journal, cwd=tmp_path)
    assert done.code == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "x" in rows["flaky"]
    assert "." in rows["flaky"]
    assert "succeeded" in rows["flaky"]
    assert "succeeded" in rows["after"]
    refused = call("inspect", "--timeline", "--journal", journal, cwd=tmp_path)
    assert refused.code == 1


# -- secrets on run and resume --------------------------------------------------------------------

KEYED_AGENT = '''
import pathlib


def check(input):
    """Fail until the marker file exists; then tell whether the secrets arrived intact."""
    if not pathlib.Path(input["marker"]).exists():
        raise RuntimeError("the marker file is missing")
    return {"key_ok": input["key"] == "cli-key-123456",
            "token_ok": input["token"] == "tok-98765432"}
'''


def assert_never_stored(root: Path, *secrets: bytes) -> None:
    """No file of the journal (database, WAL, shared memory) holds any of `secrets`."""
    for path in root.glob("j.db*"):
        stored = path.read_bytes()
        for secret in secrets:
            assert secret not in stored, (path, secret)


def test_resume_takes_redacted_inputs_and_secrets_again(tmp_path: Path) -> None:
    """Neither the api_key input nor the secret is journaled; resume asks for them by name."""
    (tmp_path / "keyed.py").write_text(KEYED_AGENT)
    marker = tmp_path / "marker"
    workflow = write_workflow(
        tmp_path / "w.json",
        [
            {
                "id": "call",
                "agent": {"id": "python", "config": {"callable": "keyed:check"}},
                "input": {
                    "marker": str(marker),
                    "key": "${inputs.api_key}",
                    "token": "${secrets.SVC}",
                },
                "policy": no_retry(),
            },
        ],
        inputs={
            "type": "object",
            "properties": {"api_key": {"type": "string"}},
            "required": ["api_key"],
        },
    )
    journal = tmp_path / "j.db"
    env = environment(tmp_path, ORCHESTR8_JOURNAL=str(journal))
    first = cli(
        "run",
        str(workflow),
        "-i",
        "api_key=cli-key-123456",
        "--json",
        cwd=tmp_path,
        env={**env, "ORCHESTR8_SECRET_SVC": "tok-98765432"},
    )
    assert first.returncode == 2, first.stderr
    execution_id = json.loads(first.stdout)["execution_id"]
    assert_never_stored(tmp_path, b"cli-key-123456", b"tok-98765432")
    marker.touch()

    bare = cli("resume", execution_id, cwd=tmp_path, env=env)
    assert bare.returncode == 1
    assert bare.stderr == (
        "error: invalid inputs:\n  $.inputs.api_key: the journal keeps this input redacted (its "
        "key looks like a secret); supply it again to resume\n"
        "give redacted inputs again with --input NAME=VALUE (or --inputs-file FILE)\n"
    )
    no_secret = cli("resume", execution_id, "-i", "api_key=cli-key-123456", cwd=tmp_path, env=env)
    assert no_secret.returncode == 1
    assert no_secret.stderr == (
        "error: missing secret SVC: set ORCHESTR8_SECRET_SVC in the environment, or put them in "
        "a secrets file\n"
    )
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"SVC": "tok-98765432"}))
    resumed = cli(
        "resume",
        execution_id,
        "-i",
        "api_key=cli-key-123456",
        "--secrets-file",
        str(secrets_file),
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"]["call"]["output"] == {
        "key_ok": True,
        "token_ok": True,
    }
    assert_never_stored(tmp_path, b"cli-key-123456", b"tok-98765432")


def test_resume_runs_a_step_again_whose_output_was_journaled_redacted(tmp_path: Path) -> None:
    """A step reading a secret from a reused output gets the real value, and stderr says why."""
    (tmp_path / "keyed.py").write_text(KEYED_AGENT)
    marker = tmp_path / "marker"
    workflow = write_workflow(
        tmp_path / "w.json",
        [
            {"id": "a", "agent": "echo", "input": {"k": "${inputs.api_key}"}},
            {
                "id": "b",
                "agent": {"id": "python", "config": {"callable": "keyed:check"}},
                "input": {"marker": str(marker), "key": "${steps.a.output.k}", "token": ""},
                "depends_on": ["a"],
                "policy": no_retry(),
            },
        ],
        inputs={
            "type": "object",
            "properties": {"api_key": {"type": "string"}},
            "required": ["api_key"],
        },
    )
    journal = tmp_path / "j.db"
    env = environment(tmp_path, ORCHESTR8_JOURNAL=str(journal))
    first = cli(
        "run", str(workflow), "-i", "api_key=cli-key-123456", "--json", cwd=tmp_path, env=env
    )
    assert first.returncode == 2, first.stderr
    execution_id = json.loads(first.stdout)["execution_id"]
    marker.touch()
    resumed = cli(
        "resume", execution_id, "-i", "api_key=cli-key-123456", "--json", cwd=tmp_path, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"]["b"]["output"] == {
        "key_ok": True,
        "token_ok": False,
    }
    assert "0 of 2 steps reused" in resumed.stderr
    assert (
        f"execution {execution_id} runs a again: the journal holds its output redacted (it held "
        "a secret), and a resume reuses only outputs recorded as they were\n"
    ) in resumed.stderr
    assert_never_stored(tmp_path, b"cli-key-123456")


def test_an_unusable_secrets_file_is_a_usage_error(tmp_path: Path) -> None:
    """A secrets file that is not a JSON object of strings: exit 1, naming the option and file."""
    workflow = write_workflow(tmp_path / "w.json", [{"id": "a", "agent": "echo"}])
    (tmp_path / "s.json").write_text('{"A": 1}')
    outcome = call("run", str(workflow), "--secrets-file", "s.json", cwd=tmp_path)
    assert outcome.code == 1
    assert outcome.stderr == (
        "error: --secrets-file s.json: every secret must be a string; these are not: $.A\n"
    )


# -- the documentation ----------------------------------------------------------------------------

CLI_DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
HELP_BLOCK = re.compile(r"```console\n\$ orchestr8 ((?:[\w-]+ )*)--help\n(.*?)```", re.DOTALL)


def test_the_help_shown_in_the_docs_is_the_real_help(tmp_path: Path) -> None:
    """Every `$ orchestr8 ... --help` block of docs/cli.md is what that command prints (80 cols)."""
    blocks = HELP_BLOCK.findall(CLI_DOCS.read_text(encoding="utf-8"))
    assert blocks, "docs/cli.md shows no --help output"
    for words, shown in blocks:
        done = call(*words.split(), "--help", cwd=tmp_path, env={"COLUMNS": "80"})
        assert done.code == 0, done.stderr
        assert done.stdout == shown, f"orchestr8 {words}--help"


def test_every_option_of_every_command_is_named_in_the_docs(tmp_path: Path) -> None:
    """No command has an option that docs/cli.md does not mention (`agent serve`'s included)."""
    import asyncclick as click

    from orchestr8._cli._main import cli as command_line

    assert call("--help", cwd=tmp_path).code == 0  # registers every command, as `main` does
    docs = CLI_DOCS.read_text(encoding="utf-8")
    missing = []
    pending: list[tuple[str, click.Command]] = [("orchestr8", command_line)]
    while pending:
        path, command = pending.pop()
        missing += [
            f"{path} {option}"
            for parameter in command.params
            if isinstance(parameter, click.Option)
            for option in parameter.opts
            if option.startswith("--") and option not in docs
        ]
        if isinstance(command, click.Group):
            pending += [(f"{path} {name}", child) for name, child in command.commands.items()]
    assert missing == []


def test_inspect_offers_every_status_a_view_shows() -> None:
    """`inspect --status` accepts exactly the statuses the views show, `interrupted` included."""
    from orchestr8._cli._inspect_commands import _STATUSES
    from orchestr8._execution._liveness import SHOWN_STATUSES

    assert _STATUSES == SHOWN_STATUSES


def test_inspect_shows_why_each_skipped_step_was_skipped(tmp_path: Path) -> None:
    """`inspect ID` gives a skipped step its reason in DETAIL; `--json` gives it as `reason`."""
    journal = str(tmp_path / "journal.db")
    routed = write_workflow(
        tmp_path / "routed.json",
        [
            {"id": "classify", "agent": "echo", "input": {"label": "billing"}},
            {
                "id": "route_technical",
                "agent": "echo",
                "depends_on": ["classify"],
                "when": "steps.classify.output.label == 'technical'",
            },
        ],
        schema_version="1.1",
    )
    done = call("run", str(routed), "--journal", journal, "--json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    execution_id = json.loads(done.stdout)["execution_id"]
    shown = call("inspect", execution_id, "--journal", journal, cwd=tmp_path)
    assert re.search(r"^STEP\s+STATUS\s+ATTEMPTS\s+DURATION\s+DETAIL$", shown.stdout, re.MULTILINE)
    assert re.search(
        r"^route_technical\s+skipped\s+0\s+-\s+"
        r"when was false: steps\.classify\.output\.label == 'technical'$",
        shown.stdout,
        re.MULTILINE,
    )
    detail = json.loads(
        call("inspect", execution_id, "--journal", journal, "--json", cwd=tmp_path).stdout
    )
    assert detail["steps"]["route_technical"]["reason"].startswith("when was false: ")
    assert detail["steps"]["classify"]["reason"] is None


def test_inspect_shows_the_last_events_only_when_told_and_refuses_a_bad_count(
    tmp_path: Path,
) -> None:
    """`--events N` keeps the last N events with a line saying so; `all` shows every one."""
    journal = str(tmp_path / "journal.db")
    mapped = write_workflow(
        tmp_path / "mapped.json",
        [{"id": "each", "agent": "echo", "for_each": "`[1, 2, 3, 4]`", "input": "${item}"}],
        schema_version="1.1",
    )
    done = call("run", str(mapped), "--journal", journal, "--json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    execution_id = json.loads(done.stdout)["execution_id"]
    total = len(
        json.loads(
            call("inspect", execution_id, "--journal", journal, "--json", cwd=tmp_path).stdout
        )["events"]
    )
    shown = call("inspect", execution_id, "--journal", journal, "--events", "3", cwd=tmp_path)
    assert f"(the last 3 of {total} events; --events all shows every one)" in shown.stdout
    assert re.search(rf"^{total}\s+\S+\s+execution\.succeeded", shown.stdout, re.MULTILINE)
    assert not re.search(r"^1\s+\S+\s+execution\.started", shown.stdout, re.MULTILINE)
    every = call("inspect", execution_id, "--journal", journal, "--events", "all", cwd=tmp_path)
    assert re.search(r"^1\s+\S+\s+execution\.started", every.stdout, re.MULTILINE)
    assert "events; --events all" not in every.stdout
    refused = call("inspect", execution_id, "--journal", journal, "--events", "0", cwd=tmp_path)
    assert refused.code == 1
    assert "--events takes a positive number or 'all', not '0'" in refused.stderr
