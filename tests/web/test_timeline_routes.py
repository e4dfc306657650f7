"""`GET /executions/{id}/timeline`, the journal's filters and `state?since=` over a real runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from documented_reads import get_documented as get
from quart.typing import TestClientProtocol as Client

from orchestr8 import Runtime, open_runtime
from orchestr8._journal._timeline_rows import timeline_rows
from orchestr8._web._app import create_app

RETRIED = {
    "schema_version": "1.0",
    "name": "retried",
    "steps": [
        {"id": "first", "agent": "echo", "input": "hello"},
        {
            "id": "flaky",
            "agent": {"id": "fail", "config": {"times": 1}},
            "depends_on": ["first"],
            "input": "x",
            "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.01}},
        },
    ],
}
TIMELINE = "/executions/{execution_id}/timeline"
JOURNAL = "/executions/{execution_id}/journal"
STATE = "/executions/{execution_id}/state"


@pytest.fixture(params=["memory", "sqlite"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    journal = None if request.param == "memory" else tmp_path / "journal.db"
    async with open_runtime(journal=journal) as opened:
        yield opened


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return create_app(runtime).test_client()


async def finished(runtime: Runtime) -> str:
    handle = await runtime.start(RETRIED, {})
    await handle.wait()
    await runtime.journal.flush()
    return handle.execution_id


async def test_the_timeline_is_the_row_model_of_inspect_timeline(
    client: Client, runtime: Runtime
) -> None:
    """The JSON is `timeline_rows` of the journal: a failed attempt, a wait, then success."""
    execution_id = await finished(runtime)
    status, document = await get(client, f"/executions/{execution_id}/timeline", TIMELINE)
    events = await runtime.journal.events(execution_id)
    assert status == 200
    assert document["status"] == "succeeded"
    assert document["last_seq"] == len(events)
    assert {key: document[key] for key in ("rows", "total_rows", "span")} == {
        key: timeline_rows(events).to_json()[key] for key in ("rows", "total_rows", "span")
    }
    flaky = document["rows"][1]
    assert [(segment["kind"], segment["attempt"]) for segment in flaky["segments"]] == [
        ("failed", 1),
        ("wait", 1),
        ("attempt", 2),
    ]


async def test_timeline_rows_are_paged(client: Client, runtime: Runtime) -> None:
    """`offset` and `limit` give a slice of the rows; `total_rows` counts them all."""
    execution_id = await finished(runtime)
    _, document = await get(
        client, f"/executions/{execution_id}/timeline?offset=1&limit=1", TIMELINE
    )
    assert [row["step_id"] for row in document["rows"]] == ["flaky"]
    assert (document["offset"], document["total_rows"]) == (1, 2)


@pytest.mark.parametrize("query", ["offset=-1", "limit=0", "limit=10001", "offset=x"])
async def test_bad_timeline_parameters_are_400_naming_them(
    client: Client, runtime: Runtime, query: str
) -> None:
    """A bad `offset` or `limit` is a 400 problem whose path is the parameter."""
    execution_id = await finished(runtime)
    status, document = await get(client, f"/executions/{execution_id}/timeline?{query}", TIMELINE)
    assert status == 400
    assert document["errors"][0]["path"] == query.split("=")[0]


async def test_the_timeline_of_an_unknown_execution_is_404(client: Client) -> None:
    """No execution, no timeline: a 404 problem."""
    status, _ = await get(client, "/executions/nope/timeline", TIMELINE)
    assert status == 404


async def test_the_journal_pages_newest_first_with_before(client: Client, runtime: Runtime) -> None:
    """`order=desc` starts at the last event; `next_before` fetches the older page."""
    execution_id = await finished(runtime)
    last = await runtime.journal.last_seq(execution_id)
    url = f"/executions/{execution_id}/journal?order=desc"
    _, first = await get(client, f"{url}&limit=3", JOURNAL)
    assert [event["seq"] for event in first["events"]] == [last, last - 1, last - 2]
    assert (first["has_more"], first["next_before"]) == (True, last - 2)
    _, rest = await get(client, f"{url}&before={first['next_before']}", JOURNAL)
    assert [event["seq"] for event in rest["events"]] == list(range(last - 3, 0, -1))
    assert (rest["has_more"], rest["next_before"]) == (False, 1)


async def test_the_journal_filters_by_type_and_step(client: Client, runtime: Runtime) -> None:
    """`type` (comma list or repeated) and `step` keep only the matching events."""
    execution_id = await finished(runtime)
    base = f"/executions/{execution_id}/journal"
    _, failures = await get(client, f"{base}?type=attempt.failed,retry.scheduled", JOURNAL)
    assert [event["type"] for event in failures["events"]] == ["attempt.failed", "retry.scheduled"]
    _, repeated = await get(
        client, f"{base}?type=attempt.failed&type=retry.scheduled&order=desc", JOURNAL
    )
    assert [event["type"] for event in repeated["events"]] == ["retry.scheduled", "attempt.failed"]
    _, flaky = await get(client, f"{base}?step=flaky", JOURNAL)
    assert {event["step_id"] for event in flaky["events"]} == {"flaky"}
    assert flaky["next_after"] == flaky["events"][-1]["seq"]


@pytest.mark.parametrize(
    ("query", "path", "words"),
    [
        ("type=step.failed,nope", "type", "unknown event type 'nope'"),
        ("type=,", "type", "expected event types"),
        ("step=", "step", "expected a step id"),
        ("order=up", "order", "expected asc or desc"),
        ("before=0", "before", "from 1"),
    ],
)
async def test_bad_journal_filters_are_400_naming_them(
    client: Client, runtime: Runtime, query: str, path: str, words: str
) -> None:
    """Each bad filter is a 400 problem naming the parameter and what is wrong with it."""
    execution_id = await finished(runtime)
    status, document = await get(client, f"/executions/{execution_id}/journal?{query}", JOURNAL)
    assert status == 400
    assert document["errors"][0]["path"] == path
    assert words in document["detail"]


async def test_state_since_adds_what_changed(client: Client, runtime: Runtime) -> None:
    """`since=SEQ2` adds `changes`: the `inspect --diff` document from SEQ2 to `at`."""
    execution_id = await finished(runtime)
    events = await runtime.journal.events(execution_id)
    failed = next(event.seq for event in events if event.type == "attempt.failed")
    url = f"/executions/{execution_id}/state?at={failed}&since={failed - 1}"
    status, document = await get(client, url, STATE)
    assert status == 200
    changes = document["changes"]
    assert (changes["from"], changes["to"]) == (failed - 1, failed)
    assert [unit["unit"] for unit in changes["units"]] == ["flaky"]
    assert changes["events"]["types"] == {"attempt.failed": 1}


async def test_state_since_after_at_is_400(client: Client, runtime: Runtime) -> None:
    """`since` must not come after `at`: a 400 naming `since`."""
    execution_id = await finished(runtime)
    status, document = await get(client, f"/executions/{execution_id}/state?at=2&since=3", STATE)
    assert status == 400
    assert document["errors"][0]["path"] == "since"
