"""`GET /executions/{id}/state?at=SEQ` and `GET /executions/compare?a=&b=` over a real runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from documented_reads import get_documented as get
from quart.typing import TestClientProtocol as Client

from orchestr8 import Runtime, open_runtime
from orchestr8._journal._records import ExecutionRecord
from orchestr8._journal._state_at import state_document
from orchestr8._web._app import create_app

FIRST = {
    "schema_version": "1.0",
    "name": "first",
    "steps": [
        {"id": "a", "agent": "echo", "input": {"n": "${inputs.n}"}},
        {"id": "b", "agent": "echo", "depends_on": ["a"], "input": "${steps.a.output}"},
    ],
}
SECOND = {
    "schema_version": "1.0",
    "name": "second",
    "steps": [{"id": "a", "agent": "echo", "input": {"n": "${inputs.n}"}}],
}


@pytest.fixture(params=["memory", "sqlite"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    journal = None if request.param == "memory" else tmp_path / "journal.db"
    async with open_runtime(journal=journal) as opened:
        yield opened


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return create_app(runtime).test_client()


async def finished(runtime: Runtime, workflow: dict[str, Any], n: int, **options: Any) -> str:
    handle = await runtime.start(workflow, {"n": n}, **options)
    await handle.wait()
    await runtime.journal.flush()
    return handle.execution_id


STATE = "/executions/{execution_id}/state"
COMPARE = "/executions/compare"


async def test_the_state_at_an_event_is_the_clis_document(client: Client, runtime: Runtime) -> None:
    """`at=SEQ` answers the document `inspect --at SEQ --json` prints; no `at` is the last."""
    execution_id = await finished(runtime, FIRST, 1)
    status, document = await get(client, f"/executions/{execution_id}/state?at=2", STATE)
    record = await runtime.journal.get_execution(execution_id)
    events = await runtime.journal.events(execution_id)
    assert status == 200
    assert document == state_document(record, events[:2], last_seq=len(events))
    assert document["steps"]["a"]["status"] == "running"
    status, last = await get(client, f"/executions/{execution_id}/state", STATE)
    assert (status, last["at"], last["status"]) == (200, len(events), "succeeded")


@pytest.mark.parametrize("at", ["900", "99"])
async def test_a_seq_beyond_the_events_is_422_naming_at_and_the_range(
    client: Client, runtime: Runtime, at: str
) -> None:
    """Out of the execution's range: 422 `event-out-of-range`, its error's path `at`."""
    execution_id = await finished(runtime, FIRST, 1)
    last = await runtime.journal.last_seq(execution_id)
    status, problem = await get(client, f"/executions/{execution_id}/state?at={at}", STATE)
    assert status == 422
    assert problem["type"] == "urn:orchestr8:problem:event-out-of-range"
    assert problem["detail"] == f"at={at}: execution {execution_id} has events 1..{last}"
    assert problem["errors"] == [
        {"path": "at", "message": f"execution {execution_id} has events 1..{last}"}
    ]


@pytest.mark.parametrize("at", ["0", "x", "-3"])
async def test_an_at_that_is_no_seq_at_all_is_400(
    client: Client, runtime: Runtime, at: str
) -> None:
    """Not a positive integer: 400 `invalid-parameter`, as the document declares."""
    execution_id = await finished(runtime, FIRST, 1)
    status, problem = await get(client, f"/executions/{execution_id}/state?at={at}", STATE)
    assert (status, problem["errors"][0]["path"]) == (400, "at")


async def test_the_state_of_an_unknown_execution_is_404(client: Client) -> None:
    """No such execution: 404 naming it."""
    status, problem = await get(client, "/executions/nope/state", STATE)
    assert (status, problem["detail"]) == (404, "no execution 'nope'")


async def test_two_executions_compared_are_the_clis_document(
    client: Client, runtime: Runtime
) -> None:
    """`compare?a=&b=` lines the steps up; an execution with itself shows no difference."""
    first = await finished(runtime, FIRST, 1)
    second = await finished(runtime, SECOND, 2)
    status, document = await get(client, f"/executions/compare?a={first}&b={second}", COMPARE)
    assert status == 200
    assert [step["step_id"] for step in document["steps"]] == ["a", "b"]
    assert [step["output"] for step in document["steps"]] == ["changed", "only in a"]
    assert document["same_workflow"] is False
    status, same = await get(client, f"/executions/compare?a={first}&b={first}", COMPARE)
    assert (status, same["same"], same["differing_steps"]) == (200, True, 0)


async def test_compare_needs_both_ids_and_names_the_unknown_one(
    client: Client, runtime: Runtime
) -> None:
    """A missing `a` or `b` is 400 naming it; an unknown one 404 naming which."""
    first = await finished(runtime, FIRST, 1)
    status, problem = await get(client, f"/executions/compare?a={first}", COMPARE)
    assert (status, problem["errors"][0]["path"]) == (400, "b")
    status, problem = await get(client, f"/executions/compare?a=nope&b={first}", COMPARE)
    assert (status, problem["detail"]) == (404, "a: no execution 'nope'")


async def test_compare_is_a_route_of_its_own_not_an_execution_named_compare(
    client: Client, runtime: Runtime
) -> None:
    """Even with an execution whose id is `compare`, `/executions/compare` compares; that
    execution's own routes (`/state`, `/journal`) still reach it."""
    named = await finished(runtime, FIRST, 1, execution_id="compare")
    status, problem = await get(client, "/executions/compare", COMPARE)
    assert (status, problem["errors"][0]["path"]) == (400, "a")
    status, document = await get(client, f"/executions/{named}/state", STATE)
    assert (status, document["execution_id"]) == (200, "compare")
    status, compared = await get(client, f"/executions/compare?a={named}&b={named}", COMPARE)
    assert (status, compared["same"]) == (200, True)


async def test_an_execution_without_events_is_at_zero_until_asked_for_one(
    client: Client, runtime: Runtime
) -> None:
    """Recorded but not started: no `at` gives the empty state; any `at` is 422."""
    await runtime.journal.create_execution(ExecutionRecord("quiet", "first", FIRST))
    status, document = await get(client, "/executions/quiet/state", STATE)
    assert (status, document["at"]) == (200, 0)
    # No process holds it: the SQLite journal shows it interrupted, as every view does.
    assert document["status"] in ("pending", "interrupted")
    assert document["steps"]["a"]["status"] == "pending"
    status, problem = await get(client, "/executions/quiet/state?at=1", STATE)
    assert (status, problem["errors"][0]["message"]) == (422, "execution quiet has no events yet")
