"""`GET /executions/{id}/graph` and its group members over a real runtime, both journals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from documented_reads import get_documented as get
from quart.typing import TestClientProtocol as Client

from orchestr8 import Event, ExecutionRecord, Runtime, open_runtime
from orchestr8._web._app import create_app

WORKFLOW = {
    "schema_version": "1.1",
    "name": "mapped",
    "steps": [
        {"id": "fetch", "agent": "echo", "input": {"xs": "${inputs.xs}"}},
        {
            "id": "each",
            "agent": "echo",
            "for_each": "steps.fetch.output.xs",
            "depends_on": ["fetch"],
            "input": {"x": "${item}"},
        },
        {"id": "total", "agent": "echo", "depends_on": ["each"], "input": "${steps.each.output}"},
    ],
}
GRAPH = "/executions/{execution_id}/graph"
MEMBERS = "/executions/{execution_id}/graph/{step_id}/members"


@pytest.fixture(params=["memory", "sqlite"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    journal = None if request.param == "memory" else tmp_path / "journal.db"
    async with open_runtime(journal=journal) as opened:
        yield opened


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return create_app(runtime).test_client()


async def finished(runtime: Runtime, count: int) -> str:
    handle = await runtime.start(WORKFLOW, {"xs": list(range(count))})
    await handle.wait()
    await runtime.journal.flush()
    return handle.execution_id


async def test_the_graph_is_every_step_with_its_state_and_the_cursor(
    client: Client, runtime: Runtime
) -> None:
    """Nodes in declaration order with edges and statuses; the map counts its items."""
    execution_id = await finished(runtime, 3)
    status, document = await get(client, f"/executions/{execution_id}/graph", GRAPH)
    assert status == 200
    assert document["status"] == "succeeded"
    assert document["last_seq"] == await runtime.journal.last_seq(execution_id)
    nodes = {node["id"]: node for node in document["nodes"]}
    assert list(nodes) == ["fetch", "each", "total"]
    assert nodes["total"]["depends_on"] == ["each"]
    assert {node["status"] for node in nodes.values()} == {"succeeded"}
    assert nodes["each"]["group"] == {"kind": "map", "total": 3, "counts": {"succeeded": 3}}
    assert "output" not in json.dumps(document)


async def test_a_maps_members_come_in_pages(client: Client, runtime: Runtime) -> None:
    """`limit` and `offset` page the items; the last page has no `next_offset`."""
    execution_id = await finished(runtime, 5)
    url = f"/executions/{execution_id}/graph/each/members"
    status, first = await get(client, f"{url}?limit=2", MEMBERS)
    assert status == 200
    assert [member["id"] for member in first["members"]] == ["each[0]", "each[1]"]
    assert (first["total"], first["next_offset"]) == (5, 2)
    status, last = await get(client, f"{url}?offset=4&limit=2", MEMBERS)
    assert [member["status"] for member in last["members"]] == ["succeeded"]
    assert last["next_offset"] is None


async def test_a_step_that_is_no_group_has_no_members(client: Client, runtime: Runtime) -> None:
    """An agent step or an unknown step: 404 `group-not-found` naming `step_id`."""
    execution_id = await finished(runtime, 1)
    for step_id in ("fetch", "nope"):
        url = f"/executions/{execution_id}/graph/{step_id}/members"
        status, problem = await get(client, url, MEMBERS)
        assert status == 404
        assert problem["type"] == "urn:orchestr8:problem:group-not-found"
        assert problem["errors"][0]["path"] == "step_id"
        assert repr(step_id) in problem["detail"]


@pytest.mark.parametrize("query", ["limit=0", "limit=5000", "offset=-1", "offset=x"])
async def test_a_bad_page_is_400_naming_the_parameter(
    client: Client, runtime: Runtime, query: str
) -> None:
    """limit from 1 to 1000, offset from 0: anything else is 400 naming it."""
    execution_id = await finished(runtime, 1)
    url = f"/executions/{execution_id}/graph/each/members?{query}"
    status, problem = await get(client, url, MEMBERS)
    assert (status, problem["errors"][0]["path"]) == (400, query.split("=")[0])


async def test_the_graph_of_an_unknown_execution_is_404(client: Client) -> None:
    """No such execution: 404 naming it, for the graph and for members."""
    status, problem = await get(client, "/executions/nope/graph", GRAPH)
    assert (status, problem["detail"]) == (404, "no execution 'nope'")
    status, problem = await get(client, "/executions/nope/graph/each/members", MEMBERS)
    assert status == 404


async def orphaned(runtime: Runtime, execution_id: str) -> None:
    """Record an execution whose process died while `fetch` ran: no process holds its lock."""
    await runtime.journal.create_execution(
        ExecutionRecord(execution_id=execution_id, workflow_name="mapped", workflow=WORKFLOW)
    )
    at = "2025-01-01T00:00:00.000Z"
    for seq, (kind, step) in enumerate(
        (("execution.started", None), ("step.started", "fetch"), ("attempt.started", "fetch")),
        start=1,
    ):
        await runtime.journal.append(
            Event(execution_id, seq, at, 0.1 * seq, kind, step, 1 if step else None)
        )
    await runtime.journal.flush()


async def test_the_running_step_of_an_interrupted_execution_is_interrupted(
    tmp_path: Path,
) -> None:
    """When no process runs the execution, its running step's node reads `interrupted`."""
    async with open_runtime(journal=tmp_path / "journal.db") as runtime:
        client = create_app(runtime).test_client()
        await orphaned(runtime, "orphan-1")
        status, document = await get(client, "/executions/orphan-1/graph", GRAPH)
        assert (status, document["status"]) == (200, "interrupted")
        nodes = {node["id"]: node for node in document["nodes"]}
        assert (nodes["fetch"]["status"], nodes["fetch"]["attempts"]) == ("interrupted", 1)
        assert nodes["each"]["status"] == "pending"
        status, members = await get(client, "/executions/orphan-1/graph/each/members", MEMBERS)
        assert (status, members["members"]) == (200, [])
