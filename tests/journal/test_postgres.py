"""`PostgresJournal`: bad URLs and databases, text PostgreSQL cannot hold, and lost connections.

The journal's contract itself (the same as SQLite's) is specified in `test_journal.py`,
`test_requests.py` and the other store-parametrized files, which run on PostgreSQL too.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import trio
import trio.testing
from link_proxy import LinkProxy, link_proxy
from postgres_server import PostgresServer, free_port

from orchestr8 import open_runtime
from orchestr8._errors import ExecutionNotFoundError, JournalError
from orchestr8._journal._event_query import EventQuery
from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import CreateRequest, ExecutionRecord, Journal, open_journal
from orchestr8._journal._postgres import (
    FIRST_RETRY_DELAY,
    LONGEST_RETRY_DELAY,
    RECONNECT_WITHIN,
    PostgresJournal,
)
from orchestr8._journal._postgres_schema import SCHEMA_VERSION
from orchestr8._journal._postgres_store import COPY_FROM, ConnectionLost, PostgresStore
from orchestr8._journal._records import BatchOutcome
from orchestr8._journal._replay import replay

TS = "2025-01-01T00:00:00.000Z"
_roles = itertools.count()


def record(execution_id: str = "run-1", **fields: Any) -> ExecutionRecord:
    fields.setdefault("workflow", {"schema_version": "1.0", "name": "wf", "steps": []})
    fields.setdefault("workflow_name", "wf")
    return ExecutionRecord(execution_id=execution_id, **fields)


def event(seq: int, execution_id: str = "run-1", **data: Any) -> Event:
    return Event(execution_id, seq, TS, seq / 10, EventType.STEP_PROGRESS, "step", 1, data)


def database_name(url: str) -> str:
    """The database a test URL names."""
    return urlsplit(url).path.lstrip("/")


@pytest.fixture
def proxy(postgres_server: PostgresServer) -> Iterator[LinkProxy]:
    """A loopback TCP proxy in front of the server, whose link the test cuts and restores."""
    with link_proxy(postgres_server.port) as opened:
        yield opened


async def blocked_on_a_lock(url: str) -> None:
    """Return once some session of the database waits for a row lock another one holds."""
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with psycopg.connect(url, autocommit=True) as watcher:
        while True:
            if watcher.execute(waiting).fetchone() == (1,):
                return
            await trio.sleep(0.01)


def through(proxy: LinkProxy, url: str) -> str:
    """The URL of the same database, reached through the proxy."""
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/{database_name(url)}"


# Opening: where the journal is, and the databases it refuses.


async def test_a_url_opens_a_postgres_journal_whose_location_hides_the_password(
    postgres_url: str,
) -> None:
    """A `postgresql://` URL opens a `PostgresJournal`; its location never shows a password."""
    with_password = postgres_url.replace("postgres@", "postgres:s3cret@")
    async with open_journal(with_password) as journal:
        assert isinstance(journal, PostgresJournal)
        assert journal.path is None
        assert journal.location == with_password.replace("s3cret", "***")
        assert journal.url == with_password
        await journal.create_execution(record())
        assert (await journal.get_execution("run-1")).workflow_name == "wf"


async def test_every_journal_says_where_it_is(tmp_path: Any) -> None:
    """`location` is the SQLite file's path, or ":memory:" for a memory journal."""
    async with open_journal(tmp_path / "journal.db") as file, open_journal(None) as memory:
        assert file.location == str(tmp_path / "journal.db")
        assert memory.location == ":memory:"


async def test_a_malformed_url_is_refused_naming_the_expected_form() -> None:
    """A URL libpq cannot parse is refused before any connection, with the form to use."""
    with pytest.raises(JournalError, match=r"is malformed: .*expected postgresql://USER"):
        async with open_journal("postgresql://me@127.0.0.1:99999/db"):
            pass
    with pytest.raises(JournalError, match="is malformed"):
        async with open_journal("postgresql://127.0.0.1/db?nonsense_option=1"):
            pass


async def test_an_unreachable_database_is_named_without_its_password() -> None:
    """A closed loopback port: the error says the database cannot be reached, password hidden."""
    url = f"postgresql://me:hidden@127.0.0.1:{free_port()}/db"
    with pytest.raises(JournalError, match="cannot reach the journal database") as caught:
        async with open_journal(url):
            pass
    assert "hidden" not in str(caught.value)
    assert "me:***@127.0.0.1" in str(caught.value)


async def test_a_missing_database_says_how_to_create_it(postgres_server: PostgresServer) -> None:
    """A database name the server does not have: the error names it and `createdb`."""
    with pytest.raises(JournalError, match=r"does not exist: .*\(create it: createdb NAME\)"):
        async with open_journal(postgres_server.url("no_such_database")):
            pass


async def test_a_user_who_may_not_create_the_schema_is_told_what_to_grant(
    postgres_server: PostgresServer,
) -> None:
    """An empty database and a user without CREATE on it: the error names the grant."""
    url = postgres_server.create_empty_database()
    role = f"plain_{next(_roles)}_{id(url) % 10_000}"
    postgres_server.execute(f"CREATE ROLE {role} LOGIN")
    as_role = url.replace("postgres@", f"{role}@")
    with pytest.raises(JournalError, match=r"refused access: .*grant the user CREATE"):
        async with open_journal(as_role):
            pass
    postgres_server.execute(f"GRANT CREATE ON DATABASE {database_name(url)} TO {role}")
    async with open_journal(as_role) as journal:
        await journal.create_execution(record())


async def test_an_empty_database_gets_the_schema_on_first_open(
    postgres_server: PostgresServer,
) -> None:
    """No `orchestr8` schema yet: opening creates it at the current version, ready to use."""
    url = postgres_server.create_empty_database()
    async with open_journal(url) as journal:
        await journal.create_execution(record())
    with psycopg.connect(url) as connection:
        version = connection.execute("SELECT version FROM orchestr8.schema_version").fetchone()
    assert version == (SCHEMA_VERSION,)


async def test_an_older_schema_is_refused_naming_the_migrate_command(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Schema 1 (no worker or shared-state tables): open refuses and names the migration."""
    name = database_name(postgres_url)
    postgres_server.execute(
        "DROP TABLE orchestr8.leases, orchestr8.workers, orchestr8.breakers,"
        " orchestr8.limit_slots, orchestr8.rate_buckets",
        name,
    )
    postgres_server.execute("UPDATE orchestr8.schema_version SET version = 1", name)
    with pytest.raises(JournalError) as caught:
        async with open_journal(postgres_url):
            pass
    assert f"schema version 1, older than this orchestr8's ({SCHEMA_VERSION})" in str(caught.value)
    assert f"orchestr8 journal migrate --journal {postgres_url}" in str(caught.value)


async def test_a_newer_schema_is_refused_asking_for_a_newer_orchestr8(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """A schema this code does not know yet: open refuses and says to upgrade orchestr8."""
    postgres_server.execute(
        "UPDATE orchestr8.schema_version SET version = 99", database_name(postgres_url)
    )
    with pytest.raises(JournalError, match=r"schema version 99, newer .* upgrade orchestr8"):
        async with open_journal(postgres_url):
            pass


async def test_a_negative_reconnect_bound_is_refused(postgres_url: str) -> None:
    """`reconnect_within` below zero is a programming error, said at once."""
    with pytest.raises(ValueError, match="reconnect_within must not be negative"):
        async with open_journal(postgres_url, reconnect_within=-1):
            pass


async def test_forks_are_listed_oldest_first(postgres_url: str) -> None:
    """`forks_of` reads the executions forked from one, by creation time."""
    async with open_journal(postgres_url) as journal:
        await journal.create_execution(record("source"))
        for name, second in (("late", 2), ("early", 1)):
            stamp = f"2025-01-01T00:00:0{second}.000Z"
            await journal.create_execution(
                record(name, forked_from="source", fork_seq=0, created_at=stamp)
            )
        assert await journal.forks_of("source") == ["early", "late"]


async def test_a_document_another_writer_stores_meanwhile_is_shared_not_refused(
    postgres_url: str,
) -> None:
    """Two writers storing one new workflow document at once both succeed; it is kept once."""
    document = {"schema_version": "1.0", "name": "shared", "steps": []}
    async with open_journal(postgres_url) as journal:
        other = psycopg.connect(postgres_url, options="-c search_path=orchestr8")
        try:
            # The other writer's insert is in flight (uncommitted) when this journal stores its own.
            from orchestr8._journal._rules import document_digest, to_json

            text = to_json(document)
            assert text is not None
            other.execute(
                "INSERT INTO workflow_documents (digest, document, step_hashes)"
                " VALUES (%s, %s, '{}')",
                (document_digest(text), text),
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(journal.create_execution, record("mine", workflow=document))
                await blocked_on_a_lock(postgres_url)
                await trio.to_thread.run_sync(other.commit)
        finally:
            other.close()
        assert (await journal.get_execution("mine")).workflow == document
    with psycopg.connect(postgres_url, options="-c search_path=orchestr8") as check:
        assert check.execute("SELECT count(*) FROM workflow_documents").fetchone() == (1,)


async def test_a_key_another_writer_records_meanwhile_answers_with_its_holder(
    postgres_url: str,
) -> None:
    """A create racing another writer's uncommitted one with its idempotency key finds it."""
    async with open_journal(postgres_url) as journal:
        other = psycopg.connect(postgres_url, options="-c search_path=orchestr8")
        try:
            other.execute(
                "INSERT INTO executions (execution_id, workflow_name, workflow, inputs, status,"
                " created_at, idempotency_key) VALUES ('theirs', 'wf', '{}', '{}', 'pending',"
                " %s, 'order-7')",
                (TS,),
            )
            found: list[tuple[ExecutionRecord, bool]] = []

            async def create_mine() -> None:
                found.append(
                    await journal.create_or_find(record("mine", idempotency_key="order-7"))
                )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(create_mine)
                await blocked_on_a_lock(postgres_url)
                await trio.to_thread.run_sync(other.commit)
        finally:
            other.close()
        [(stored, created)] = found
        assert (stored.execution_id, created) == ("theirs", False)
        assert journal.trouble() is None
        await journal.create_execution(record("next"))  # the journal still writes


# Text PostgreSQL cannot hold, and the SQL corner cases SQLite words its own way.


async def test_text_holding_nul_is_refused_like_a_lone_surrogate(postgres_url: str) -> None:
    """NUL in a record's or an envelope's text is refused naming the field; JSON keeps it."""
    async with open_journal(postgres_url) as journal:
        with pytest.raises(JournalError, match=r"cannot be stored: its workflow_name 'w\\x00f'"):
            await journal.create_execution(record(workflow_name="w\x00f"))
        await journal.create_execution(record(inputs={"q": "a\x00b"}))
        await journal.append(event(1, text="nul \x00 inside"))
        await journal.flush()
        assert (await journal.events("run-1"))[0].data == {"text": "nul \x00 inside"}
        assert (await journal.get_execution("run-1")).inputs == {"q": "a\x00b"}

    async def append_nul_step() -> None:
        async with open_journal(postgres_url) as journal:
            await journal.append(Event("run-1", 2, TS, 0.0, "step.progress", "s\x00", 1, {}))

    with pytest.raises(JournalError, match=r"cannot be stored: its step_id 's\\x00' holds a NUL"):
        await append_nul_step()


async def test_ids_holding_nul_are_never_found(postgres_url: str) -> None:
    """No stored id or key holds NUL: every lookup of one finds nothing, as for surrogates."""
    async with open_journal(postgres_url) as journal:
        await journal.create_execution(record())
        with pytest.raises(ExecutionNotFoundError):
            await journal.get_execution("run\x00")
        with pytest.raises(ExecutionNotFoundError):
            await journal.events("run\x00")
        with pytest.raises(ExecutionNotFoundError):
            await journal.last_seq("run\x00")
        with pytest.raises(ExecutionNotFoundError):
            await journal.step_hashes("run\x00")
        with pytest.raises(ExecutionNotFoundError):
            await journal.submit_request("run\x00", "cancel", {})
        with pytest.raises(ValueError, match="NUL"):
            await journal.submit_request("run-1", "answer", {}, target="g\x00")
        assert await journal.find_by_idempotency_key("k\x00") is None
        assert await journal.forks_of("run\x00") == []
        with pytest.raises(ExecutionNotFoundError):
            await journal.matching_events("run\x00", EventQuery())
        assert await journal.requests("run\x00") == []
        assert await journal.pending_requests(["run\x00"]) == []
        assert (await journal.list_executions(workflow="w\x00")).items == ()
        with pytest.raises(ValueError, match="not a cursor"):
            await journal.list_executions(before="WyJhXHUwMDAwIiwiYiJd")  # ["a\u0000","b"]
        await journal.append(event(1, execution_id="run\x00"))
        with pytest.raises(JournalError, match="no such execution"):
            await journal.flush()
        await journal.reopen()


def test_a_copied_batch_refuses_a_missing_value_as_sqlite_words_it(postgres_url: str) -> None:
    """A batch large enough for COPY with a NULL `ts` rolls back whole, worded like SQLite."""
    store = PostgresStore.open(postgres_url)
    try:
        rows: list[Any] = [CreateRequest(record())]
        rows += [event(seq) for seq in range(1, COPY_FROM + 2)]
        rows.append(Event("run-1", COPY_FROM + 2, None, 0.0, "step.progress", "s", 1, {}))  # type: ignore[arg-type]
        outcome = store.write_batch(rows)
        assert str(outcome.failure) == (
            "writing the journal failed: NOT NULL constraint failed: events.ts"
        )
        assert store.load_execution("run-1") is None
        store.write_batch(rows[:-1])
        assert store.load_last_seq("run-1") == COPY_FROM + 1
    finally:
        store.close()


# Batch hooks: where fencing and wake-ups plug into the writer's transaction.


async def test_batch_hooks_see_each_batch_and_may_refuse_it_whole(postgres_url: str) -> None:
    """A hook runs first in each batch's transaction, given its ids; a refusal writes nothing."""
    seen: list[list[str]] = []
    refuse: list[JournalError] = []

    def hook(connection: psycopg.Connection[Any], execution_ids: Sequence[str]) -> Any:
        seen.append(list(execution_ids))
        # Its statements belong to the batch's transaction: what it locks stays locked to COMMIT.
        assert not connection.autocommit
        return refuse[0] if refuse else None

    async def scenario() -> None:
        async with open_journal(postgres_url) as journal:
            assert isinstance(journal, PostgresJournal)
            journal.add_batch_hook(hook)
            await journal.create_execution(record("a"))
            await journal.create_execution(record("b"))
            journal.append_nowait(event(1, "b"))
            journal.append_nowait(event(1, "a"))
            await journal.flush()
            refuse.append(JournalError("execution 'a' is fenced off"))
            await journal.append(event(2, "a"))
            with pytest.raises(JournalError, match="fenced off"):
                await journal.flush()
            assert await journal.last_seq("a") == 1

    with pytest.raises(JournalError, match="fenced off"):
        await scenario()
    assert seen[:3] == [["a"], ["b"], ["b", "a"]]
    assert seen[3] == ["a"]


# Lost connections: the writer stalls, retries, and resumes or fails.


async def wait_until_stalled(journal: Journal) -> None:
    """Return once the writer lost its connection and is reconnecting (real time)."""
    with trio.fail_after(30):
        while True:
            if "reconnecting" in (journal.trouble(stalled_after=0.0) or ""):
                return
            await trio.sleep(0.01)


async def test_a_cut_link_stalls_appends_which_resume_with_nothing_lost_or_repeated(
    proxy: LinkProxy, postgres_url: str
) -> None:
    """Cut mid-run, restored within the bound: every event is written exactly once, in order."""
    async with open_journal(through(proxy, postgres_url)) as journal:
        await journal.create_execution(record())
        for seq in range(1, 51):
            await journal.append(event(seq, n=seq))
        await journal.flush()
        proxy.cut()
        for seq in range(51, 101):
            await journal.append(event(seq, n=seq))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(journal.flush)
            await wait_until_stalled(journal)
            trouble = journal.trouble(stalled_after=0.0) or ""
            assert trouble.startswith("the journal is stalled: a batch has been writing for")
            assert "(lost the connection to the journal database: " in trouble
            assert trouble.endswith(f"; reconnecting to {journal.location})")
            proxy.restore()
        assert journal.trouble() is None
        events = await journal.events("run-1")
    assert [one.seq for one in events] == list(range(1, 101))
    assert [one.data["n"] for one in events] == list(range(1, 101))


async def test_the_journal_rides_out_a_database_restart(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """The server stops (sessions ended) and starts again: writes, reads, requests go on."""
    async with open_journal(postgres_url) as journal:
        await journal.create_execution(record())
        await journal.submit_request("run-1", "cancel", {})
        await journal.append(event(1))
        await journal.flush()
        postgres_server.stop("fast")
        started = False
        try:
            await journal.append(event(2))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(journal.flush)
                await wait_until_stalled(journal)
                postgres_server.start()
                started = True
        finally:
            if not started:  # the session's other tests need the server
                postgres_server.start()
        assert [one.seq for one in await journal.events("run-1")] == [1, 2]
        assert [request.kind for request in await journal.pending_requests(["run-1"])] == ["cancel"]
        await journal.submit_request("run-1", "cancel", {"again": True})
        assert len(await journal.requests("run-1")) == 2


async def test_past_the_bound_the_journal_fails_then_reads_and_reopen_recover(
    proxy: LinkProxy, postgres_url: str
) -> None:
    """Not back within `reconnect_within`: a failed journal; once back, reads and `reopen` work."""
    failures: list[JournalError] = []

    async def scenario() -> None:
        async with open_journal(through(proxy, postgres_url), reconnect_within=0.3) as journal:
            journal.on_failure(failures.append)
            await journal.create_execution(record())
            await journal.append(event(1))
            await journal.flush()
            proxy.cut()
            await journal.append(event(2))
            with pytest.raises(JournalError, match=r"did not come back within 0\.3 s"):
                await journal.flush()
            with pytest.raises(JournalError, match="cannot reach the journal database"):
                await journal.events("run-1")
            with pytest.raises(JournalError, match="the journal still cannot write"):
                await journal.reopen()
            proxy.restore()
            assert [one.seq for one in await journal.events("run-1")] == [1]
            await journal.reopen()
            await journal.append(event(2))
            await journal.flush()
            assert await journal.last_seq("run-1") == 2

    await scenario()
    assert len(failures) == 1
    assert "lost the connection to the journal database" in str(failures[0])
    assert "127.0.0.1" in str(failures[0])


class _Commits:
    """Wraps the writer's `commit`: the next one loses the connection before or after COMMIT."""

    def __init__(self, store: PostgresStore, *, after: bool) -> None:
        self.store = store
        self.after = after
        self.broken = 0

    def install(self) -> None:
        connection = self.store._writer
        commit = connection.commit

        def breaking_commit() -> None:
            if self.after:
                commit()
            self.broken += 1
            connection.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

        connection.commit = breaking_commit  # type: ignore[method-assign]


@pytest.mark.parametrize("after", [False, True])
async def test_a_batch_whose_commit_was_lost_is_written_exactly_once(
    postgres_url: str, after: bool
) -> None:
    """The connection breaks at COMMIT: a batch that committed is not written again, else it is."""
    async with open_journal(postgres_url) as journal:
        assert isinstance(journal, PostgresJournal)
        await journal.create_execution(record())
        breaker = _Commits(journal._store, after=after)
        breaker.install()
        for seq in range(1, 21):
            journal.append_nowait(event(seq, n=seq))
        await journal.flush()
        assert breaker.broken == 1
        statistics = journal.statistics()
        assert statistics.events_written == 20
        events = await journal.events("run-1")
        breaker = _Commits(journal._store, after=after)
        breaker.install()
        created, fresh = await journal.create_or_find(record("run-2", idempotency_key="k"))
        assert fresh
        assert created.execution_id == "run-2"
        assert breaker.broken == 1
        again, fresh = await journal.create_or_find(record("run-3", idempotency_key="k"))
        assert not fresh
        assert again.execution_id == "run-2"
    assert [one.data["n"] for one in events] == list(range(1, 21))


class _Unreachable:
    """A store whose connection is lost on every batch and never comes back."""

    url = "postgresql://me:pw@127.0.0.1:1/db"

    def __init__(self, clock: trio.testing.MockClock) -> None:
        self.clock = clock
        self.attempts: list[float] = []

    def write_batch(self, items: Any) -> BatchOutcome:
        raise ConnectionLost(
            psycopg.OperationalError("connection lost"),
            commit_unknown=False,
            marker=None,
            outcome=BatchOutcome(),
            seqs={},
            finished=set(),
            written=0,
        )

    def replace_writer(self) -> None:
        self.attempts.append(self.clock.current_time())  # on a worker thread
        raise JournalError("cannot reach the journal database")

    def close(self) -> None:
        pass


async def test_reconnecting_backs_off_exponentially_up_to_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Waits double from 0.1 s to at most 2 s; past `RECONNECT_WITHIN` the batch fails."""
    store: Any = _Unreachable(autojump_clock)
    journal = PostgresJournal(store, queue_size=8, close_timeout=5.0)
    outcome = await journal._write([event(1)])
    waits = [FIRST_RETRY_DELAY * 2**index for index in range(5)]
    expected = list(itertools.accumulate(waits))
    while expected[-1] + LONGEST_RETRY_DELAY <= RECONNECT_WITHIN:
        expected.append(expected[-1] + LONGEST_RETRY_DELAY)
    assert store.attempts == pytest.approx(expected)
    assert outcome.failure is not None
    assert "did not come back within 30 s (cannot reach the journal database)" in str(
        outcome.failure
    )
    assert "me:***@127.0.0.1:1/db" in str(outcome.failure)


async def test_a_hook_whose_sql_fails_fails_the_batch_with_the_servers_words(
    postgres_url: str,
) -> None:
    """An error the database raises inside a batch rolls it back and fails the journal."""

    def broken(connection: psycopg.Connection[Any], execution_ids: Sequence[str]) -> Any:
        connection.execute("SELECT * FROM no_such_table")

    async def scenario() -> None:
        async with open_journal(postgres_url) as journal:
            assert isinstance(journal, PostgresJournal)
            await journal.create_execution(record())
            journal.add_batch_hook(broken)
            await journal.append(event(1))
            with pytest.raises(JournalError, match='relation "no_such_table" does not exist'):
                await journal.flush()
            assert await journal.last_seq("run-1") == 0

    with pytest.raises(JournalError, match="writing the journal failed"):
        await scenario()


class _LosingConnection:
    """Makes the control connection's next `execute` (or `commit`) lose the connection."""

    def __init__(self, journal: PostgresJournal, method: str) -> None:
        assert journal._requests is not None
        self.connection = journal._requests._connection
        original = getattr(self.connection, method)

        def lose(*arguments: Any) -> Any:
            if method == "commit":
                original()
            setattr(self.connection, method, original)
            self.connection.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

        setattr(self.connection, method, lose)


async def test_a_request_whose_connection_broke_before_commit_is_recorded_once(
    postgres_url: str,
) -> None:
    """Lost before COMMIT: the submit is asked again on a fresh connection, recorded once."""
    async with open_journal(postgres_url) as journal:
        assert isinstance(journal, PostgresJournal)
        await journal.create_execution(record())
        await journal.requests("run-1")
        _LosingConnection(journal, "execute")
        sent = await journal.submit_request("run-1", "cancel", {"reason": "r"})
        assert [request.request_id for request in await journal.requests("run-1")] == [
            sent.request_id
        ]


async def test_a_request_whose_commit_was_lost_is_reported_unknown(postgres_url: str) -> None:
    """Lost at COMMIT: the caller is told the outcome is unknown; the journal keeps working."""
    async with open_journal(postgres_url) as journal:
        assert isinstance(journal, PostgresJournal)
        await journal.create_execution(record())
        await journal.requests("run-1")
        _LosingConnection(journal, "commit")
        with pytest.raises(JournalError, match="whether the request was recorded is unknown"):
            await journal.submit_request("run-1", "cancel", {})
        assert len(await journal.requests("run-1")) == 1
        assert not journal.statistics().failed


async def test_a_settle_detail_holding_nul_is_kept_escaped(postgres_url: str) -> None:
    """The owner's detail is its own text: a NUL in it is stored as the characters \\x00."""
    async with open_journal(postgres_url) as journal:
        await journal.create_execution(record())
        request = await journal.submit_request("run-1", "cancel", {})
        await journal.settle_request(request.request_id, "refused", "odd \x00 detail")
        (settled,) = await journal.requests("run-1")
    assert settled.detail == "odd \\x00 detail"


async def test_reopen_refuses_a_database_whose_schema_changed_meanwhile(
    postgres_server: PostgresServer, proxy: LinkProxy, postgres_url: str
) -> None:
    """A failed journal reopens only on a database it can still use; the error says why."""

    async def scenario() -> None:
        async with open_journal(through(proxy, postgres_url), reconnect_within=0.0) as journal:
            await journal.create_execution(record())
            proxy.cut()
            await journal.append(event(1))
            with pytest.raises(JournalError, match="did not come back"):
                await journal.flush()
            proxy.restore()
            postgres_server.execute(
                "UPDATE orchestr8.schema_version SET version = 99", database_name(postgres_url)
            )
            with pytest.raises(JournalError, match=r"still cannot write: .*schema version 99"):
                await journal.reopen()

    with pytest.raises(JournalError, match="did not come back"):
        await scenario()


# End to end: real executions on a PostgreSQL journal.

ROOT = Path(__file__).resolve().parents[2]


async def test_hello_and_a_200_step_fan_out_run_on_postgres(postgres_url: str) -> None:
    """examples/hello.json and a parallel workflow of 200 steps run and read back whole."""
    hello = json.loads((ROOT / "examples" / "hello.json").read_text())
    fan_out = {
        "schema_version": "1.0",
        "name": "wide",
        "strategy": "parallel",
        "steps": [{"id": f"s{index}", "agent": "echo", "input": index} for index in range(200)],
    }
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        greeted = await runtime.start(hello, {"name": "pg"})
        assert (await greeted.wait()).output == {"message": "Hello, pg!"}
        wide = await runtime.start(fan_out, {})
        assert (await wide.wait()).status == "succeeded"
        await journal.flush()
        events = await journal.events(wide.execution_id)
        state = replay(events)
        record_read = await journal.get_execution(wide.execution_id)
    assert [one.seq for one in events] == list(range(1, len(events) + 1))
    assert sum(one.type == "step.succeeded" for one in events) == 200
    assert {step.status for step in state.steps.values()} == {"succeeded"}
    assert record_read.status == "succeeded"


_KILLED_RUN = """
import sys, trio
from pathlib import Path
from orchestr8 import open_runtime
from orchestr8._journal._journal import open_journal

async def mark(input, context):
    with Path(sys.argv[2]).open("a") as marks:
        marks.write(context.step_id + "\\n")
    return input

async def block(input, context):
    await JOURNAL[0].flush()  # the five successes are durable before the kill
    print("blocked", flush=True)
    await trio.sleep_forever()

WORKFLOW = {
    "schema_version": "1.0",
    "name": "killed",
    "strategy": "parallel",
    "steps": [
        *({"id": f"m{index}", "agent": "mark", "input": index} for index in range(5)),
        {"id": "last", "agent": "block", "depends_on": [f"m{index}" for index in range(5)]},
    ],
}

JOURNAL = []

async def main(url):
    async with open_journal(url) as journal:
        JOURNAL.append(journal)
        async with open_runtime(journal=journal, agents={"mark": mark, "block": block}) as runtime:
            handle = await runtime.start(WORKFLOW, {})
            print(handle.execution_id, flush=True)
            await handle.wait()

trio.run(main, sys.argv[1])
"""


async def test_an_execution_killed_mid_run_resumes_without_rerunning_its_steps(
    postgres_url: str, tmp_path: Path
) -> None:
    """SIGKILL while the last step runs: resume reuses the five succeeded steps, runs the last."""
    marks = tmp_path / "marks.txt"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", _KILLED_RUN, postgres_url, str(marks)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    output = b""
    with trio.fail_after(30):
        while b"blocked" not in output:
            chunk = await process.stdout.receive_some()
            assert chunk, "the run exited before its last step"
            output += chunk
        process.kill()
        await process.wait()
    await process.stdout.aclose()
    execution_id = output.split()[0].decode()

    async def mark(input: Any, context: Any) -> Any:
        with marks.open("a") as written:
            written.write(f"{context.step_id}\n")
        return input

    async def last(input: Any, context: Any) -> Any:
        return "done"

    async with (
        open_journal(postgres_url) as journal,
        open_runtime(journal=journal, agents={"mark": mark, "block": last}) as runtime,
    ):
        handle = await runtime.resume(execution_id)
        result = await handle.wait()
        events = await journal.events(execution_id)
    assert result.status == "succeeded"
    assert sorted(marks.read_text().split()) == [f"m{index}" for index in range(5)]
    assert [one.seq for one in events] == list(range(1, len(events) + 1))
    assert sum(one.type == "execution.resumed" for one in events) == 1


class _UnreadableItems(dict[str, Any]):
    """A mapping whose items cannot be read: encoding it raises neither TypeError nor ValueError."""

    def items(self) -> Any:
        raise RuntimeError("items are gone")


async def test_an_unexpected_error_leaves_no_transaction_open(postgres_url: str) -> None:
    """A batch failing on something no store reports ends its transaction: no locks are kept."""

    async def scenario() -> None:
        async with open_journal(postgres_url) as journal:
            assert isinstance(journal, PostgresJournal)
            await journal.create_execution(record())
            await journal.append(event(1, nested=_UnreadableItems(a=1)))
            with pytest.raises(JournalError, match="RuntimeError: items are gone"):
                await journal.flush()
            status = journal._store._writer.info.transaction_status
            assert status == psycopg.pq.TransactionStatus.IDLE

    with pytest.raises(JournalError, match="items are gone"):
        await scenario()


async def test_a_run_whose_database_stays_away_stops_and_resumes_once_it_is_back(
    proxy: LinkProxy, postgres_url: str
) -> None:
    """Past the bound the execution stops as on a failed SQLite write; after `reopen` it resumes."""
    ran: list[str] = []
    workflow = {
        "schema_version": "1.0",
        "name": "cut",
        "steps": [
            {"id": "a", "agent": "mark"},
            {"id": "cut", "agent": "cut", "depends_on": ["a"]},
            {"id": "b", "agent": "mark", "depends_on": ["cut"]},
        ],
    }
    async with open_journal(through(proxy, postgres_url), reconnect_within=0.3) as journal:

        async def mark(input: Any, context: Any) -> Any:
            ran.append(context.step_id)
            return context.step_id

        async def cut(input: Any, context: Any) -> Any:
            await journal.flush()  # step a's success is durable
            proxy.cut()
            return "cut"

        stopped: list[str] = []

        async def run_until_stopped() -> None:
            async with open_runtime(journal=journal, agents={"mark": mark, "cut": cut}) as runtime:
                handle = await runtime.start(workflow, {})
                stopped.append(handle.execution_id)
                with pytest.raises(JournalError, match=r"stopped: the journal failed: .*within 0"):
                    await handle.wait()

        with pytest.raises(JournalError, match="did not come back"):
            await run_until_stopped()
        before_resume = len(ran)
        proxy.restore()
        await journal.reopen()
        async with open_runtime(journal=journal, agents={"mark": mark, "cut": mark}) as runtime:
            resumed = await runtime.resume(stopped[0])
            assert (await resumed.wait()).status == "succeeded"
            events = await journal.events(stopped[0])
    # Step a's success was durable: it is reused. What ran after the link was cut (b may have,
    # within the journal's lag cap) was never recorded, so it runs again: at least once.
    assert ran[0] == "a"
    assert ran[before_resume:] == ["cut", "b"]
    assert [one.seq for one in events] == list(range(1, len(events) + 1))
    assert replay(events).status == "succeeded"
