"""Benchmark of scale-out on PostgreSQL: workers' throughput and failover, beside one process.

Starts its own throwaway PostgreSQL on 127.0.0.1 (the tests' `tests/postgres_server.py`, but with
fsync on and `synchronous_commit` at its default, as a real deployment runs), or uses the database
given with `--database URL`. Prints one JSON object per line, every figure the median over
`--rounds` rounds (min and max beside it):

- `setup`: the machine's cores and the server's version and durability settings (`fsync`,
  `synchronous_commit`, `full_page_writes`), so a figure is never quoted without them.
- `throughput`: M executions of K chained steps each, for two step kinds: `instant` (the built-in
  `echo`, so the figure is the orchestration's own cost) and `sleep_50ms` (the built-in `sleep`
  for 0.05 s, so steps wait rather than compute). Variants, in the same run, rounds interleaved:
  - `workers`: 1, 2 and 4 real `orchestr8 worker` processes (`--concurrency`, the same for all)
    on one PostgreSQL. The workers are started and idle first; the clock starts, then this process
    queues the M executions with `Runtime.submit` while the workers run them, and the clock stops
    when the journal holds every one of them `succeeded` (polled every 20 ms).
  - `sqlite`: the baseline: one process, `open_runtime(journal=FILE)`, all M started at once,
    the clock from the first start to the last result.
  - `postgres`: the same in one process on the PostgreSQL journal (`open_runtime(journal=URL)`),
    no workers: what the database costs without the queue.
  Figures: `executions_per_s`, `steps_per_s` (M*K over the time) and `seconds`.
- `failover`: 2 workers, one execution whose step sleeps an hour. `--kills` times: SIGKILL the
  worker holding its lease (from `leases.holder`), at a random moment (seeded) of the other
  worker's once-a-second look for free leases (`POLL_INTERVAL`: a death sends no NOTIFY), then
  poll the journal in a tight loop (every 5 ms) for the next `execution.resumed` event; the
  failover time is the local monotonic clock from the kill to that event being committed and
  visible. A new worker is started after each kill (and waited for), so two always run.
  Figures: median and max in seconds.

With `--dbos PYTHON` (a Python with DBOS installed), `benchmarks/distributed_dbos.py` runs the
`instant` workload on DBOS in one process on the same server, its line beside these.

On its own server every PostgreSQL round gets a fresh database (copied from a template), so no
round reads another's rows; with `--database` every round shares that database.

    python benchmarks/distributed.py            # full size, about 3 minutes on 2 cores
    python benchmarks/distributed.py --quick    # small sizes, a smoke run of about 20 s
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio

from orchestr8 import open_runtime
from orchestr8._execution._worker import POLL_INTERVAL
from orchestr8._journal._postgres_schema import import_psycopg, prepare_database

ROOT = Path(__file__).resolve().parent.parent
WAIT_LIMIT = 600.0
"""Seconds a workload may take before the benchmark gives up on it (something is broken)."""


def chain(name: str, steps: int, sleep: float | None) -> dict[str, Any]:
    """A workflow of `steps` chained steps: `echo`, or `sleep` for `sleep` seconds."""
    agent: Any = "echo" if sleep is None else {"id": "sleep", "config": {"seconds": sleep}}
    body: list[dict[str, Any]] = []
    for index in range(steps):
        step: dict[str, Any] = {"id": f"s{index}", "agent": agent, "input": {"n": index}}
        if index:
            step["depends_on"] = [f"s{index - 1}"]
        body.append(step)
    return {"schema_version": "1.0", "name": name, "steps": body}


def query(url: str, sql: str, *arguments: Any) -> list[tuple[Any, ...]]:
    """Rows of one query on the journal's database (its `orchestr8` schema)."""
    psycopg = import_psycopg()
    with psycopg.connect(url, autocommit=True, options="-c search_path=orchestr8") as connection:
        return connection.execute(sql, arguments or None).fetchall()


def wait_until(condition: Callable[[], bool], what: str, every: float = 0.02) -> None:
    """Poll until `condition` holds; fail naming `what` after `WAIT_LIMIT` seconds."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)


class Workers:
    """Real `orchestr8 worker` subprocesses on one journal; stops what is left at the end."""

    def __init__(self, url: str, directory: Path, concurrency: int) -> None:
        self.url, self.directory, self.concurrency = url, directory, concurrency
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> subprocess.Popen[bytes]:
        """Start one worker and wait until it is registered in the journal's `workers`."""
        self.started += 1
        log = self.directory / f"worker-{self.started}.stderr"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "orchestr8", "worker", "--journal", self.url,
                 "--name", f"bench{self.started}", "--concurrency", str(self.concurrency),
                 "--drain", "0"],
                cwd=self.directory, stdout=subprocess.DEVNULL, stderr=sink,
            )  # fmt: skip
        self.processes.append(process)

        def registered() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited: {log.read_text(errors='replace')}")
            rows = query(self.url, "SELECT 1 FROM workers WHERE pid = %s", process.pid)
            return bool(rows)

        wait_until(registered, "a worker to register")
        return process

    def kill(self, pid: int) -> None:
        """SIGKILL the worker `pid` and reap it."""
        for process in self.processes:
            if process.pid == pid:
                process.send_signal(signal.SIGKILL)
                process.wait()
                self.processes.remove(process)
                return
        raise RuntimeError(f"process {pid} is none of the benchmark's workers")

    def stop(self) -> None:
        """SIGTERM every worker still running (they hand over and exit), else SIGKILL."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


@contextlib.contextmanager
def running_workers(url: str, directory: Path, count: int, concurrency: int) -> Iterator[Workers]:
    """`count` idle workers on the journal at `url`, stopped at the end."""
    pool = Workers(url, directory, concurrency)
    try:
        for _ in range(count):
            pool.start()
        yield pool
    finally:
        pool.stop()


def succeeded(url: str, ids: list[str]) -> int:
    """How many of the executions `ids` the journal holds `succeeded`; fails on a failed one."""
    rows = query(
        url,
        "SELECT status, count(*) FROM executions WHERE execution_id = ANY(%s) GROUP BY status",
        ids,
    )
    counts = {str(status): int(count) for status, count in rows}
    if counts.get("failed") or counts.get("cancelled"):
        raise RuntimeError(f"executions ended badly: {counts}")
    return counts.get("succeeded", 0)


def run_workers(url: str, directory: Path, workflow: dict[str, Any], count: int, workers: int,
                concurrency: int) -> float:  # fmt: skip
    """Seconds for `workers` worker processes to run `count` executions this process queues."""
    with running_workers(url, directory, workers, concurrency):

        async def submit_all() -> list[str]:
            async with open_runtime(journal=url) as runtime:
                return [(await runtime.submit(workflow)).execution_id for _ in range(count)]

        started = time.perf_counter()
        ids = trio.run(submit_all)
        wait_until(lambda: succeeded(url, ids) == count, "the workers to run every execution")
        return time.perf_counter() - started


def run_one_process(journal: str, workflow: dict[str, Any], count: int) -> float:
    """Seconds for one process on `journal` to run `count` executions started at once."""

    async def main() -> float:
        async with open_runtime(journal=journal) as runtime:
            started = time.perf_counter()
            handles = [await runtime.start(workflow) for _ in range(count)]
            for handle in handles:
                result = await handle.wait()
                if not result.succeeded:
                    raise RuntimeError(f"execution ended {result.status}: {result.error}")
            return time.perf_counter() - started

    return trio.run(main)


def summary(samples: list[float]) -> dict[str, float]:
    """Median, min and max of the samples, rounded for reading."""
    return {
        "median": round(statistics.median(samples), 4),
        "min": round(min(samples), 4),
        "max": round(max(samples), 4),
    }


def throughput(
    fresh_database: Callable[[], str],
    directory: Path,
    arguments: argparse.Namespace,
    kind: str,
    sleep: float | None,
    count: int,
    steps: int,
) -> None:
    """Print one line per variant of the workload: executions and steps per second."""
    workflow = chain(f"bench-{kind}", steps, sleep)
    variants = ["sqlite", "postgres", *(f"workers_{n}" for n in arguments.workers)]
    seconds: dict[str, list[float]] = {variant: [] for variant in variants}
    for round_number in range(arguments.rounds):
        for variant in variants:
            if variant == "sqlite":
                path = directory / f"{kind}-{round_number}.db"
                seconds[variant].append(run_one_process(str(path), workflow, count))
            elif variant == "postgres":
                seconds[variant].append(run_one_process(fresh_database(), workflow, count))
            else:
                workers = int(variant.removeprefix("workers_"))
                taken = run_workers(fresh_database(), directory, workflow, count, workers,
                                    arguments.concurrency)  # fmt: skip
                seconds[variant].append(taken)
    for variant in variants:
        median = statistics.median(seconds[variant])
        line = {
            "workload": "throughput",
            "steps": kind,
            "variant": variant,
            "workers": int(variant.removeprefix("workers_")) if "_" in variant else 0,
            "concurrency": arguments.concurrency if "_" in variant else None,
            "executions": count,
            "steps_per_execution": steps,
            "rounds": arguments.rounds,
            "seconds": summary(seconds[variant]),
            "executions_per_s": round(count / median, 1),
            "steps_per_s": round(count * steps / median, 1),
        }
        print(json.dumps(line), flush=True)


def holder_pid(url: str, execution_id: str) -> int | None:
    """The process id of the worker holding the execution's live lease, or None."""
    rows = query(
        url,
        "SELECT holder FROM leases WHERE execution_id = %s AND expires_at > now()",
        execution_id,
    )
    if not rows or rows[0][0] is None:
        return None
    return int(str(rows[0][0]).split("/")[2])


def resumes(url: str, execution_id: str) -> int:
    """How many `execution.resumed` events the execution has."""
    rows = query(
        url,
        "SELECT count(*) FROM events WHERE execution_id = %s AND type = 'execution.resumed'",
        execution_id,
    )
    return int(rows[0][0])


def more_resumes(url: str, execution_id: str, before: int) -> bool:
    """Whether the execution has more than `before` `execution.resumed` events."""
    return resumes(url, execution_id) > before


def step_running(url: str, execution_id: str) -> bool:
    """Whether the execution's last event is its step's start (the step is running)."""
    rows = query(
        url,
        "SELECT type FROM events WHERE execution_id = %s ORDER BY seq DESC LIMIT 1",
        execution_id,
    )
    return bool(rows) and rows[0][0] in ("step.started", "attempt.started")


def failover(url: str, directory: Path, arguments: argparse.Namespace) -> None:
    """Print the failover line: seconds from SIGKILL to the takeover's `execution.resumed`."""
    workflow = chain("bench-failover", 1, 3600.0)
    samples: list[float] = []
    with running_workers(url, directory, 2, arguments.concurrency) as pool:

        async def submit() -> str:
            async with open_runtime(journal=url) as runtime:
                return (await runtime.submit(workflow)).execution_id

        execution_id = trio.run(submit)
        chance = random.Random(18)
        for kill in range(arguments.kills):
            wait_until(lambda: step_running(url, execution_id), "the long step to run")
            pid = holder_pid(url, execution_id)
            if pid is None:
                raise RuntimeError("the running execution has no live lease")
            # At a random moment of the survivor's once-a-second look for free leases (else every
            # kill would come just after the freshly started worker's first look, at one phase).
            time.sleep(chance.uniform(0.0, POLL_INTERVAL))
            before = resumes(url, execution_id)
            killed = time.monotonic()
            pool.kill(pid)
            taken_over = functools.partial(more_resumes, url, execution_id, before)
            wait_until(taken_over, "the takeover", every=0.005)
            samples.append(time.monotonic() - killed)
            if kill + 1 < arguments.kills:
                pool.start()
        subprocess.run(
            [sys.executable, "-m", "orchestr8", "cancel", execution_id, "--journal", url],
            cwd=directory, capture_output=True, check=False, timeout=60,
        )  # fmt: skip
    line = {
        "workload": "failover",
        "workers": 2,
        "kills": len(samples),
        "seconds": {
            "median": round(statistics.median(samples), 4),
            "max": round(max(samples), 4),
            "min": round(min(samples), 4),
        },
    }
    print(json.dumps(line), flush=True)


def setup(url: str) -> None:
    """Print the setup line: the server's version and durability settings, the machine's cores."""
    settings = {
        name: str(query(url, f"SHOW {name}")[0][0])
        for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes")
    }
    line = {"workload": "setup", "cpus": os.cpu_count(), "python": sys.version.split()[0],
            **settings}  # fmt: skip
    print(json.dumps(line), flush=True)


def benchmark(fresh_database: Callable[[], str], arguments: argparse.Namespace) -> None:
    """Run every workload, printing one JSON line each."""
    setup(fresh_database())
    with tempfile.TemporaryDirectory(prefix="orchestr8-distributed-") as temporary:
        directory = Path(temporary)
        instant = (20, 3) if arguments.quick else (200, 10)
        slow = (10, 2) if arguments.quick else (100, 5)
        throughput(fresh_database, directory, arguments, "instant", None, *instant)
        if arguments.dbos:
            count, steps = instant
            subprocess.run(
                [arguments.dbos, str(ROOT / "benchmarks" / "distributed_dbos.py"),
                 "--database", fresh_database(), "--executions", str(count),
                 "--steps", str(steps), "--rounds", str(arguments.rounds)],
                check=True, timeout=WAIT_LIMIT,
            )  # fmt: skip
        throughput(fresh_database, directory, arguments, "sleep_50ms", 0.05, *slow)
        failover(fresh_database(), directory, arguments)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--database", help="use this PostgreSQL database instead of a server")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs for the failover time")
    parser.add_argument("--concurrency", type=int, default=16, help="each worker's --concurrency")
    parser.add_argument(
        "--dbos", metavar="PYTHON", help="also run DBOS on the instant workload with this Python"
    )
    parser.add_argument(
        "--workers", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2, 4],
        help="worker counts, comma-separated (default 1,2,4)",
    )  # fmt: skip
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.rounds = 1
        arguments.kills = min(arguments.kills, 2)
        arguments.workers = [1, 2]
    if arguments.database:
        url = arguments.database
        prepare_database(url)
        benchmark(lambda: url, arguments)
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import running_server

    with running_server(durable=True) as server:
        benchmark(server.create_database, arguments)


if __name__ == "__main__":
    os.environ.pop("ORCHESTR8_JOURNAL", None)
    main()
