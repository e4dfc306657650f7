"""The worker loop in process, on a real PostgreSQL: submit, claim, run, fail what cannot run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from link_proxy import link_proxy
from postgres_server import PostgresServer

from orchestr8._errors import (
    IdempotencyKeyReusedError,
    InputValidationError,
    JournalError,
)
from orchestr8._execution._claims import LeaseClaims
from orchestr8._execution._runtime import Runtime, open_runtime
from orchestr8._execution._secrets import Secrets
from orchestr8._execution._worker import WorkerReport, WorkerSettings, run_worker
from orchestr8._journal._journal import Journal, open_journal

ECHO: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "echoes",
    "inputs": {"type": "object", "properties": {"text": {"type": "string"}}},
    "steps": [
        {"id": "a", "agent": "echo", "input": {"text": "${inputs.text}"}},
        {"id": "b", "agent": "echo", "input": "${steps.a.output}", "depends_on": ["a"]},
    ],
    "output": "${steps.b.output}",
}
SECRET: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "needs-a-secret",
    "steps": [{"id": "a", "agent": "echo", "input": {"text": "${secrets.WORKER_TOKEN}"}}],
}


def queued(url: str) -> int:
    """How many executions are still queued for the workers."""
    with psycopg.connect(url, autocommit=True, options="-c search_path=orchestr8") as connection:
        row = connection.execute("SELECT count(*) FROM leases WHERE queued").fetchone()
    assert row is not None
    return int(row[0])


def test_worker_settings_refuse_what_no_worker_runs_with() -> None:
    """A concurrency below 1, or a lease TTL or drain that is not a positive finite number."""
    with pytest.raises(ValueError, match="--concurrency"):
        WorkerSettings(concurrency=0)
    with pytest.raises(ValueError, match="--lease-ttl"):
        WorkerSettings(lease_ttl=0)
    with pytest.raises(ValueError, match="--drain"):
        WorkerSettings(drain=float("inf"))


async def test_only_a_postgresql_journal_takes_submissions(tmp_path: Path) -> None:
    """`Runtime.submit` on SQLite is refused: no worker runs what is queued there."""
    async with open_runtime(journal=tmp_path / "journal.db") as runtime:
        with pytest.raises(JournalError, match="needs a PostgreSQL journal"):
            await runtime.submit(ECHO, {"text": "x"})


async def test_a_submitted_execution_is_recorded_pending_and_queued_once(postgres_url: str) -> None:
    """The record only (no events yet), queued; the same idempotency key gives it back."""
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        record = await runtime.submit(ECHO, {"text": "x"}, idempotency_key="k1")
        assert str(record.status) == "pending"
        assert await journal.last_seq(record.execution_id) == 0
        again = await runtime.submit(ECHO, {"text": "x"}, idempotency_key="k1")
        assert again.execution_id == record.execution_id
        with pytest.raises(IdempotencyKeyReusedError):
            await runtime.submit(ECHO, {"text": "other"}, idempotency_key="k1")
        with pytest.raises(TypeError, match="an Admission comes with its inputs"):
            await runtime.submit(runtime_admission(runtime), {"text": "x"})
        loaded = await runtime.submit(runtime_admission(runtime))
        assert loaded.inputs == {"text": "from an admission"}
    assert queued(postgres_url) == 2


def executions(url: str) -> int:
    """How many executions the journal database records."""
    with psycopg.connect(url, autocommit=True, options="-c search_path=orchestr8") as connection:
        row = connection.execute("SELECT count(*) FROM executions").fetchone()
    assert row is not None
    return int(row[0])


async def test_a_submit_whose_queue_entry_fails_records_nothing(postgres_url: str) -> None:
    """Record and queue entry commit in one transaction: no pending orphan no worker runs."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            "CREATE FUNCTION orchestr8.refuse_queue() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'the queue is refused'; END $$"
        )
        connection.execute(
            "CREATE TRIGGER refuse_queue BEFORE INSERT ON orchestr8.leases"
            " FOR EACH ROW EXECUTE FUNCTION orchestr8.refuse_queue()"
        )
    with pytest.raises(JournalError, match="the queue is refused"):
        async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
            await runtime.submit(ECHO, {"text": "x"})
    assert executions(postgres_url) == 0


async def test_a_pending_execution_never_queued_is_queued_by_its_retried_submit(
    postgres_url: str,
) -> None:
    """An old orphan (recorded, no queue entry) is queued when its idempotency key comes again."""
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        first = await runtime.submit(ECHO, {"text": "x"}, idempotency_key="k1")
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute("DELETE FROM orchestr8.leases")
        assert queued(postgres_url) == 0
        again = await runtime.submit(ECHO, {"text": "x"}, idempotency_key="k1")
        assert again.execution_id == first.execution_id
    assert queued(postgres_url) == 1


def runtime_admission(runtime: Runtime) -> Any:
    """An `Admission` of the echo workflow, as the CLI makes one before the journal opens."""
    from orchestr8._execution._admission import admit, admit_workflow

    return admit(admit_workflow(ECHO, runtime.registry), {"text": "from an admission"})


async def test_an_input_the_journal_redacts_is_refused_at_submit(postgres_url: str) -> None:
    """A worker sees the journal's inputs: a secret-looking one is refused, naming it."""
    flow = {**ECHO, "inputs": {"type": "object"}}
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        with pytest.raises(InputValidationError, match=r"\$\.api_key: the journal keeps"):
            await runtime.submit(flow, {"text": "x", "api_key": "s3cret-value"})


def worker_runtime(
    secrets: Secrets,
) -> Any:
    """How the worker opens its runtime in these tests: with `secrets`, on its claims."""

    @asynccontextmanager
    async def opener(journal: Journal, claims: LeaseClaims) -> AsyncIterator[Runtime]:
        async with open_runtime(journal=journal, claims=claims, secrets=secrets) as runtime:
            yield runtime

    return opener


async def run_until(url: str, done: Any, secrets: Secrets | None = None) -> WorkerReport:
    """Run a worker in process until `done()` holds, then stop it gracefully."""
    stop = trio.Event()
    holders: list[str] = []
    report: WorkerReport | None = None

    def journal() -> AbstractAsyncContextManager[Journal]:
        return open_journal(url)

    async def work() -> None:
        nonlocal report
        report = await run_worker(
            journal,
            worker_runtime(secrets or Secrets(environ={})),
            WorkerSettings(name="inside", concurrency=2, poll_interval=0.05),
            stop,
            ready=holders.append,
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(work)
        with trio.fail_after(60):
            for _ in range(100_000):
                if await done():
                    break
                await trio.sleep(0.05)
        stop.set()
    assert holders
    assert holders[0].startswith("inside/")
    assert report is not None
    return report


async def test_a_worker_runs_what_is_queued_and_fails_what_cannot_run(postgres_url: str) -> None:
    """Queued executions run to their end; one needing a secret the worker lacks fails with
    the reason, and none stays queued."""
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        first = await runtime.submit(ECHO, {"text": "one"})
        second = await runtime.submit(ECHO, {"text": "two"})
        unrunnable = await runtime.submit(SECRET)

        async def all_ended() -> bool:
            records = [
                await journal.get_execution(record.execution_id)
                for record in (first, second, unrunnable)
            ]
            return all(record.status.is_terminal for record in records)

        report = await run_until(postgres_url, all_ended)
        assert (report.started, report.ended, report.handed_over) == (2, 2, 0)
        assert (await runtime.result(first.execution_id)).output == {"text": "one"}
        failed = await journal.get_execution(unrunnable.execution_id)
        assert str(failed.status) == "failed"
        assert failed.error is not None
        assert failed.error["type"] == "MissingSecretError"
    assert queued(postgres_url) == 0


async def test_a_worker_needs_a_postgresql_journal(tmp_path: Path) -> None:
    """`run_worker` on SQLite is refused at once, naming what it needs."""

    def journal() -> AbstractAsyncContextManager[Journal]:
        return open_journal(tmp_path / "journal.db")

    with pytest.raises(JournalError, match="needs a PostgreSQL journal"):
        await run_worker(journal, worker_runtime(Secrets()), WorkerSettings(), trio.Event())


async def test_a_worker_that_loses_a_lease_hands_over_and_claims_anew(postgres_url: str) -> None:
    """A lease gone while its step runs: the worker writes nothing more for it, opens its
    journal again, and claims the execution anew (resumed, its first step reused)."""
    flow = {
        "schema_version": "1.0",
        "name": "naps",
        "steps": [
            {"id": "first", "agent": "echo", "input": {"text": "once"}},
            {"id": "nap", "agent": "sleep", "input": {"seconds": 1.5}, "depends_on": ["first"]},
        ],
    }
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        record = await runtime.submit(flow)
        expired = False

        async def ended_after_expiry() -> bool:
            nonlocal expired
            if not expired:
                events = await journal.events(record.execution_id)
                if any(event.type == "step.started" and event.step_id == "nap" for event in events):
                    with psycopg.connect(
                        postgres_url, autocommit=True, options="-c search_path=orchestr8"
                    ) as connection:
                        # Another holder (with no live session: dead at once) took it.
                        connection.execute(
                            "UPDATE leases SET epoch = epoch + 1, holder = 'thief/h/1/x'"
                        )
                    expired = True
                return False
            return (await journal.get_execution(record.execution_id)).status.is_terminal

        report = await run_until(postgres_url, ended_after_expiry)
        assert report.reopened == 1
        assert report.handed_over == 1
        events = await journal.events(record.execution_id)
        started = [event.step_id for event in events if event.type == "step.started"]
        assert started == ["first", "nap", "nap"]
        assert str((await journal.get_execution(record.execution_id)).status) == "succeeded"


async def test_run_claimed_lets_go_of_what_ended_or_runs_elsewhere(postgres_url: str) -> None:
    """`run_claimed` returns None for an execution that ended, or that another runtime holds."""
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        handle = await runtime.start(ECHO, {"text": "done"})
        await handle.wait()
        assert await runtime.run_claimed(handle.execution_id) is None
        record = await runtime.submit(ECHO, {"text": "elsewhere"})
        async with (
            open_journal(postgres_url) as other_journal,
            open_runtime(journal=other_journal) as other,
        ):
            assert await other.claims.acquire(record.execution_id)
            assert await runtime.run_claimed(record.execution_id) is None
            await other.claims.release(record.execution_id)


async def test_a_cancel_asked_of_the_previous_holder_ends_the_execution_on_takeover(
    postgres_url: str,
) -> None:
    """A cancel still pending when a worker claims the execution cancels it: it never runs on."""
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        record = await runtime.submit(ECHO, {"text": "stop me"})
        # Recorded while another holder had it (as `orchestr8 cancel` does for a held one).
        request = await journal.submit_request(
            record.execution_id, "cancel", {"reason": "operator said stop", "by": "cli"}
        )
        assert await runtime.run_claimed(record.execution_id) is None
        ended = await journal.get_execution(record.execution_id)
        assert str(ended.status) == "cancelled"
        events = await journal.events(record.execution_id)
        assert [event.type for event in events] == ["execution.cancelled"]
        assert events[-1].data["reason"] == "operator said stop"
        [settled] = await journal.requests(record.execution_id)
        assert (settled.request_id, str(settled.outcome)) == (request.request_id, "applied")
        assert queued(postgres_url) == 0


async def test_journal_failures_come_out_of_nursery_groups() -> None:
    """A journal failure wrapped with cancellations by nurseries is raised as itself; any
    other group is left as it is."""
    from orchestr8._execution._worker import _journal_failures

    failure = JournalError("gone")
    with pytest.raises(JournalError, match="gone"):
        async with _journal_failures():
            raise BaseExceptionGroup("nursery", [failure, trio.Cancelled._create()])
    with pytest.raises(BaseExceptionGroup):
        async with _journal_failures():
            raise BaseExceptionGroup("nursery", [failure, ValueError("bug")])


async def test_a_submission_wakes_listening_workers(postgres_url: str) -> None:
    """The worker's LISTEN connection hears `NOTIFY orchestr8_work` from a submit."""
    from orchestr8._execution._worker import _listen

    woken = trio.Event()
    async with (
        open_journal(postgres_url) as journal,
        open_runtime(journal=journal) as runtime,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(_listen, postgres_url, woken.set)
        with trio.fail_after(30):
            # Submitted again until heard: the LISTEN may start after the first NOTIFY.
            for _ in range(600):
                await runtime.submit(ECHO, {"text": "wake"})
                with trio.move_on_after(0.05):
                    await woken.wait()
                if woken.is_set():
                    break
        nursery.cancel_scope.cancel()
    assert woken.is_set()


async def test_a_worker_runs_sub_workflows_under_leases_of_their_own(postgres_url: str) -> None:
    """A child execution of a queued one is leased too (fenced like its parent), and let go
    when it ends: nothing stays held or queued."""
    flow = {
        "schema_version": "1.1",
        "name": "parent",
        "steps": [
            {"id": "before", "agent": "echo", "input": {"text": "hello"}},
            {
                "id": "sub",
                "depends_on": ["before"],
                "input": {"text": "${steps.before.output.text}"},
                "workflow": {
                    "schema_version": "1.1",
                    "name": "child",
                    "inputs": {"type": "object", "properties": {"text": {"type": "string"}}},
                    "steps": [{"id": "inner", "agent": "echo", "input": "${inputs}"}],
                    "output": "${steps.inner.output}",
                },
            },
        ],
        "output": "${steps.sub.output}",
    }
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        record = await runtime.submit(flow)

        async def ended() -> bool:
            return (await journal.get_execution(record.execution_id)).status.is_terminal

        await run_until(postgres_url, ended)
        assert (await runtime.result(record.execution_id)).output == {"text": "hello"}
    with psycopg.connect(postgres_url, options="-c search_path=orchestr8") as connection:
        rows = connection.execute(
            "SELECT l.epoch, l.holder, l.queued FROM leases l JOIN executions e"
            " USING (execution_id) WHERE e.parent_id = %s",
            (record.execution_id,),
        ).fetchall()
    assert rows == [(1, None, False)]
    assert queued(postgres_url) == 0


async def test_a_worker_that_claims_once_the_database_is_back_keeps_writing(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """The database out of reach for longer than the lease TTL (the worker's renewals fail):
    what the worker claims once it is back runs to its end under the fresh claim, with no
    handover and each step started once."""
    database = postgres_url.rsplit("/", 1)[1]
    registered = trio.Event()
    stop = trio.Event()
    report: WorkerReport | None = None
    with link_proxy(postgres_server.port) as proxy:
        proxied = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"

        def journal_behind_the_link() -> AbstractAsyncContextManager[Journal]:
            return open_journal(proxied)

        async def work() -> None:
            nonlocal report
            report = await run_worker(
                journal_behind_the_link,
                worker_runtime(Secrets(environ={})),
                WorkerSettings(name="w1b", concurrency=2, poll_interval=0.05, lease_ttl=2.0),
                stop,
                ready=lambda _holder: registered.set(),
            )

        async with (
            open_journal(postgres_url) as journal,
            open_runtime(journal=journal) as runtime,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(work)
            with trio.fail_after(30):
                await registered.wait()
            proxy.cut()
            # Longer than the TTL: every renewal meanwhile fails, the last one grows stale.
            await trio.sleep(2.5)
            proxy.restore()
            # Claimed on the wake-up or the next poll, before the next renewal (every 0.4 s).
            record = await runtime.submit(ECHO, {"text": "after the outage"})
            with trio.fail_after(30):
                for _ in range(100_000):
                    if (await journal.get_execution(record.execution_id)).status.is_terminal:
                        break
                    await trio.sleep(0.05)
            stop.set()
            assert str((await journal.get_execution(record.execution_id)).status) == "succeeded"
            events = await journal.events(record.execution_id)
            started = [event.step_id for event in events if event.type == "step.started"]
            assert started == ["a", "b"]
    assert report is not None
    assert (report.handed_over, report.reopened) == (0, 0)


async def test_after_an_outage_longer_than_the_ttl_a_run_is_handed_over_once(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """Two workers, the database out of reach for longer than the TTL while one runs a step:
    that worker hands the run over once; whichever claims it when the database is back
    finishes it (no second handover), the step in flight started at most twice."""
    flow = {
        "schema_version": "1.0",
        "name": "slow",
        "steps": [
            {"id": "first", "agent": "echo", "input": {"text": "once"}},
            {"id": "nap", "agent": "sleep", "input": {"seconds": 2}, "depends_on": ["first"]},
        ],
    }
    database = postgres_url.rsplit("/", 1)[1]
    stop = trio.Event()
    reports: dict[str, WorkerReport] = {}
    registered = {"w2": trio.Event(), "w1b": trio.Event()}
    with link_proxy(postgres_server.port) as first, link_proxy(postgres_server.port) as second:

        async def work(name: str, port: int) -> None:
            def journal() -> AbstractAsyncContextManager[Journal]:
                return open_journal(f"postgresql://postgres@127.0.0.1:{port}/{database}")

            reports[name] = await run_worker(
                journal,
                worker_runtime(Secrets(environ={})),
                WorkerSettings(name=name, concurrency=2, poll_interval=0.05, lease_ttl=2.0),
                stop,
                ready=lambda _holder: registered[name].set(),
            )

        async with (
            open_journal(postgres_url) as journal,
            open_runtime(journal=journal) as runtime,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(work, "w2", first.port)
            record = await runtime.submit(flow)
            with trio.fail_after(30):
                for _ in range(100_000):
                    events = await journal.events(record.execution_id)
                    if any(event.step_id == "nap" for event in events):
                        break
                    await trio.sleep(0.05)
                nursery.start_soon(work, "w1b", second.port)
                await registered["w1b"].wait()
            first.cut()
            second.cut()
            # Longer than the TTL, and the nap ends meanwhile: w2 cannot record it.
            await trio.sleep(2.5)
            first.restore()
            second.restore()
            with trio.fail_after(30):
                for _ in range(100_000):
                    if (await journal.get_execution(record.execution_id)).status.is_terminal:
                        break
                    await trio.sleep(0.05)
            stop.set()
            assert str((await journal.get_execution(record.execution_id)).status) == "succeeded"
            events = await journal.events(record.execution_id)
    started = [event.step_id for event in events if event.type == "step.started"]
    assert started[0] == "first"
    assert started.count("first") == 1
    assert 1 <= started.count("nap") <= 2
    assert sum(report.handed_over for report in reports.values()) == 1
