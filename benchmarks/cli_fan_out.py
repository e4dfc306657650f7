"""Time `orchestr8 run` on flat workflows of N `echo` steps (no dependencies) on a SQLite journal.

A wide fan-out is where the journal's lag cap matters: every step waits for the journal before its
agent. Prints one JSON object per size: the wall time of the whole CLI run (start-up included).
Usage: `python benchmarks/cli_fan_out.py [SIZE ...]` (default 5000 10000 20000).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def flat_workflow(size: int) -> dict[str, object]:
    """A workflow of `size` independent `echo` steps."""
    return {
        "schema_version": "1.0",
        "name": f"flat-{size}",
        "steps": [{"id": f"s{index}", "agent": "echo", "input": index} for index in range(size)],
    }


def run(size: int) -> dict[str, object]:
    """Run the flat workflow once through the CLI, output to /dev/null, and time it."""
    with tempfile.TemporaryDirectory() as directory:
        workflow = Path(directory) / "flat.json"
        workflow.write_text(json.dumps(flat_workflow(size)))
        started = time.perf_counter()
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestr8",
                "run",
                str(workflow),
                "--journal",
                str(Path(directory) / "journal.db"),
                "--log-format",
                "json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        elapsed = time.perf_counter() - started
    return {
        "bench": "cli_flat_fan_out_sqlite",
        "steps": size,
        "seconds": round(elapsed, 2),
        "exit_code": completed.returncode,
    }


def main() -> None:
    """Run each size given (or the defaults) and print its figures as JSON lines."""
    sizes = [int(argument) for argument in sys.argv[1:]] or [5000, 10_000, 20_000]
    for size in sizes:
        print(json.dumps(run(size)), flush=True)


if __name__ == "__main__":
    main()
