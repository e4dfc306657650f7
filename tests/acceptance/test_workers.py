"""Real `orchestr8 worker` processes on a real PostgreSQL: submit, failover, fencing, steering.

Every step appends one line per real run to a log file, so each test counts how often a step ran
whichever worker ran it, and reads the journal straight from the database.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
import trio
from gate_scripts import SIGN_ONLY
from link_proxy import link_proxy
from postgres_server import PostgresServer
from worker_processes import (
    check_events,
    holder_pid,
    orchestr8,
    query,
    runs,
    start_worker,
    status,
    stop,
    submit,
    succeeded_steps,
    wait_until,
    workers,
    workflow,
    write_agent,
)

from orchestr8._execution._runtime import open_runtime
from orchestr8._journal._journal import open_journal

pytestmark = pytest.mark.usefixtures("postgres_server")


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """The test's working directory, holding the counting step agent."""
    write_agent(tmp_path)
    return tmp_path


def test_a_submitted_execution_runs_on_a_worker_and_wait_exits_like_run(
    directory: Path, postgres_url: str
) -> None:
    """`run --submit --wait` queues the execution, a worker runs it, the command exits 0."""
    log = directory / "runs.log"
    flow = workflow(directory, log, [0, 0, 0])
    with workers(directory, postgres_url, 1, "--concurrency", "2"):
        done = orchestr8(
            directory, "run", str(flow), "--submit", "--wait", "--json", "--journal", postgres_url
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    execution_id = result["execution_id"]
    assert [step for _, step, _ in runs(log)] == ["s0", "s1", "s2"]
    assert succeeded_steps(postgres_url, execution_id) == ["s0", "s1", "s2"]
    check_events(postgres_url, execution_id)
    rows = orchestr8(directory, "run", str(flow), "--submit", "--journal", "x.db")
    assert rows.returncode == 1
    assert "PostgreSQL journal" in rows.stderr


def test_a_killed_workers_execution_is_taken_over_without_rerunning_succeeded_steps(
    directory: Path, postgres_url: str
) -> None:
    """SIGKILL mid-step: another worker resumes it long before the lease TTL (its session
    died); steps the journal holds as succeeded never run again, the one running runs twice."""
    log = directory / "runs.log"
    flow = workflow(directory, log, [0, 3, 0])
    with workers(directory, postgres_url, 2, "--lease-ttl", "600") as started:
        execution_id = submit(directory, postgres_url, flow)
        wait_until(lambda: any(step == "s1" for _, step, _ in runs(log)), "s1 to start")
        holder = holder_pid(postgres_url, execution_id)
        victim = next(worker for worker in started if worker.pid == holder)
        victim.signal(signal.SIGKILL)
        victim.wait()
        wait_until(lambda: status(postgres_url, execution_id) == "succeeded", "the takeover")
    steps = [step for _, step, _ in runs(log)]
    assert steps.count("s0") == 1
    assert steps.count("s1") == 2
    assert steps.count("s2") == 1
    assert succeeded_steps(postgres_url, execution_id) == ["s0", "s1", "s2"]
    check_events(postgres_url, execution_id)


def journal_rows(url: str, execution_id: str) -> list[tuple[object, ...]]:
    """Every event of the execution as the database holds it: (seq, type, step)."""
    return query(
        url,
        "SELECT seq, type, step_id FROM events WHERE execution_id = %s ORDER BY seq",
        execution_id,
    )


def test_a_frozen_worker_past_its_lease_never_writes_again(
    directory: Path, postgres_url: str
) -> None:
    """SIGSTOP a worker mid-step past its lease: another takes the execution over; after
    SIGCONT its late step result is refused (fenced), so the step completes once."""
    log = directory / "runs.log"
    flow = workflow(directory, log, [0, 3, 0])
    with workers(directory, postgres_url, 1, "--lease-ttl", "2") as (frozen,):
        execution_id = submit(directory, postgres_url, flow)
        wait_until(lambda: any(step == "s1" for _, step, _ in runs(log)), "s1 to start")
        frozen.signal(signal.SIGSTOP)
        taker = start_worker(directory, postgres_url, "taker", "--lease-ttl", "2")
        try:
            wait_until(lambda: status(postgres_url, execution_id) == "succeeded", "the takeover")
            before = journal_rows(postgres_url, execution_id)
            frozen.signal(signal.SIGCONT)
            wait_until(
                lambda: "refused to write" in frozen.output() or "lost" in frozen.output(),
                "the frozen worker to find its lease gone",
            )
            assert frozen.process.poll() is None  # it goes on, claiming anew
        finally:
            stop(taker)
    assert journal_rows(postgres_url, execution_id) == before
    assert succeeded_steps(postgres_url, execution_id) == ["s0", "s1", "s2"]
    steps = [step for _, step, _ in runs(log)]
    assert (steps.count("s0"), steps.count("s1"), steps.count("s2")) == (1, 2, 1)
    check_events(postgres_url, execution_id)


def test_a_worker_cut_off_from_the_database_is_replaced_and_fenced(
    directory: Path, postgres_url: str, postgres_server: PostgresServer
) -> None:
    """Cut a worker's link to PostgreSQL mid-step: its sessions end, another worker takes the
    execution over at once; when the link is back its stalled writes are refused."""
    log = directory / "runs.log"
    flow = workflow(directory, log, [0, 3, 0])
    database = postgres_url.rsplit("/", 1)[1]
    with link_proxy(postgres_server.port) as proxy:
        proxied = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
        with workers(directory, proxied, 1, "--lease-ttl", "600") as (cut_off,):
            execution_id = submit(directory, postgres_url, flow)
            wait_until(lambda: any(step == "s1" for _, step, _ in runs(log)), "s1 to start")
            proxy.cut()
            taker = start_worker(directory, postgres_url, "taker")
            try:
                wait_until(
                    lambda: status(postgres_url, execution_id) == "succeeded", "the takeover"
                )
                before = journal_rows(postgres_url, execution_id)
                proxy.restore()
                # Its stalled batch is refused (by the fence, or by the seq the other worker
                # wrote): its journal fails, and it opens it again.
                wait_until(
                    lambda: "the journal failed" in cut_off.output(),
                    "the cut-off worker's late write to be refused",
                )
            finally:
                stop(taker)
    assert journal_rows(postgres_url, execution_id) == before
    assert succeeded_steps(postgres_url, execution_id) == ["s0", "s1", "s2"]
    check_events(postgres_url, execution_id)


def test_cancel_approval_and_timeout_work_on_worker_held_executions(
    directory: Path, postgres_url: str
) -> None:
    """Steering reaches whichever worker holds an execution: a cancel and a gate's answer are
    recorded in the journal and applied by that worker; a workflow timeout fails it there."""
    log = directory / "runs.log"
    long_flow = workflow(directory, log, [30], name="long")
    timed_flow = workflow(directory, log, [30], name="timed", timeout=1.0)
    gated = directory / "gated.json"
    gated.write_text(json.dumps(SIGN_ONLY))
    with workers(directory, postgres_url, 2):
        cancelled = submit(directory, postgres_url, long_flow)
        signed = submit(directory, postgres_url, gated)
        timed = submit(directory, postgres_url, timed_flow)
        wait_until(lambda: any(run[0] == cancelled for run in runs(log)), "the long step")
        wait_until(
            lambda: bool(
                query(
                    postgres_url,
                    "SELECT 1 FROM events WHERE execution_id = %s AND type = 'gate.opened'",
                    signed,
                )
            ),
            "the gate to open",
        )

        cancel = orchestr8(
            directory, "cancel", cancelled, "--reason", "enough", "--journal", postgres_url
        )
        assert cancel.returncode == 0, cancel.stderr
        assert "another process runs execution" in cancel.stdout
        approve = orchestr8(
            directory,
            "approve",
            signed[:8],
            "sign",
            "--input",
            "amount=12",
            "--by",
            "ada",
            "--journal",
            postgres_url,
        )
        assert approve.returncode == 0, approve.stderr
        wait_until(lambda: status(postgres_url, cancelled) == "cancelled", "the cancel")
        wait_until(lambda: status(postgres_url, signed) == "succeeded", "the answer")
        wait_until(lambda: status(postgres_url, timed) == "failed", "the timeout")
    error = query(postgres_url, "SELECT error FROM executions WHERE execution_id = %s", timed)
    assert "ExecutionTimeoutError" in str(error[0][0])
    for execution_id in (cancelled, signed, timed):
        check_events(postgres_url, execution_id)
        assert holder_pid(postgres_url, execution_id) is None
    assert query(postgres_url, "SELECT count(*) FROM leases WHERE queued") == [(0,)]


def test_a_graceful_stop_drains_then_hands_over_what_still_runs(
    directory: Path, postgres_url: str
) -> None:
    """SIGTERM: the worker claims nothing more, lets a short run end, hands a long one over
    (nothing recorded for it: still queued), and exits 0; another worker finishes it."""
    log = directory / "runs.log"
    short = workflow(directory, log, [1], name="short")
    long = workflow(directory, log, [0, 8, 0], name="long")
    draining = start_worker(directory, postgres_url, "draining", "--drain", "3")
    try:
        short_id = submit(directory, postgres_url, short)
        long_id = submit(directory, postgres_url, long)
        wait_until(lambda: {run[0] for run in runs(log)} >= {short_id, long_id}, "both to run")
        draining.signal(signal.SIGTERM)
        assert draining.wait() == 0
    finally:
        stop(draining)
    assert status(postgres_url, short_id) == "succeeded"
    assert status(postgres_url, long_id) == "running"
    assert query(
        postgres_url, "SELECT queued, holder FROM leases WHERE execution_id = %s", long_id
    ) == [(True, None)]
    assert "1 handed over to other workers" in draining.output()
    with workers(directory, postgres_url, 1):
        wait_until(lambda: status(postgres_url, long_id) == "succeeded", "the other worker")
    assert succeeded_steps(postgres_url, long_id) == ["s0", "s1", "s2"]
    check_events(postgres_url, long_id)


def test_random_kills_across_three_workers_lose_and_duplicate_nothing(
    directory: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chaos: 30 executions of 3-5 short steps on 3 workers, workers SIGKILLed and replaced at
    random; every execution ends succeeded with gap-free seqs, each step journaled succeeded
    once, and a step ran again only after the worker running it was killed."""
    chooser = random.Random(18)
    log = directory / "runs.log"
    flows = [
        workflow(
            directory,
            log,
            [chooser.uniform(0.01, 0.05) for _ in range(chooser.randint(3, 5))],
            name=f"chaos{index}",
        )
        for index in range(30)
    ]
    monkeypatch.syspath_prepend(str(directory))
    submitted: list[str] = []

    async def submit_all() -> None:
        async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
            for flow in flows:
                submitted.append((await runtime.submit(flow)).execution_id)

    def all_ended() -> bool:
        rows = query(
            postgres_url,
            "SELECT count(*) FROM executions WHERE status IN ('succeeded', 'failed', 'cancelled')",
        )
        return int(rows[0][0]) == len(submitted)

    killed: set[int] = set()
    with workers(directory, postgres_url, 3, "--lease-ttl", "2") as pool:
        trio.run(submit_all)
        for round in range(8):
            if all_ended():
                break
            time.sleep(chooser.uniform(0.1, 0.4))
            victim = pool.pop(chooser.randrange(len(pool)))
            victim.signal(signal.SIGKILL)
            victim.wait()
            killed.add(victim.pid)
            pool.append(start_worker(directory, postgres_url, f"chaos{round}", "--lease-ttl", "2"))
        wait_until(all_ended, "every execution to end", limit=120)
    assert killed
    for execution_id in submitted:
        assert status(postgres_url, execution_id) == "succeeded"
        check_events(postgres_url, execution_id)
        journaled = succeeded_steps(postgres_url, execution_id)
        assert len(journaled) == len(set(journaled))
        ran = [(step, pid) for run, step, pid in runs(log) if run == execution_id]
        for step in journaled:
            pids = [pid for name, pid in ran if name == step]
            # Each run but the last was cut short by a kill of the worker running it.
            assert all(pid in killed for pid in pids[:-1]), (execution_id, step, pids)


def test_a_killed_worker_running_a_child_execution_is_resumed_with_it(
    directory: Path, postgres_url: str
) -> None:
    """SIGKILL while a sub-workflow's child runs: the next worker resumes the parent, which
    resumes its child; the child's succeeded step is reused, the one running runs again."""
    log = directory / "runs.log"

    def counted(step_id: str, seconds: float) -> dict[str, object]:
        return {
            "id": step_id,
            "agent": {"id": "python", "config": {"callable": "worker_steps:work"}},
            "input": {"log": str(log), "seconds": seconds},
        }

    child = {
        "schema_version": "1.1",
        "name": "child",
        "steps": [counted("c0", 0), {**counted("c1", 3), "depends_on": ["c0"]}],
        "output": "${steps.c1.output}",
    }
    flow = directory / "parent.json"
    flow.write_text(
        json.dumps(
            {
                "schema_version": "1.1",
                "name": "parent",
                "steps": [
                    counted("p0", 0),
                    {"id": "sub", "workflow": child, "depends_on": ["p0"]},
                ],
                "output": "${steps.sub.output}",
            }
        )
    )
    with workers(directory, postgres_url, 2, "--lease-ttl", "600") as started:
        execution_id = submit(directory, postgres_url, flow)
        wait_until(lambda: any(step == "c1" for _, step, _ in runs(log)), "the child's c1")
        holder = holder_pid(postgres_url, execution_id)
        victim = next(worker for worker in started if worker.pid == holder)
        victim.signal(signal.SIGKILL)
        victim.wait()
        wait_until(lambda: status(postgres_url, execution_id) == "succeeded", "the takeover")
    steps = [step for _, step, _ in runs(log)]
    assert (steps.count("p0"), steps.count("c0"), steps.count("c1")) == (1, 1, 2)
    check_events(postgres_url, execution_id)
