"""Running the `orchestr8` command line inside the test process: fast, and its lines count."""

from __future__ import annotations

import io
import json
import os
import sys
import types
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

import attrs
import pytest

from orchestr8._console import main


@attrs.frozen
class Outcome:
    """How a command ended: its exit code and what it printed on each stream."""

    code: int
    stdout: str
    stderr: str


def call(*args: str, cwd: Path) -> Outcome:
    """Run the command line in this process, as the console script does."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = os.getcwd(), sys.argv, list(sys.path)
    environ = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    os.chdir(cwd)
    sys.argv = ["orchestr8", *args]
    try:
        with (
            mock.patch.dict(os.environ, {**environ, "NO_COLOR": "1"}, clear=True),
            mock.patch.dict(sys.modules, {"__main__": types.ModuleType("__main__")}),
            redirect_stdout(stdout),
            redirect_stderr(stderr),
            pytest.raises(SystemExit) as exited,
        ):
            main()
    finally:
        os.chdir(saved[0])
        sys.argv, sys.path[:] = saved[1], saved[2]
    code = exited.value.code
    assert isinstance(code, int)
    return Outcome(code, stdout.getvalue(), stderr.getvalue())


def workflow(path: Path, steps: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"schema_version": "1.1", "name": path.stem, "steps": steps}))
    return path


def record_runs(tmp_path: Path) -> dict[str, Any]:
    """One journal in `tmp_path` with two runs: `first` (a, b), `second` (a with other input, c).

    Returns the journal, its directory (`cwd`), both ids and the first run's events.
    """
    first = workflow(
        tmp_path / "first.json",
        [
            {"id": "a", "agent": "echo", "input": {"n": 1}},
            {"id": "b", "agent": "echo", "depends_on": ["a"], "input": "${steps.a.output}"},
        ],
    )
    second = workflow(
        tmp_path / "second.json",
        [
            {"id": "a", "agent": "echo", "input": {"n": 2}},
            {"id": "c", "agent": "echo", "for_each": "inputs.items", "input": "${item}"},
        ],
    )
    journal = str(tmp_path / "journal.db")
    ids = []
    for path, extra in ((first, []), (second, ["--input", "items=[1,2]"])):
        done = call("run", str(path), "--journal", journal, "--json", *extra, cwd=tmp_path)
        assert done.code == 0, done.stderr
        ids.append(json.loads(done.stdout)["execution_id"])
    detail = call("inspect", ids[0], "--journal", journal, "--json", cwd=tmp_path)
    events = json.loads(detail.stdout)["events"]
    return {
        "cwd": tmp_path,
        "journal": journal,
        "first": ids[0],
        "second": ids[1],
        "events": events,
    }
