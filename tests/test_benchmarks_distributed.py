"""`benchmarks/distributed.py --quick` runs end to end, so the benchmark never rots.

No figure is checked (timings depend on the machine); only that every workload prints its line
and that the benchmark's own PostgreSQL runs durably (fsync on, `synchronous_commit` default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("postgres_server")


def test_quick_run_prints_every_workload_on_a_durable_server() -> None:
    """A quick run on its own server prints setup, both throughput kinds per variant, failover."""
    environment = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "distributed.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    setup = lines[0]
    assert setup["workload"] == "setup"
    assert (setup["fsync"], setup["synchronous_commit"]) == ("on", "on")
    throughput = {(line["steps"], line["variant"]) for line in lines if "variant" in line}
    assert throughput == {
        (kind, variant)
        for kind in ("instant", "sleep_50ms")
        for variant in ("sqlite", "postgres", "workers_1", "workers_2")
    }
    assert all(line["steps_per_s"] > 0 for line in lines if "variant" in line)
    (failover,) = [line for line in lines if line["workload"] == "failover"]
    assert failover["kills"] == 2
    assert 0 < failover["seconds"]["median"] <= failover["seconds"]["max"]
