"""Specifications of `EventQuery` and `Journal.matching_events`, alike in every store."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from postgres_server import PostgresServer

from orchestr8._errors import ExecutionNotFoundError
from orchestr8._journal._event_query import EventQuery, unknown_event_types
from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import ExecutionRecord, open_journal

TS = "2025-01-01T00:00:00.000Z"
STEPS = [None, "a", "a[0]", "a[1]", "a#2", "a#2[3]", "ab", "a_b", "b", "a%"]
NUMBERS = itertools.count()
TYPES = [EventType.STEP_STARTED, EventType.STEP_PROGRESS, EventType.STEP_FAILED]


def events(steps: list[str | None]) -> list[Event]:
    """Events numbered from 1, one per step id, cycling through a few types."""
    return [
        Event("run-1", seq, TS, seq / 10, TYPES[seq % len(TYPES)], step, None, {})
        for seq, step in enumerate(steps, 1)
    ]


def expected(appended: list[Event], query: EventQuery) -> list[Event]:
    """What a query answers, worked out the slow way."""
    found = [event for event in appended if query.matches(event)]
    found = found[::-1] if query.descending else found
    return found if query.limit is None else found[: query.limit]


async def read(
    tmp_path: Path, store: str, appended: list[Event], queries: list[EventQuery]
) -> list[list[Event]]:
    """Append the events to a fresh journal of one kind, then answer each query.

    `store` is "sqlite", "memory", or the URL of a fresh PostgreSQL database.
    """
    path: Path | str | None = (
        tmp_path / f"journal-{next(NUMBERS)}.db" if store == "sqlite" else None
    )
    if store.startswith("postgresql://"):
        path = store
    async with open_journal(path) as journal:
        workflow = {"schema_version": "1.0", "name": "wf", "steps": []}
        await journal.create_execution(
            ExecutionRecord(execution_id="run-1", workflow=workflow, workflow_name="wf")
        )
        for event in appended:
            await journal.append(event)
        await journal.flush()
        return [await journal.matching_events("run-1", query) for query in queries]


def test_a_step_filter_takes_its_items_and_iterations_but_not_lookalikes() -> None:
    """`step=a` matches `a`, `a[0]`, `a#2`, `a#2[3]`; not `ab`, `a_b`, `a%` or no step."""
    query = EventQuery(step="a")
    assert [step for step in STEPS if query.matches_step(step)] == [
        "a",
        "a[0]",
        "a[1]",
        "a#2",
        "a#2[3]",
    ]


def test_unknown_event_types_are_named_in_order() -> None:
    """Only the names that are not event types come back, in the order given."""
    assert unknown_event_types(["step.failed", "nope", "step.started", "x.y"]) == ["nope", "x.y"]


def test_the_postgresql_dialect_differs_only_in_its_parameter_marks() -> None:
    """The same conditions, order and limit in both dialects: `?` for SQLite, `%s` for psycopg."""
    query = EventQuery(after=2, before=9, types=frozenset({"a", "b"}), step="s", limit=4)
    sqlite, parameters = query.sql()
    assert sqlite == (
        "seq > ? AND seq < ? AND type IN (?, ?) AND (step_id = ? OR substr(step_id, 1, ?) IN"
        " (?, ?)) ORDER BY seq LIMIT ?"
    )
    assert query.sql("postgresql") == (sqlite.replace("?", "%s"), parameters)


def test_a_limit_below_one_is_refused() -> None:
    """A query for no events at all is a mistake, said at once."""
    with pytest.raises(ValueError, match="limit must be at least 1"):
        EventQuery(limit=0)


def where(store: str, request: pytest.FixtureRequest) -> str:
    """The `store` argument of `read`: the kind, or a fresh database's URL for PostgreSQL."""
    return str(request.getfixturevalue("postgres_url")) if store == "postgresql" else store


@pytest.mark.parametrize("store", ["sqlite", "memory", "postgresql"])
async def test_newest_first_pages_with_before(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """`descending` with `before` walks back from the newest event, a page at a time."""
    store = where(store, request)
    appended = events(["a"] * 7)
    first, second, third = await read(
        tmp_path,
        store,
        appended,
        [
            EventQuery(descending=True, limit=3),
            EventQuery(descending=True, before=5, limit=3),
            EventQuery(descending=True, before=2, limit=3),
        ],
    )
    assert [event.seq for event in first] == [7, 6, 5]
    assert [event.seq for event in second] == [4, 3, 2]
    assert [event.seq for event in third] == [1]


@pytest.mark.parametrize("store", ["sqlite", "memory", "postgresql"])
async def test_types_and_step_filter_in_every_store(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """A type set and a step id narrow the events the same way in every store."""
    store = where(store, request)
    appended = events(STEPS)
    query = EventQuery(types=frozenset({EventType.STEP_STARTED}), step="a")
    [found] = await read(tmp_path, store, appended, [query])
    assert found == expected(appended, query)
    assert {event.type for event in found} == {EventType.STEP_STARTED}


@pytest.mark.parametrize("store", ["sqlite", "memory", "postgresql"])
async def test_an_unknown_execution_is_not_found(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """Asking for the events of no execution raises, as `Journal.events` does."""
    path: Path | str | None = tmp_path / "journal.db" if store == "sqlite" else None
    if store == "postgresql":
        path = where(store, request)
    async with open_journal(path) as journal:
        with pytest.raises(ExecutionNotFoundError, match="nope"):
            await journal.matching_events("nope", EventQuery())
        with pytest.raises(ExecutionNotFoundError):
            await journal.matching_events("\ud800", EventQuery())


queries = st.builds(
    EventQuery,
    after=st.integers(0, 12),
    before=st.none() | st.integers(1, 14),
    types=st.none() | st.frozensets(st.sampled_from([str(kind) for kind in TYPES]), min_size=1),
    step=st.none() | st.sampled_from(["a", "a#2", "b", "a%", "a_b"]),
    descending=st.booleans(),
    limit=st.none() | st.integers(1, 5),
)


@settings(max_examples=30, deadline=None)
@given(
    steps=st.lists(st.sampled_from(STEPS), max_size=12),
    asked=st.lists(queries, min_size=1, max_size=6),
)
async def test_sql_and_memory_answer_every_query_alike(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    steps: list[str | None],
    asked: list[EventQuery],
) -> None:
    """Whatever the events and the query, every store answers what `EventQuery.matches` says."""
    appended = events(steps)
    tmp_path = tmp_path_factory.mktemp("query")
    in_sqlite = await read(tmp_path, "sqlite", appended, asked)
    in_memory = await read(tmp_path, "memory", appended, asked)
    in_postgres = await read(tmp_path, postgres_server.create_database(), appended, asked)
    wanted = [expected(appended, query) for query in asked]
    assert in_sqlite == wanted
    assert in_memory == wanted
    assert in_postgres == wanted
