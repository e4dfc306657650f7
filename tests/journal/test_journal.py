"""Specifications of the journal, run against the SQLite, the memory and the PostgreSQL journals."""

from __future__ import annotations

import hashlib
import itertools
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, closing
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st
from postgres_server import PostgresServer

from orchestr8._errors import ExecutionNotFoundError, JournalError
from orchestr8._journal._events import Event, EventType, ExecutionStatus
from orchestr8._journal._journal import (
    BatchOutcome,
    CreateRequest,
    ExecutionRecord,
    Journal,
    JournalStatistics,
    ReadableStore,
    default_journal_path,
    open_journal,
)
from orchestr8._journal._memory import REQUIRED_FIELDS, MemoryJournal, MemoryStore
from orchestr8._journal._page_filter import PageFilter
from orchestr8._journal._postgres_store import PostgresStore
from orchestr8._journal._replay import replay
from orchestr8._journal._rules import EXECUTION_FIELDS
from orchestr8._journal._sqlite import SQLiteJournal, Store
from orchestr8._journal._sqlite_schema import APPLICATION_ID, SCHEMA_VERSION
from orchestr8._workflow._spec_hashes import step_spec_hashes

ROOT = Path(__file__).resolve().parents[2]
TS = "2025-01-01T00:00:00.000Z"

Opener = Callable[..., AbstractAsyncContextManager[Journal]]


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Open journals of one kind: a SQLite file in tmp_path, memory, or a PostgreSQL database."""
    path: Path | str | None = tmp_path / "journal.db" if request.param == "sqlite" else None
    if request.param == "postgresql":
        path = request.getfixturevalue("postgres_url")

    def open_one(**options: Any) -> AbstractAsyncContextManager[Journal]:
        return open_journal(path, **options)

    return open_one


def record(execution_id: str = "run-1", **fields: Any) -> ExecutionRecord:
    fields.setdefault("workflow", {"schema_version": "1.0", "name": "wf", "steps": []})
    fields.setdefault("workflow_name", "wf")
    return ExecutionRecord(execution_id=execution_id, **fields)


def event(
    seq: int,
    type: str = EventType.STEP_PROGRESS,
    execution_id: str = "run-1",
    **data: Any,
) -> Event:
    return Event(execution_id, seq, TS, seq / 10, type, "step", 1, data)


async def test_events_round_trip(opener: Opener) -> None:
    """Events come back exactly as appended, None step_id/attempt and nested data included."""
    appended = [
        Event("run-1", 1, TS, 0.0, EventType.EXECUTION_STARTED, data={"inputs": {"q": "ü"}}),
        Event("run-1", 2, TS, 0.25, "step.started", "search", None, {"agent": "echo"}),
        Event("run-1", 3, TS, 0.5, "attempt.failed", "search", 1, {"error": {"type": "E"}}),
        Event("run-1", 4, TS, 1.0, "vendor.custom", None, 2, {"x": [1, 2.5, None, True, "☃"]}),
    ]
    async with opener() as journal:
        await journal.create_execution(record(inputs={"q": "ü"}, correlation_id="c-1"))
        for one in appended:
            await journal.append(one)
        await journal.flush()
        assert await journal.events("run-1") == appended
        stored = await journal.get_execution("run-1")
    assert stored.workflow == record().workflow
    assert (stored.inputs, stored.correlation_id) == ({"q": "ü"}, "c-1")


async def test_only_postgresql_queues_an_execution_with_its_record(opener: Opener) -> None:
    """`queue=True` records and queues in one transaction on PostgreSQL; other stores refuse it."""
    async with opener() as journal:
        if journal.location.startswith("postgresql"):
            stored, created = await journal.create_or_find(record(), queue=True)
            assert created
            assert stored.execution_id == "run-1"
            assert await journal.get_execution("run-1") == stored
            return
        with pytest.raises(JournalError, match="only a PostgreSQL journal queues"):
            await journal.create_or_find(record(), queue=True)
        with pytest.raises(ExecutionNotFoundError):
            await journal.get_execution("run-1")
        await journal.create_execution(record())


async def test_events_are_ordered_and_gap_free_per_execution(opener: Opener) -> None:
    """Interleaved appends of two executions read back 1..n in order for each."""
    async with opener() as journal:
        await journal.create_execution(record("a"))
        await journal.create_execution(record("b"))
        for seq in range(1, 301):
            await journal.append(event(seq, execution_id="a"))
            if seq % 3 == 0:
                await journal.append(event(seq // 3, execution_id="b"))
        await journal.flush()
        assert [one.seq for one in await journal.events("a")] == list(range(1, 301))
        assert [one.seq for one in await journal.events("b")] == list(range(1, 101))
        assert (await journal.last_seq("a"), await journal.last_seq("b")) == (300, 100)


@pytest.mark.parametrize(
    ("seqs", "message"),
    [
        ([1, 2, 2], "seq 2 is already written (last seq 2)"),
        ([1, 2, 4], "seq must be gap-free, expected 3"),
        ([2], "seq must be gap-free, expected 1"),
    ],
)
async def test_out_of_order_seq_fails_the_journal(
    opener: Opener, seqs: list[int], message: str
) -> None:
    """A duplicate or gapped seq is refused loudly; what came before it stays written."""

    async def append_and_check() -> None:
        async with opener() as journal:
            await journal.create_execution(record())
            for seq in seqs:
                journal.append_nowait(event(seq))
            with pytest.raises(JournalError, match=re.escape(message)):
                await journal.flush()
            assert journal.statistics().failed
            with pytest.raises(JournalError, match="the journal failed"):
                await journal.append(event(len(seqs) + 1))
            assert [one.seq for one in await journal.events("run-1")] == seqs[:-1]

    with pytest.raises(JournalError, match="the journal failed"):
        await append_and_check()


async def test_events_of_unknown_executions_and_non_json_data_are_refused(opener: Opener) -> None:
    """An event without its execution, or with data JSON cannot hold, fails the journal."""

    async def append(execution_id: str, **data: Any) -> None:
        async with opener() as journal:
            if execution_id != "ghost":
                await journal.create_execution(record(execution_id))
            await journal.append(event(1, execution_id=execution_id, **data))

    with pytest.raises(JournalError, match="no such execution"):
        await append("ghost")
    with pytest.raises(JournalError, match="data is not JSON"):
        await append("other", value=float("nan"))


async def test_group_commit_writes_many_events_in_few_transactions(opener: Opener) -> None:
    """Thousands of appends become a handful of batches, every event written once."""
    async with opener(queue_size=4096) as journal:
        await journal.create_execution(record())
        before = journal.statistics()
        for seq in range(1, 3001):
            journal.append_nowait(event(seq))
        await journal.flush()
        after = journal.statistics()
    assert isinstance(after, JournalStatistics)
    assert after.events_written == 3000
    assert after.batches_committed - before.batches_committed <= 2


async def test_awaited_appends_are_batched_too(tmp_path: Path) -> None:
    """Awaited appends one at a time still commit far fewer SQLite batches than events."""
    async with open_journal(tmp_path / "journal.db") as journal:
        await journal.create_execution(record())
        for seq in range(1, 2001):
            await journal.append(event(seq))
        await journal.flush()
        statistics = journal.statistics()
    assert statistics.events_written == 2000
    assert statistics.batches_committed <= 2000 // 4


async def test_append_nowait_raises_would_block_when_the_queue_is_full(opener: Opener) -> None:
    """A full queue refuses append_nowait with trio.WouldBlock instead of dropping the event."""
    async with opener(queue_size=2) as journal:
        await journal.create_execution(record())
        accepted = 0
        for seq in range(1, 10):
            try:
                journal.append_nowait(event(seq))
            except trio.WouldBlock:
                break
            accepted += 1
        # The idle writer may already hold one item in hand: the queue itself holds two.
        assert accepted in (2, 3)
        assert journal.statistics().items_queued == 2
        await journal.append(event(accepted + 1))
        await journal.flush()
        assert await journal.last_seq("run-1") == accepted + 1


async def test_the_default_queue_is_larger_in_memory_than_for_a_file(tmp_path: Path) -> None:
    """A memory journal queues 65,536 events by default, a SQLite file 1,024 (its disk lags)."""
    async with open_journal() as memory:
        assert memory.statistics().queue_size == 65_536
    async with open_journal(tmp_path / "journal.db") as file:
        assert file.statistics().queue_size == 1024


async def test_flush_makes_everything_appended_before_it_visible(opener: Opener) -> None:
    """After flush, readers see every event appended before the call."""
    async with opener() as journal:
        await journal.flush()
        await journal.create_execution(record())
        for seq in range(1, 101):
            journal.append_nowait(event(seq))
        await journal.flush()
        assert await journal.last_seq("run-1") == 100
        assert len(await journal.events("run-1")) == 100


async def test_a_second_connection_sees_flushed_events(tmp_path: Path) -> None:
    """Flushed events are committed to the file: another journal on it reads them."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as writer, open_journal(path) as reader:
        await writer.create_execution(record())
        for seq in range(1, 51):
            await writer.append(event(seq))
        await writer.flush()
        assert await reader.last_seq("run-1") == 50


async def test_readers_only_see_whole_committed_prefixes(tmp_path: Path) -> None:
    """While the writer commits batches, every read returns a gap-free prefix."""
    async with open_journal(tmp_path / "journal.db") as journal:
        await journal.create_execution(record())
        done = trio.Event()

        async def produce() -> None:
            for seq in range(1, 5001):
                await journal.append(event(seq))
            await journal.flush()
            done.set()

        reads = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            while not done.is_set() or reads == 0:
                seen = [one.seq for one in await journal.events("run-1")]
                assert seen == list(range(1, len(seen) + 1))
                reads += 1
        assert len(await journal.events("run-1")) == 5000


async def test_closing_flushes_even_while_cancelled(tmp_path: Path) -> None:
    """Leaving the block under cancellation still commits everything appended."""
    path = tmp_path / "journal.db"
    with trio.CancelScope() as scope:
        async with open_journal(path) as journal:
            await journal.create_execution(record())
            for seq in range(1, 1001):
                journal.append_nowait(event(seq))
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    async with open_journal(path) as journal:
        assert await journal.last_seq("run-1") == 1000


async def test_closing_gives_up_on_a_stuck_writer_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write that never finishes delays closing by at most close_timeout, then fails loudly."""

    async def stuck(self: MemoryJournal, items: list[Any]) -> Any:
        await trio.sleep_forever()

    async def append_then_close() -> None:
        async with open_journal(None, close_timeout=0.2) as journal:
            monkeypatch.setattr(MemoryJournal, "_write", stuck)
            journal.append_nowait(event(1))
            journal.append_nowait(event(2))

    started = trio.current_time()
    with trio.fail_after(5), pytest.raises(JournalError, match=r"longer than 0\.2 s; 2 events"):
        await append_then_close()
    assert trio.current_time() - started < 2


async def test_a_closed_journal_refuses_work(opener: Opener) -> None:
    """Appending, flushing or reading after the block raises JournalError."""
    async with opener() as journal:
        await journal.create_execution(record())
    with pytest.raises(JournalError, match="closed"):
        await journal.append(event(1))
    with pytest.raises(JournalError, match="closed"):
        journal.append_nowait(event(1))
    with pytest.raises(JournalError, match="closed"):
        await journal.flush()
    with pytest.raises(JournalError, match="closed"):
        await journal.events("run-1")


_KILLED_WRITER = """
import sys, trio
from orchestr8._journal._events import Event
from orchestr8._journal._journal import ExecutionRecord, open_journal

async def main(path):
    async with open_journal(path) as journal:
        await journal.create_execution(ExecutionRecord("run-1", "wf", {}))
        seq = 0
        while True:
            for _ in range(200):
                seq += 1
                data = {"n": seq}
                await journal.append(Event("run-1", seq, "ts", seq, "step.progress", "s", 1, data))
            if seq % 2000 == 0:
                await journal.flush()
                print(seq, flush=True)

trio.run(main, sys.argv[1])
"""


async def test_a_killed_writer_leaves_a_consistent_prefix(tmp_path: Path) -> None:
    """SIGKILL during appends: reopening finds 1..n gap-free, including everything flushed."""
    path = tmp_path / "journal.db"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert process.stdout is not None
    output = b""
    with trio.fail_after(15):
        # The second flush proves events beyond the first one were appended; the writer goes on
        # appending without pause, so the kill lands among appends.
        while output.count(b"\n") < 2:
            chunk = await process.stdout.receive_some()
            assert chunk, "the writer exited before flushing twice"
            output += chunk
        process.kill()
        await process.wait()
    await process.stdout.aclose()
    assert process.returncode == -9
    first, second = (int(line) for line in output.splitlines()[:2])
    assert (first, second) == (2000, 4000)
    async with open_journal(path) as journal:
        events = await journal.events("run-1")
    assert [one.seq for one in events] == list(range(1, len(events) + 1))
    assert [one.data["n"] for one in events] == [one.seq for one in events]
    assert len(events) >= second > first


async def test_execution_rows_follow_status_events(opener: Opener) -> None:
    """Start, failure and resume update the executions row in the same batch as the events."""
    async with opener() as journal:
        created = await journal.create_execution(record())
        assert created.status is ExecutionStatus.PENDING
        await journal.append(
            Event("run-1", 1, "2025-01-01T00:00:01.000Z", 0.0, "execution.started")
        )
        await journal.flush()
        running = await journal.get_execution("run-1")
        assert (running.status, running.started_at) == ("running", "2025-01-01T00:00:01.000Z")
        failure = {"type": "Boom", "message": "no"}
        await journal.append(
            Event("run-1", 2, TS, 1.0, "execution.failed", data={"error": failure})
        )
        await journal.flush()
        failed = await journal.get_execution("run-1")
        assert (failed.status, failed.error, failed.finished_at) == ("failed", failure, TS)
        await journal.append(
            Event("run-1", 3, "2025-01-01T00:00:09.000Z", 2.0, "execution.resumed")
        )
        await journal.append(Event("run-1", 4, TS, 3.0, "execution.succeeded", data={"output": 7}))
        await journal.flush()
        done = await journal.get_execution("run-1")
    assert (done.status, done.output, done.error) == ("succeeded", 7, None)
    assert done.started_at == "2025-01-01T00:00:01.000Z"


async def test_unknown_executions_raise_not_found(opener: Opener) -> None:
    """Readers asked about an unknown execution raise ExecutionNotFoundError."""
    async with opener() as journal:
        await journal.create_execution(record())
        assert await journal.last_seq("run-1") == 0
        assert await journal.events("run-1") == []
        with pytest.raises(ExecutionNotFoundError):
            await journal.get_execution("ghost")
        with pytest.raises(ExecutionNotFoundError):
            await journal.events("ghost")
        with pytest.raises(ExecutionNotFoundError):
            await journal.last_seq("ghost")


async def test_lone_surrogates_in_json_values_are_stored_and_read_back(
    opener: Opener, tmp_path: Path
) -> None:
    """Inputs and event data holding lone surrogates round-trip, stored as valid UTF-8 text."""
    data: dict[str, Any] = {"output": "x\ud800y", "k\udc80": ["\udfff", "é\ud83d"]}
    async with opener() as journal:
        await journal.create_execution(record(inputs={"q": "a\ud800"}))
        await journal.append(event(1, **data))
        await journal.flush()
        assert (await journal.events("run-1"))[0].data == data
        assert (await journal.get_execution("run-1")).inputs == {"q": "a\ud800"}
    if journal.path is not None:
        connection = sqlite3.connect(journal.path)
        connection.text_factory = bytes
        try:
            (stored,) = connection.execute("SELECT data FROM events").fetchone()
        finally:
            connection.close()
        assert stored.decode("utf-8") == '{"output":"x\\ud800y","k\\udc80":["\\udfff","é\\ud83d"]}'


async def test_text_fields_holding_lone_surrogates_are_refused_by_both_stores(
    opener: Opener,
) -> None:
    """A record or event envelope that is not text is refused with the field named, alike."""
    async with opener() as journal:
        with pytest.raises(JournalError, match=r"cannot be stored: its workflow_name 'wf\\ud800'"):
            await journal.create_execution(record(workflow_name="wf\ud800"))
        await journal.create_execution(record("run-2"))
        assert (await journal.get_execution("run-2")).workflow_name == "wf"

    async def append_odd_step_id() -> None:
        async with opener() as journal:
            await journal.create_execution(record())
            await journal.append(Event("run-1", 1, TS, 0.0, "step.progress", "s\udc00", 1, {}))

    with pytest.raises(JournalError, match=r"cannot be stored: its step_id 's\\udc00'"):
        await append_odd_step_id()


async def test_ids_no_journal_can_hold_are_not_found(opener: Opener) -> None:
    """Looking up an id holding a lone surrogate (an undecodable argument) finds nothing."""
    async with opener() as journal:
        with pytest.raises(ExecutionNotFoundError):
            await journal.get_execution("\udcff\udcfe")
        with pytest.raises(ExecutionNotFoundError):
            await journal.events("\udcff")
        with pytest.raises(ExecutionNotFoundError):
            await journal.last_seq("\udcff")
        assert await journal.find_by_idempotency_key("\udcff") is None


class _UnreadableItems(dict[str, Any]):
    """A mapping whose items cannot be read: encoding it raises neither TypeError nor ValueError."""

    def items(self) -> Any:
        raise RuntimeError("items are gone")


async def test_a_store_raising_unexpectedly_fails_the_journal_and_keeps_the_writer(
    opener: Opener,
) -> None:
    """An error no store reports becomes the journal's failure; flush and close still return."""

    async def append_unreadable() -> None:
        async with opener() as journal:
            await journal.create_execution(record())
            await journal.append(event(1, nested=_UnreadableItems(a=1)))
            with pytest.raises(JournalError, match="RuntimeError: items are gone"):
                await journal.flush()
            assert journal.statistics().failed
            with pytest.raises(JournalError):
                await journal.append(event(2))

    with pytest.raises(JournalError, match="writing the journal failed: RuntimeError: items are"):
        await append_unreadable()


async def test_on_failure_callbacks_run_once_when_the_journal_fails(opener: Opener) -> None:
    """Watchers hear of the failure once, as refused calls raise it; late ones hear at once."""
    heard: list[str] = []

    async def scenario() -> None:
        async with opener() as journal:
            journal.on_failure(lambda error: heard.append(f"first: {error}"))
            removed = journal.on_failure(lambda error: heard.append("removed"))
            removed()
            await journal.append(event(1, execution_id="ghost"))
            with pytest.raises(JournalError):
                await journal.flush()
            journal.on_failure(lambda error: heard.append(f"late: {error}"))

    with pytest.raises(JournalError, match="no such execution"):
        await scenario()
    failure = (
        "the journal failed: event seq 1 (step.progress) of execution 'ghost': no such "
        "execution (record it first)"
    )
    assert heard == [f"first: {failure}", f"late: {failure}"]


async def test_a_raising_on_failure_callback_is_logged_and_the_others_still_run(
    opener: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    """A watcher's bug never kills the writer: it is logged, and the next watcher hears too."""
    heard: list[str] = []

    def broken(error: JournalError) -> None:
        raise RuntimeError("the watcher broke")

    async def scenario() -> None:
        async with opener() as journal:
            journal.on_failure(broken)
            journal.on_failure(lambda error: heard.append("second"))
            await journal.append(event(1, execution_id="ghost"))
            with pytest.raises(JournalError):
                await journal.flush()

    with pytest.raises(JournalError, match="no such execution"):
        await scenario()
    assert heard == ["second"]
    assert "a journal on_failure callback raised" in caplog.text


async def test_events_after_and_limit_slice_the_stream(opener: Opener) -> None:
    """events(after=, limit=) returns the next `limit` events following seq `after`."""
    async with opener() as journal:
        await journal.create_execution(record())
        for seq in range(1, 11):
            await journal.append(event(seq))
        await journal.flush()
        assert [one.seq for one in await journal.events("run-1", after=4, limit=3)] == [5, 6, 7]
        assert [one.seq for one in await journal.events("run-1", after=8)] == [9, 10]
        assert await journal.events("run-1", after=10) == []


async def test_listing_pages_newest_first_and_stays_stable(opener: Opener) -> None:
    """Pages run newest first by (created_at, id); a new execution does not shift later pages."""
    async with opener() as journal:
        for index in range(7):
            stamp = f"2025-01-01T00:00:0{index // 2}.000Z"
            await journal.create_execution(record(f"run-{index}", created_at=stamp))
        await journal.append(Event("run-3", 1, TS, 0.0, "execution.started"))
        await journal.flush()
        first = await journal.list_executions(limit=3)
        assert [one.execution_id for one in first.items] == ["run-6", "run-5", "run-4"]
        await journal.create_execution(record("run-new", created_at="2025-01-01T00:00:09.000Z"))
        seen = [one.execution_id for one in first.items]
        cursor = first.next_cursor
        while cursor is not None:
            page = await journal.list_executions(limit=3, before=cursor)
            seen += [one.execution_id for one in page.items]
            cursor = page.next_cursor
        assert seen == [f"run-{index}" for index in reversed(range(7))]
        running = await journal.list_executions(status="running")
        assert [one.execution_id for one in running.items] == ["run-3"]
        assert running.next_cursor is None
        with pytest.raises(ValueError, match="cursor"):
            await journal.list_executions(before="nonsense")
        with pytest.raises(ValueError, match="limit"):
            await journal.list_executions(limit=0)


async def test_idempotency_key_finds_and_deduplicates(opener: Opener) -> None:
    """A second create with a known idempotency key returns the first execution, writing nothing."""
    async with opener() as journal:
        first = await journal.create_execution(record("run-1", idempotency_key="key-1"))
        again = await journal.create_execution(record("run-2", idempotency_key="key-1"))
        assert again == first
        assert await journal.find_by_idempotency_key("key-1") == first
        assert await journal.find_by_idempotency_key("key-2") is None
        with pytest.raises(ExecutionNotFoundError):
            await journal.get_execution("run-2")


async def test_an_execution_is_created_with_its_first_event_in_one_transaction(
    opener: Opener,
) -> None:
    """`create_or_find` with `first_event` commits both: the execution is recorded as started."""
    started = event(1, EventType.EXECUTION_STARTED)
    async with opener() as journal:
        _, created = await journal.create_or_find(record(), first_event=started)
        assert created
        assert await journal.events("run-1") == [started]
        assert (await journal.get_execution("run-1")).status is ExecutionStatus.RUNNING
        await journal.append(event(2))
        await journal.flush()
        assert await journal.last_seq("run-1") == 2


async def test_a_first_event_that_cannot_be_stored_refuses_the_whole_create(
    opener: Opener,
) -> None:
    """A first event that is not JSON leaves neither the execution nor the event; no failure."""
    broken = event(1, EventType.EXECUTION_STARTED, value=float("nan"))
    async with opener() as journal:
        with pytest.raises(JournalError, match="'run-1' cannot be stored"):
            await journal.create_or_find(record(), first_event=broken)
        with pytest.raises(ExecutionNotFoundError):
            await journal.get_execution("run-1")
        assert not journal.statistics().failed


async def test_a_first_event_must_be_seq_one_of_its_execution(opener: Opener) -> None:
    """Another execution's event, or a later seq, is refused before anything is queued."""
    async with opener() as journal:
        for wrong in (event(2), event(1, execution_id="run-2")):
            with pytest.raises(ValueError, match="the first event must be seq 1"):
                await journal.create_or_find(record(), first_event=wrong)
        assert journal.statistics().items_queued == 0


@pytest.mark.parametrize("kind", ["sqlite", "memory", "postgresql"])
def test_a_rolled_back_batch_leaves_no_execution_without_its_first_event(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A batch that fails after a create writes neither the execution nor its first event."""
    store: Any = Store.open_file(tmp_path / "journal.db") if kind == "sqlite" else MemoryStore()
    if kind == "postgresql":
        store.close()
        store = PostgresStore.open(request.getfixturevalue("postgres_url"))
    started = event(1, EventType.EXECUTION_STARTED)
    no_ts: Any = None
    unstorable = attrs.evolve(event(2), ts=no_ts)
    outcome = store.write_batch([CreateRequest(record(), first_event=started), unstorable])
    assert "NOT NULL constraint failed" in str(outcome.failure)
    assert store.load_execution("run-1") is None
    assert store.load_events("run-1", 0, None) is None
    store.close()


async def test_a_failed_journal_says_why_and_reopen_makes_it_take_work_again(
    opener: Opener,
) -> None:
    """After a failure, `trouble` names it; `reopen` clears it, keeping what was committed."""
    async with opener() as journal:
        assert journal.trouble() is None
        await journal.create_execution(record())
        await journal.append(event(1))
        await journal.flush()
        await journal.append(event(1, execution_id="ghost"))
        with pytest.raises(JournalError):
            await journal.flush()
        assert journal.trouble() == (
            "the journal failed: event seq 1 (step.progress) of execution 'ghost': no such "
            "execution (record it first)"
        )
        statistics = journal.statistics()
        assert statistics.failed
        assert statistics.failure is not None
        assert "'ghost'" in statistics.failure
        await journal.reopen()
        assert journal.trouble() is None
        assert not journal.statistics().failed
        await journal.append(event(2))
        await journal.create_execution(record("run-2"))
        await journal.flush()
        assert [one.seq for one in await journal.events("run-1")] == [1, 2]
        await journal.reopen()
        assert journal.trouble() is None
    assert journal.closed
    with pytest.raises(JournalError, match="the journal is closed"):
        await journal.reopen()


async def test_a_duplicate_execution_id_is_refused_without_failing(opener: Opener) -> None:
    """Creating an existing id raises JournalError for that call; the journal keeps working."""
    async with opener() as journal:
        await journal.create_execution(record())
        with pytest.raises(JournalError, match="already in the journal"):
            await journal.create_execution(record())
        await journal.append(event(1))
        await journal.flush()
        assert not journal.statistics().failed


async def test_a_directory_is_not_a_journal(tmp_path: Path) -> None:
    """Opening a directory raises JournalError naming it."""
    with pytest.raises(JournalError, match=f"{tmp_path} is a directory"):
        async with open_journal(tmp_path):
            pass


async def test_an_uncreatable_directory_is_reported(tmp_path: Path) -> None:
    """A path below a regular file raises JournalError naming the directory."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(JournalError, match=f"cannot create the journal directory {blocker}"):
        async with open_journal(blocker / "journal.db"):
            pass


async def test_a_file_that_is_not_sqlite_is_reported(tmp_path: Path) -> None:
    """A non-database file raises JournalError saying so, and is left untouched."""
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not SQLite" * 100)
    with pytest.raises(JournalError, match=f"{path} is not a SQLite database"):
        async with open_journal(path):
            pass
    assert path.read_text().startswith("hello")


def write_database(path: Path, *statements: str) -> None:
    """Run `statements` on the SQLite file at `path`, commit, and close the connection."""
    # A connection's `with` commits but does not close: closing() does, so none is left to GC.
    with closing(sqlite3.connect(path)) as connection, connection:
        for statement in statements:
            connection.execute(statement)


async def test_other_sqlite_databases_and_newer_schemas_are_refused(tmp_path: Path) -> None:
    """Another application's SQLite database, or a newer journal schema, raises JournalError."""
    foreign = tmp_path / "foreign.db"
    write_database(foreign, "CREATE TABLE customers (name)")
    with pytest.raises(JournalError, match="not an orchestr8 journal"):
        async with open_journal(foreign):
            pass
    versioned = tmp_path / "versioned.db"
    write_database(versioned, "PRAGMA user_version = 3")
    with pytest.raises(JournalError, match="not an orchestr8 journal"):
        async with open_journal(versioned):
            pass
    newer = tmp_path / "newer.db"
    write_database(newer, f"PRAGMA application_id = {APPLICATION_ID}", "PRAGMA user_version = 99")
    with pytest.raises(JournalError, match="schema version 99"):
        async with open_journal(newer):
            pass


async def test_the_file_layout_is_versioned_wal(tmp_path: Path) -> None:
    """The file is in WAL mode, at the current user_version, with events keyed by (id, seq)."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        assert isinstance(journal, SQLiteJournal)
        assert journal.path == path
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        keys = connection.execute("SELECT name, pk FROM pragma_table_info('events')").fetchall()
        assert {name for name, position in keys if position} == {"execution_id", "seq"}
    finally:
        connection.close()


async def test_memory_is_chosen_by_none_or_the_memory_name() -> None:
    """None and ":memory:" open a MemoryJournal without a path."""
    for path in (None, ":memory:"):
        async with open_journal(path) as journal:
            assert isinstance(journal, MemoryJournal)
            assert journal.path is None


def test_default_path_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$ORCHESTR8_JOURNAL wins; otherwise ./.orchestr8/journal.db, its directory created."""
    monkeypatch.setenv("ORCHESTR8_JOURNAL", str(tmp_path / "custom" / "j.db"))
    assert default_journal_path() == tmp_path / "custom" / "j.db"
    assert (tmp_path / "custom").is_dir()
    monkeypatch.delenv("ORCHESTR8_JOURNAL")
    monkeypatch.chdir(tmp_path)
    assert default_journal_path() == tmp_path / ".orchestr8" / "journal.db"
    assert (tmp_path / ".orchestr8").is_dir()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["\ud800", "a\udfffé"]),  # lone surrogates: stored escaped
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
event_fields = st.tuples(
    st.sampled_from([*EventType, "vendor.custom"]),
    st.none() | st.sampled_from(["a", "b", "c"]),
    st.none() | st.integers(1, 4),
    st.floats(0, 1e6),
    st.dictionaries(
        st.sampled_from(["output", "error", "reason"]) | st.text(max_size=4),
        json_values,
        max_size=3,
    ),
)


@pytest.fixture(scope="module")
def shared_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One journal file for every example: creating a file costs far more than reopening it."""
    return tmp_path_factory.mktemp("property") / "journal.db"


_execution_numbers = itertools.count()


async def _write_and_read(
    path: Path | str | None, execution_id: str, fields: list[tuple[Any, ...]]
) -> tuple[list[Event], list[Event], ExecutionRecord]:
    appended = [
        Event(execution_id, seq, TS, elapsed, kind, step_id, attempt, data)
        for seq, (kind, step_id, attempt, elapsed, data) in enumerate(fields, start=1)
    ]
    async with open_journal(path) as journal:
        await journal.create_execution(record(execution_id, created_at=TS))
        for one in appended:
            await journal.append(one)
        await journal.flush()
        return (
            appended,
            await journal.events(execution_id),
            await journal.get_execution(execution_id),
        )


@settings(max_examples=30)
@given(fields=st.lists(event_fields, max_size=25))
async def test_the_postgres_journal_reads_back_what_was_appended(
    shared_database: str, fields: list[tuple[Any, ...]]
) -> None:
    """Random sequences read back from PostgreSQL exactly as from memory, replaying alike."""
    execution_id = f"run-{next(_execution_numbers)}"
    appended, from_database, row = await _write_and_read(shared_database, execution_id, fields)
    _, from_memory, memory_row = await _write_and_read(None, execution_id, fields)
    assert from_database == from_memory == appended
    assert row == memory_row


@given(fields=st.lists(event_fields, max_size=25))
async def test_both_journals_read_back_what_was_appended(
    shared_path: Path, fields: list[tuple[Any, ...]]
) -> None:
    """Random sequences read back identically from both journals and replay to the same state."""
    execution_id = f"run-{next(_execution_numbers)}"
    appended, from_file, row = await _write_and_read(shared_path, execution_id, fields)
    _, from_memory, memory_row = await _write_and_read(None, execution_id, fields)
    assert from_file == from_memory == appended
    state = replay(appended)
    assert replay(from_file) == replay(from_memory) == state
    assert row == memory_row
    assert (row.status, row.output, row.error) == (state.status, state.output, state.error)
    assert (row.started_at, row.finished_at) == (state.started_at, state.finished_at)


async def test_readers_and_appenders_never_share_mutable_data(opener: Opener) -> None:
    """Changing an appended event's data, or anything read back, leaves the journal unchanged."""
    async with opener() as journal:
        created = await journal.create_execution(record(inputs={"q": [1]}))
        created.inputs["q"].append(2)
        created.workflow["name"] = "changed"
        appended = Event("run-1", 1, TS, 0.0, "step.progress", "s", 1, {"items": [1]})
        await journal.append(appended)
        await journal.flush()
        appended.data["items"].append(2)
        first = await journal.events("run-1")
        first[0].data["items"].append(3)
        stored = await journal.get_execution("run-1")
        stored.inputs["q"].append(3)
        assert (await journal.events("run-1"))[0].data == {"items": [1]}
        again = await journal.get_execution("run-1")
        assert (again.inputs, again.workflow) == ({"q": [1]}, record().workflow)


async def test_the_memory_store_knows_the_sqlite_not_null_columns(tmp_path: Path) -> None:
    """The fields the memory store refuses as None are the NOT NULL columns of `executions`."""
    path = tmp_path / "journal.db"
    async with open_journal(path):
        pass
    connection = sqlite3.connect(path)
    try:
        columns = connection.execute(
            "SELECT name FROM pragma_table_info('executions') WHERE \"notnull\" ORDER BY cid"
        ).fetchall()
    finally:
        connection.close()
    assert tuple(name for (name,) in columns) == REQUIRED_FIELDS


_IDS = ["a", "b", "é", "\U0001d11e"]
_STAMPS = ["2025-01-01T00:00:00.000Z", "2025-01-01T00:00:01.000Z", "2025-01-01T00:00:0\xe9"]
_BAD_RECORDS: dict[str, dict[str, Any]] = {
    "nan": {"inputs": {"x": float("nan")}},
    "no-inputs": {"inputs": None},
    "no-workflow": {"workflow": None},
    "no-name": {"workflow_name": None},
}
_DATA: list[Any] = [
    {},
    {"output": {"v": [1, "ü"]}},
    {"error": {"type": "E", "message": "no"}},
    {1: "an int key"},
    {"x": float("nan")},
    {"x": {1, 2}},
    ["not", "an", "object"],
]
_STATUS_TYPES = [
    "execution.started",
    "execution.resumed",
    "execution.succeeded",
    "execution.failed",
    "execution.cancelled",
]
create_operations = st.tuples(
    st.just("create"),
    st.sampled_from(_IDS),
    st.sampled_from([None, None, "k1", "k2"]),
    st.sampled_from(_STAMPS),
    st.sampled_from(["ok", "ok", "ok", *_BAD_RECORDS]),
    st.sampled_from([None, None, (0, TS), (1, TS), (4, TS), (0, None)]),
)
event_operations = st.tuples(
    st.just("event"),
    st.sampled_from([*_IDS[:2], *_IDS, "ghost"]),
    st.sampled_from([1] * 8 + [0, 2]),
    st.sampled_from([*_STATUS_TYPES, "step.progress", "step.progress"]),
    st.sampled_from([0, 0, 1, 1, 2, 2, *range(len(_DATA))]),
    st.sampled_from([TS] * 7 + [None]),
)


def _store_items(memory: MemoryStore, operations: list[tuple[Any, ...]]) -> list[Any]:
    """Build one batch: creates as asked, events numbered from the store's last seq + delta."""
    items: list[Any] = []
    numbered: dict[str, int] = {}
    for operation in operations:
        if operation[0] == "create":
            _, execution_id, key, stamp, kind, first = operation
            fields = {
                "execution_id": execution_id,
                "workflow_name": "wf",
                "workflow": record().workflow,
                "idempotency_key": key,
                "created_at": stamp,
                **_BAD_RECORDS.get(kind, {}),
            }
            first_event = None
            if first is not None:
                data, ts = first
                first_event = Event(
                    execution_id, 1, ts, 0.0, "execution.started", None, None, _DATA[data]
                )
                numbered[execution_id] = 1
            items.append(CreateRequest(ExecutionRecord(**fields), first_event=first_event))
        else:
            _, execution_id, delta, kind, data, ts = operation
            last = numbered.get(execution_id, memory.load_last_seq(execution_id) or 0)
            numbered[execution_id] = last + delta
            items.append(Event(execution_id, last + delta, ts, 0.5, kind, "s", 1, _DATA[data]))
    return items


def _outcome_view(outcome: BatchOutcome) -> tuple[Any, ...]:
    created = [
        (request, str(result) if isinstance(result, JournalError) else result)
        for request, result in outcome.created
    ]
    failure = None if outcome.failure is None else str(outcome.failure)
    return outcome.events_written, outcome.committed, failure, created


def _snapshot(store: Any) -> list[Any]:
    """Everything the readers can see, through every read method."""
    seen: list[Any] = []
    for execution_id in [*_IDS, "ghost"]:
        seen.append(store.load_execution(execution_id))
        seen.append(store.load_last_seq(execution_id))
        seen.append(store.load_events(execution_id, 0, None))
        seen.append(store.load_events(execution_id, 1, 2))
    seen += [store.load_by_idempotency_key(key) for key in ("k1", "k2", "k3")]
    for status in (None, *ExecutionStatus):
        for before in (None, (_STAMPS[1], "b"), (_STAMPS[0], "\xe9")):
            for limit in (1, 10):
                seen.append(store.load_page(status, before, limit, PageFilter()))
    for only in (PageFilter("wf"), PageFilter(id_prefix="a"), PageFilter("other", "b")):
        for before in (None, (_STAMPS[1], "b")):
            seen.append(store.load_page(None, before, 10, only))
    return seen


def _create(
    execution_id: str, key: str | None = None, kind: str = "ok", first: Any = None
) -> tuple[Any, ...]:
    return ("create", execution_id, key, _STAMPS[1], kind, first)


def _append(execution_id: str, kind: str, *, data: int = 0, ts: str | None = TS) -> tuple[Any, ...]:
    return ("event", execution_id, 1, kind, data, ts)


@settings(max_examples=200)
@example(  # A key created earlier in the batch returns the execution as it was created.
    batches=[[_create("c", "k1"), _append("c", "execution.started"), _create("d", "k1")]]
)
@example(  # The first start is kept; a resume clears the end; a refused row undoes the batch.
    batches=[
        [_append("a", "execution.started"), _append("a", "execution.failed", data=2)],
        [_append("a", "execution.resumed"), _append("a", "execution.succeeded", data=1)],
        [_append("b", "execution.started"), _create("c", "k2"), _append("b", "x", ts=None)],
    ]
)
@example(  # SQLite refuses a NULL ts only at the batch's end: a bad record after it speaks first.
    batches=[[_append("a", "x", ts=None), _append("a", "x"), _create("c", kind="no-inputs")]]
)
@example(  # A first event is written with its record, or neither is: a NULL ts undoes both.
    batches=[
        [_create("c", first=(0, TS)), _append("c", "x")],
        [_create("d", first=(0, None)), _create("e", kind="no-inputs")],
        [_create("f", first=(4, TS))],
    ]
)
@given(
    batches=st.lists(
        st.lists(create_operations | event_operations | event_operations, max_size=8), max_size=6
    )
)
def test_the_memory_store_behaves_like_the_sqlite_store(
    batches: list[list[tuple[Any, ...]]],
) -> None:
    """The same batches give the same outcomes, errors and reads from both stores.

    Batches mix good and refused events (gaps, duplicates, unknown executions, non-JSON data),
    status events, idempotency keys, duplicate ids, and rows SQLite's constraints refuse, which roll
    the whole batch back. Ids and stamps outside ASCII check that both page in the same order.
    """
    sqlite_store = Store.open_memory()
    memory = MemoryStore()
    opening = [("create", execution_id, None, _STAMPS[0], "ok", None) for execution_id in _IDS[:2]]
    try:
        for operations in [opening, *batches]:
            items = _store_items(memory, operations)
            expected = _outcome_view(sqlite_store.write_batch(items))
            assert _outcome_view(memory.write_batch(items)) == expected
            assert _snapshot(memory) == _snapshot(sqlite_store)
    finally:
        sqlite_store.close()


@pytest.fixture(scope="module")
def shared_database(postgres_server: PostgresServer) -> str:
    """One database for every example of a module's property tests (a fresh one costs more)."""
    return postgres_server.create_database()


def _empty_postgres_store(url: str) -> PostgresStore:
    """A store on the shared database, emptied of what an earlier example wrote."""
    store = PostgresStore.open(url)
    with store._writer.transaction():
        store._writer.execute("TRUNCATE requests, events, executions, workflow_documents CASCADE")
    return store


@settings(max_examples=40)
@given(
    batches=st.lists(
        st.lists(create_operations | event_operations | event_operations, max_size=8), max_size=6
    )
)
def test_the_postgres_store_behaves_like_the_sqlite_store(
    shared_database: str, batches: list[list[tuple[Any, ...]]]
) -> None:
    """The same batches give the same outcomes, errors and reads from SQLite and PostgreSQL."""
    sqlite_store = Store.open_memory()
    postgres_store = _empty_postgres_store(shared_database)
    numbering = MemoryStore()
    opening = [("create", execution_id, None, _STAMPS[0], "ok", None) for execution_id in _IDS[:2]]
    try:
        for operations in [opening, *batches]:
            items = _store_items(numbering, operations)
            expected = _outcome_view(sqlite_store.write_batch(items))
            numbering.write_batch(items)
            assert _outcome_view(postgres_store.write_batch(items)) == expected
            assert _snapshot(postgres_store) == _snapshot(sqlite_store)
    finally:
        sqlite_store.close()
        postgres_store.close()


def test_both_stores_offer_the_same_read_side() -> None:
    """The SQLite and memory stores are both a `ReadableStore`, and both know no execution yet."""
    sqlite_store = Store.open_memory()
    stores: list[ReadableStore] = [MemoryStore(), sqlite_store]
    try:
        for store in stores:
            assert store.load_execution("run-1") is None
            assert store.load_by_idempotency_key("key") is None
            assert store.load_last_seq("run-1") is None
            assert store.load_events("run-1", 0, None) is None
            assert store.load_page(None, None, 10, PageFilter()) == []
    finally:
        sqlite_store.close()


def shared_document() -> dict[str, Any]:
    return {"schema_version": "1.0", "name": "wf", "steps": [{"id": "a", "agent": "echo"}]}


async def test_executions_of_one_document_keep_one_stored_copy_and_read_it_whole(
    tmp_path: Path,
) -> None:
    """Equal documents are stored once (by digest); every read still gives the whole document."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await journal.create_execution(record("run-1", workflow=shared_document()))
        await journal.create_execution(
            record("run-2", workflow=shared_document(), idempotency_key="k")
        )
        await journal.create_execution(record("run-3", workflow={**shared_document(), "name": "x"}))
        assert (await journal.get_execution("run-2")).workflow == shared_document()
        assert (await journal.find_by_idempotency_key("k")).workflow == shared_document()  # type: ignore[union-attr]
        page = await journal.list_executions()
        assert [item.workflow["name"] for item in page.items] == ["x", "wf", "wf"]
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(
            "SELECT workflow, workflow_digest FROM executions ORDER BY execution_id"
        ).fetchall()
        documents = connection.execute("SELECT digest, document FROM workflow_documents").fetchall()
    assert [text for text, _ in rows] == ["", "", ""]
    assert rows[0][1] == rows[1][1] != rows[2][1]
    assert len(documents) == 2
    for digest, text in documents:
        assert hashlib.sha256(text.encode()).hexdigest() == digest


async def test_the_memory_store_shares_one_text_per_document() -> None:
    """The memory journal keeps one text per document too, shared by its executions' rows."""
    async with open_journal(None) as journal:
        await journal.create_execution(record("run-1", workflow=shared_document()))
        await journal.create_execution(record("run-2", workflow=shared_document()))
        assert (await journal.get_execution("run-2")).workflow == shared_document()
        assert isinstance(journal, MemoryJournal)
        rows = [journal._store._executions[name].row for name in ("run-1", "run-2")]
    workflow = EXECUTION_FIELDS.index("workflow")
    assert rows[0][workflow] is rows[1][workflow]


async def test_step_hashes_are_kept_with_the_document_that_first_brings_them(
    opener: Opener,
) -> None:
    """The hashes come from the create that stores (or first can hash) the document."""
    hashes = step_spec_hashes(shared_document())
    async with opener() as journal:
        await journal.create_execution(record("plain", workflow=shared_document()))
        assert await journal.step_hashes("plain") is None
        await journal.create_or_find(
            record("hashed", workflow=shared_document()), step_hashes=step_spec_hashes
        )
        assert await journal.step_hashes("hashed") == hashes
        assert await journal.step_hashes("plain") == hashes
        await journal.create_or_find(
            record("other", workflow={**shared_document(), "name": "o"}),
            step_hashes=step_spec_hashes,
        )
        assert await journal.step_hashes("other") == hashes
        with pytest.raises(ExecutionNotFoundError):
            await journal.step_hashes("nope")
        with pytest.raises(ExecutionNotFoundError):
            await journal.step_hashes("\ud800")


async def test_a_step_hasher_that_fails_refuses_only_that_create(opener: Opener) -> None:
    """A document whose hashes cannot be made is not stored, and the journal goes on."""

    def broken(document: Any) -> dict[str, str]:
        raise ValueError("no hashes")

    async with opener() as journal:
        with pytest.raises(JournalError, match="cannot be stored: no hashes"):
            await journal.create_or_find(record("bad"), step_hashes=broken)
        await journal.create_or_find(record("good"), step_hashes=step_spec_hashes)
        assert (await journal.get_execution("good")).workflow == record().workflow


async def test_a_run_records_the_step_hashes_of_its_document() -> None:
    """The runtime hands the journal the step hashes of every document it records."""
    from orchestr8._execution._runtime import open_runtime

    async with open_journal(None) as journal, open_runtime(journal=journal) as runtime:
        handle = await runtime.start(runtime.load(shared_document()))
        await handle.wait()
        stored = await journal.get_execution(handle.execution_id)
        assert await journal.step_hashes(handle.execution_id) == step_spec_hashes(stored.workflow)


async def test_only_a_memory_journal_is_not_shared(opener: Opener) -> None:
    """`shared`: other processes may use a SQLite file or a database, never this one's memory."""
    async with opener() as journal:
        assert journal.shared is not isinstance(journal, MemoryJournal)


async def test_a_wait_for_events_with_nothing_new_lasts_within(
    opener: Opener, autojump_clock: trio.testing.MockClock
) -> None:
    """Nothing committed: the wait lasts `within`; only PostgreSQL can be woken before that."""
    async with opener() as journal:
        # Woken by NOTIFY: the shared journal without a file, PostgreSQL.
        assert journal.event_wakeups is (journal.shared and journal.path is None)
        # Nothing follows yet: no trouble waking followers (SQLite and memory never have any).
        assert journal.wakeup_trouble is None
        await journal.create_execution(record())
        started = trio.current_time()
        await journal.wait_for_events("run-1", 0, 3.0)
        assert trio.current_time() - started == pytest.approx(3.0)
