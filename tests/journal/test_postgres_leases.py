"""Execution leases on a real PostgreSQL: claims, renewals, the queue, dead holders and fencing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestr8._errors import JournalError
from orchestr8._journal import _postgres_leases as leases
from orchestr8._journal._postgres_schema import connect

TTL = 30.0


@pytest.fixture
def connections(postgres_url: str) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """Opens connections to the test's database, and closes them after the test."""
    opened: list[psycopg.Connection[Any]] = []

    def open_one() -> psycopg.Connection[Any]:
        connection = connect(postgres_url, purpose="orchestr8 test leases")
        opened.append(connection)
        return connection

    yield open_one
    for connection in opened:
        connection.close()


def record(connection: psycopg.Connection[Any], *execution_ids: str) -> None:
    """Insert bare execution records, as the journal would, for leases to refer to."""
    for execution_id in execution_ids:
        connection.execute(
            "INSERT INTO executions (execution_id, workflow_name, workflow, inputs, status,"
            " created_at) VALUES (%s, 'w', '{}', '{}', 'pending', '2026-01-01T00:00:00Z')",
            (execution_id,),
        )


def registered(connection: psycopg.Connection[Any], holder: str) -> psycopg.Connection[Any]:
    """The connection, with `holder` registered on its session."""
    leases.register_worker(connection, holder, name=holder, host="test", pid=1, concurrency=2)
    return connection


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll the database state until `condition` holds (PostgreSQL notices closes on its own)."""
    for _ in range(400):
        if condition():
            return
        time.sleep(0.025)
    raise AssertionError("the database never reached the expected state")


def test_acquire_refuses_a_live_lease_and_raises_the_epoch_on_a_takeover(
    connections: Callable[[], psycopg.Connection[Any]],
) -> None:
    """A live lease refuses every other claim (its holder's too); a released one goes at epoch+1."""
    first = registered(connections(), "a")
    second = registered(connections(), "b")
    record(first, "e1")
    assert leases.acquire(first, "e1", "a", TTL) == 1
    assert leases.acquire(second, "e1", "b", TTL) is None
    assert leases.acquire(first, "e1", "a", TTL) is None
    assert leases.held(second, ["e1", "unknown"]) == {"e1"}
    assert leases.release(first, "e1", "a")
    assert not leases.release(first, "e1", "a")
    assert leases.held(second, ["e1"]) == frozenset()
    assert leases.acquire(second, "e1", "b", TTL) == 2


def test_an_expired_lease_is_lost_to_its_holder_and_free_for_others(
    connections: Callable[[], psycopg.Connection[Any]],
) -> None:
    """A lease nobody renews in time expires: renewal skips it, another holder takes it."""
    first = registered(connections(), "a")
    second = registered(connections(), "b")
    record(first, "e1", "e2")
    assert leases.acquire(first, "e1", "a", 0.2) == 1
    assert leases.acquire(first, "e2", "a", TTL) == 1
    wait_until(lambda: leases.held(second, ["e1"]) == frozenset())
    assert leases.renew(first, "a", TTL) == {"e2"}
    assert leases.acquire(second, "e1", "b", TTL) == 2


def test_a_holder_whose_session_ended_is_dead_before_its_leases_expire(
    connections: Callable[[], psycopg.Connection[Any]],
) -> None:
    """Closing the registered session frees its leases at once, long before the TTL."""
    first = registered(connections(), "a")
    second = registered(connections(), "b")
    record(second, "e1")
    assert leases.acquire(first, "e1", "a", 3600.0) == 1
    first.close()
    wait_until(lambda: leases.held(second, ["e1"]) == frozenset())
    assert leases.acquire(second, "e1", "b", TTL) == 2


def test_a_stopped_holder_is_dead_and_an_unregistered_one_never_lives(
    connections: Callable[[], psycopg.Connection[Any]],
) -> None:
    """`stop_worker` frees the holder's leases; a holder never registered holds nothing."""
    first = registered(connections(), "a")
    record(first, "e1", "e2")
    assert leases.acquire(first, "e1", "a", TTL) == 1
    leases.stop_worker(first, "a")
    assert leases.held(first, ["e1"]) == frozenset()
    assert leases.acquire(first, "e2", "ghost", TTL) == 1
    assert leases.held(first, ["e2"]) == frozenset()
    registered(first, "a")
    assert leases.held(first, ["e1"]) == {"e1"}


def test_a_holder_logged_in_as_another_role_is_alive(
    connections: Callable[[], psycopg.Connection[Any]], postgres_url: str
) -> None:
    """A live holder of another role keeps its lease, though its session's start is hidden."""
    admin = connections()
    record(admin, "e1")
    roles = []
    for role in ("worker_a", "worker_b"):
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT USAGE ON SCHEMA orchestr8 TO {role}")
        admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA orchestr8 TO {role}")
        roles.append(connect(postgres_url.replace("postgres@", f"{role}@"), purpose="role test"))
    first, second = roles
    try:
        registered(first, "a")
        registered(second, "b")
        assert leases.acquire(first, "e1", "a", TTL) == 1
        assert leases.acquire(second, "e1", "b", TTL) is None
        assert leases.held(second, ["e1"]) == {"e1"}
        first.close()
        wait_until(lambda: leases.held(second, ["e1"]) == frozenset())
        assert leases.acquire(second, "e1", "b", TTL) == 2
    finally:
        for connection in roles:
            connection.close()


def test_the_workers_table_lists_only_holders_that_may_still_run(
    connections: Callable[[], psycopg.Connection[Any]],
) -> None:
    """A stopped holder's row goes at once; a killed one's goes at the next registration."""
    watcher = connections()
    stopped = registered(connections(), "stopped")
    killed = registered(connections(), "killed")
    leases.stop_worker(stopped, "stopped")
    killed_session = killed.info.backend_pid
    killed.close()

    def holders() -> list[str]:
        rows = watcher.execute("SELECT holder FROM workers ORDER BY holder").fetchall()
        return [row[0] for row in rows]

    assert "stopped" not in holders()
    wait_until(lambda: _gone(watcher, killed_session))
    registered(connections(), "new")
    assert holders() == ["new"]


def _gone(watcher: psycopg.Connection[Any], session: int) -> bool:
    """Whether the server no longer lists the session (its connection was closed)."""
    row = watcher.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (session,)
    ).fetchone()
    return row == (0,)


def test_workers_claim_queued_executions_oldest_first_without_sharing_one(
    connections: Callable[[], psycopg.Connection[Any]],
) -> None:
    """`claim_queued` takes free queued executions in submission order, each by one worker."""
    first = registered(connections(), "a")
    second = registered(connections(), "b")
    record(first, "e1", "e2", "e3")
    for execution_id in ("e2", "e1", "e3"):
        leases.submit(first, execution_id)
    assert leases.queued_count(first) == 3
    assert leases.queued(first, ["e1", "nope"]) == {"e1"}
    assert leases.queued(first, []) == frozenset()
    assert leases.claim_queued(first, "a", TTL, 0) == []
    assert [claim.execution_id for claim in leases.claim_queued(first, "a", TTL, 2)] == [
        "e1",
        "e2",
    ]
    claimed = leases.claim_queued(second, "b", TTL, 5)
    assert claimed == [leases.Claim("e3", 1, 1)]
    assert leases.claim_queued(second, "b", TTL, 5) == []
    assert leases.release(first, "e1", "a")
    assert leases.claim_queued(second, "b", TTL, 5) == [leases.Claim("e1", 2, 2)]
    leases.finish(second, "e1")
    first.execute("UPDATE executions SET status = 'succeeded' WHERE execution_id = 'e2'")
    assert leases.release(first, "e2", "a")
    assert leases.claim_queued(second, "b", TTL, 5) == []
    assert leases.queued_count(first) == 1


def test_submit_and_a_queued_release_notify_the_workers(
    connections: Callable[[], psycopg.Connection[Any]],
) -> None:
    """Workers listening on `orchestr8_work` are woken by a submit and by a release kept queued."""
    listener = connections()
    listener.execute(f"LISTEN {leases.WORK_CHANNEL}")
    sender = registered(connections(), "a")
    record(sender, "e1")
    leases.submit(sender, "e1")
    assert [note.channel for note in listener.notifies(timeout=5, stop_after=1)] == [
        leases.WORK_CHANNEL
    ]
    leases.claim_queued(sender, "a", TTL, 1)
    leases.release(sender, "e1", "a")
    assert len(list(listener.notifies(timeout=5, stop_after=1))) == 1


def test_the_fence_passes_only_the_live_holder_at_its_epoch(
    connections: Callable[[], psycopg.Connection[Any]],
) -> None:
    """A batch passes the fence only for its lease's holder, at the current epoch, while live."""
    first = registered(connections(), "a")
    second = registered(connections(), "b")
    record(first, "e1", "free")
    fencing = leases.Fencing("a")
    fencing.hold("e1", leases.acquire(first, "e1", "a", TTL) or 0)
    with first.transaction():
        fencing.check(first, ["e1", "free"])
    fencing.check(first, [])
    leases.stop_worker(first, "a")
    assert leases.acquire(second, "e1", "b", TTL) == 2
    with pytest.raises(JournalError, match=r"epoch 1 held here, now epoch 2 held by b"):
        fencing.check(first, ["e1"])
    fencing.drop("e1")
    with pytest.raises(JournalError, match="holds no lease on it"):
        fencing.check(first, ["e1"])
    other = leases.Fencing("b", {"e1": 2})
    second.execute("UPDATE leases SET expires_at = now() - interval '1 second'")
    with pytest.raises(JournalError, match="expired before this write"):
        other.check(second, ["e1"])


def test_a_lease_ttl_must_be_positive(connections: Callable[[], psycopg.Connection[Any]]) -> None:
    """A zero or negative TTL is refused before any SQL runs."""
    with pytest.raises(ValueError, match="positive number of seconds"):
        leases.acquire(connections(), "e1", "a", 0)


HOLDERS = ("a", "b", "c")
EXECUTIONS = ("e1", "e2")
operations = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from(HOLDERS), st.sampled_from(EXECUTIONS)),
        st.tuples(st.just("claim"), st.sampled_from(HOLDERS), st.integers(1, 2)),
        st.tuples(st.just("renew"), st.sampled_from(HOLDERS), st.none()),
        st.tuples(st.just("expire"), st.sampled_from(HOLDERS), st.none()),
        st.tuples(st.just("release"), st.sampled_from(HOLDERS), st.sampled_from(EXECUTIONS)),
        st.tuples(st.just("stop"), st.sampled_from(HOLDERS), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=40)
@given(operations)
def test_interleaved_claims_keep_one_live_writer_and_growing_epochs(
    postgres_server: Any, steps: list[tuple[str, str, Any]]
) -> None:
    """Any interleaving of claims, renewals, expiries and releases by several holders leaves at
    most one holder passing the fence per execution, and every claim's epoch beats the last."""
    url = postgres_server.url(_property_database(postgres_server))
    with psycopg.connect(url, autocommit=True, options="-c search_path=orchestr8") as admin:
        admin.execute("TRUNCATE leases, workers, executions CASCADE")
        record(admin, *EXECUTIONS)
        opened = {holder: connect(url, purpose="orchestr8 test") for holder in HOLDERS}
        try:
            fences = {holder: leases.Fencing(holder) for holder in HOLDERS}
            for holder, connection in opened.items():
                registered(connection, holder)
                connection.execute(f"LISTEN {leases.WORK_CHANNEL}")
            last_epoch = dict.fromkeys(EXECUTIONS, 0)
            for action, holder, argument in steps:
                connection, fence = opened[holder], fences[holder]
                won: list[tuple[str, int]] = []
                if action == "acquire":
                    epoch = leases.acquire(connection, argument, holder, TTL)
                    if epoch is not None:
                        won.append((argument, epoch))
                elif action == "claim":
                    for execution_id in EXECUTIONS:
                        admin.execute(
                            "UPDATE leases SET queued = true, submitted_at = now()"
                            " WHERE execution_id = %s",
                            (execution_id,),
                        )
                    won = [
                        (claim.execution_id, claim.epoch)
                        for claim in leases.claim_queued(connection, holder, TTL, argument)
                    ]
                elif action == "renew":
                    still = leases.renew(connection, holder, TTL)
                    for execution_id in list(fence.epochs):
                        if execution_id not in still:
                            fence.drop(execution_id)
                elif action == "expire":
                    admin.execute(
                        "UPDATE leases SET expires_at = now() - interval '1 second'"
                        " WHERE holder = %s",
                        (holder,),
                    )
                elif action == "release":
                    leases.release(connection, argument, holder)
                    fence.drop(argument)
                else:
                    leases.stop_worker(connection, holder)
                    registered(connection, holder)
                for execution_id, epoch in won:
                    assert epoch > last_epoch[execution_id]
                    last_epoch[execution_id] = epoch
                    fence.hold(execution_id, epoch)
                for execution_id in EXECUTIONS:
                    passing = [
                        name
                        for name, other in fences.items()
                        if execution_id in other.epochs
                        and _passes(other, opened[name], execution_id)
                    ]
                    assert len(passing) <= 1
                    assert (leases.held(admin, [execution_id]) == {execution_id}) == bool(passing)
        finally:
            for connection in opened.values():
                connection.close()


def _passes(fence: leases.Fencing, connection: psycopg.Connection[Any], execution_id: str) -> bool:
    """Whether a batch of the execution written under `fence` would commit."""
    try:
        with connection.transaction():
            fence.check(connection, [execution_id])
    except JournalError:
        return False
    return True


_databases: dict[int, str] = {}


def _property_database(server: Any) -> str:
    """One database for every example of the property test (the examples truncate it)."""
    if id(server) not in _databases:
        _databases[id(server)] = server.create_database().rsplit("/", 1)[1]
    return _databases[id(server)]
