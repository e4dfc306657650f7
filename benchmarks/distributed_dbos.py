"""DBOS on the distributed benchmark's instant workload, on the same PostgreSQL, for comparison.

Runs with a Python that has DBOS installed (DBOS is no dependency of orchestr8), e.g. the peers'
virtual environment (`../shared/perf/README.md`): `benchmarks/distributed.py --dbos PYTHON` runs it
against a fresh database of its own server and prints its line beside orchestr8's. One process,
M async workflows started at once (`asyncio.gather`), each calling K no-op async steps one after
another, every workflow and step checkpointed to PostgreSQL: the same shape as the `instant`
workload of orchestr8's one-process `postgres` variant. Prints one JSON line with the median over
`--rounds` rounds.

    /tmp/perf-venv/bin/python benchmarks/distributed_dbos.py --database URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from importlib.metadata import version

from dbos import DBOS


@DBOS.step()
async def step(value: int) -> int:
    """The no-op step: one more than its input."""
    return value + 1


@DBOS.workflow()
async def chain(steps: int) -> int:
    """K steps one after another, each given the one before's value."""
    value = 0
    for _ in range(steps):
        value = await step(value)
    return value


async def one_round(count: int, steps: int) -> float:
    """Seconds for `count` workflows of `steps` steps, all started at once."""
    started = time.perf_counter()
    results = await asyncio.gather(*(chain(steps) for _ in range(count)))
    taken = time.perf_counter() - started
    if results != [steps] * count:
        raise RuntimeError(f"unexpected results: {set(results)}")
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", required=True, help="the PostgreSQL database DBOS uses")
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    DBOS(
        config={"name": "bench", "system_database_url": arguments.database, "log_level": "WARNING"}
    )
    DBOS.launch()
    try:
        seconds = [
            asyncio.run(one_round(arguments.executions, arguments.steps))
            for _ in range(arguments.rounds)
        ]
    finally:
        DBOS.destroy()
    median = statistics.median(seconds)
    line = {
        "workload": "throughput",
        "steps": "instant",
        "variant": f"dbos_{version('dbos')}",
        "workers": 0,
        "concurrency": None,
        "executions": arguments.executions,
        "steps_per_execution": arguments.steps,
        "rounds": arguments.rounds,
        "seconds": {
            "median": round(median, 4),
            "min": round(min(seconds), 4),
            "max": round(max(seconds), 4),
        },
        "executions_per_s": round(arguments.executions / median, 1),
        "steps_per_s": round(arguments.executions * arguments.steps / median, 1),
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
