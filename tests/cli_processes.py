"""Running `orchestr8` as a real process in tests, and reading what its journal recorded."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m orchestr8 ARGS` to its end and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "orchestr8", *args],
        cwd=cwd,
        env=env or environment(cwd),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def environment(path: Path, **extra: str) -> dict[str, str]:
    """The subprocess environment: no colour, `path` importable, no inherited journal."""
    env = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    # The code under test stays first on the path (a worktree's, when PYTHONPATH names one).
    inherited = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    env.update(PYTHONPATH=os.pathsep.join([*inherited, str(path)]), NO_COLOR="1", **extra)
    return env


def event_types(journal: Path, execution_id: str) -> list[str]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT type FROM events WHERE execution_id = ? ORDER BY seq", (execution_id,)
        ).fetchall()
    connection.close()
    return [row[0] for row in rows]
