"""`POST /executions/{id}/fork` and the lineage of `GET /executions/{id}`, through the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client
from test_app import ECHO, SLEEP, finish, problem, start

from orchestr8 import ExecutionRecord, Runtime, open_runtime
from orchestr8._journal._events import EventFactory, EventType
from orchestr8._web._app import create_app

CHAIN: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "chain",
    "inputs": {"type": "object", "properties": {"who": {"type": "string"}}},
    "steps": [
        {"id": "first", "agent": "echo", "input": "fixed"},
        {"id": "greet", "agent": "echo", "input": "${inputs.who}", "depends_on": ["first"]},
    ],
}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with open_runtime(cancel_grace=0.2) as opened:
        yield opened


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return create_app(runtime).test_client()


async def test_a_fork_is_202_with_its_links_and_lineage_on_both_sides(
    client: Client, runtime: Runtime
) -> None:
    """The fork runs with the changed input; source and fork name each other."""
    source = await start(client, CHAIN, inputs={"who": "Ada"})
    await finish(runtime, source)
    response = await client.post(
        f"/executions/{source}/fork", json={"from": "greet", "inputs": {"who": "Bob"}}
    )
    assert response.status_code == 202, await response.get_data(as_text=True)
    accepted = await response.get_json()
    fork_id = accepted["execution_id"]
    assert response.headers["Location"] == f"/executions/{fork_id}"
    assert accepted["forked_from"] == source
    assert accepted["from"] == "greet"
    await finish(runtime, fork_id)
    forked = await (await client.get(f"/executions/{fork_id}")).get_json()
    assert forked["status"] == "succeeded"
    assert forked["steps"]["greet"]["output"] == "Bob"
    assert forked["forked_from"] == source
    assert forked["fork_seq"] == accepted["fork_seq"]
    assert forked["forks"] == []
    original = await (await client.get(f"/executions/{source}")).get_json()
    assert original["forks"] == [fork_id]
    assert original["forked_from"] is None
    listed = await (await client.get("/executions")).get_json()
    lineage = {item["execution_id"]: item["forked_from"] for item in listed["items"]}
    assert lineage == {fork_id: source, source: None}


async def test_a_dry_run_is_200_with_the_plan_and_starts_nothing(
    client: Client, runtime: Runtime
) -> None:
    """`dry_run: true` answers the plan; the journal holds no new execution."""
    source = await start(client, CHAIN, inputs={"who": "Ada"})
    await finish(runtime, source)
    response = await client.post(
        f"/executions/{source}/fork", json={"from": "greet", "dry_run": True}
    )
    assert response.status_code == 200
    plan = await response.get_json()
    assert plan["kept"] == ["first"]
    assert plan["rerun"] == [{"step": "greet", "reason": "the fork point"}]
    listed = await (await client.get("/executions")).get_json()
    assert len(listed["items"]) == 1


async def test_refusals_are_problems_naming_what_is_wrong(client: Client, runtime: Runtime) -> None:
    """404 unknown, 409 still running, 422 for a bad body, fork point or inputs."""
    assert (await problem(await client.post("/executions/nope/fork", json={"from": "a"}), 404))[
        "type"
    ] == "urn:orchestr8:problem:execution-not-found"
    running = await start(client, SLEEP)
    busy = await problem(
        await client.post(f"/executions/{running}/fork", json={"from": "nap"}), 409
    )
    assert busy["type"] == "urn:orchestr8:problem:execution-running"
    assert "still running" in busy["detail"]
    runtime.get(running).cancel()
    await finish(runtime, running)
    source = await start(client, ECHO, inputs={"who": "x"})
    await finish(runtime, source)
    path = f"/executions/{source}/fork"
    shape = await problem(await client.post(path, json={"dry_run": 1, "extra": 2}), 422)
    assert [error["path"] for error in shape["errors"]] == ["$", "$", "$.dry_run"]
    empty = await problem(await client.post(path, json={"from": ""}), 422)
    assert [error["path"] for error in empty["errors"]] == ["$.from"]
    unknown = await problem(await client.post(path, json={"from": "nope"}), 422)
    assert unknown["type"] == "urn:orchestr8:problem:fork-refused"
    assert "no step 'nope'" in unknown["detail"]
    inputs = await problem(
        await client.post(path, json={"from": "greet", "inputs": {"who": 3}}), 422
    )
    assert inputs["type"] == "urn:orchestr8:problem:invalid-inputs"
    assert [error["path"] for error in inputs["errors"]] == ["$.inputs.who"]


async def test_forks_the_server_cannot_run_are_problems_too(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret no longer set and a recorded workflow that no longer loads are 422s."""
    secret = {
        **CHAIN,
        "steps": [{"id": "first", "agent": "echo", "input": "${secrets.TOKEN}"}],
    }
    monkeypatch.setenv("ORCHESTR8_SECRET_TOKEN", "t0ken-value-1")
    source = await start(client, secret)
    await finish(runtime, source)
    monkeypatch.delenv("ORCHESTR8_SECRET_TOKEN")
    unset = await problem(
        await client.post(f"/executions/{source}/fork", json={"from": "first"}), 422
    )
    assert unset["type"] == "urn:orchestr8:problem:missing-secrets"
    gone = {**CHAIN, "steps": [{"id": "first", "agent": "gone-agent", "input": 1}]}
    started = EventFactory("gone-1").create(EventType.EXECUTION_STARTED)
    await runtime.journal.create_or_find(
        ExecutionRecord("gone-1", "chain", gone), first_event=started
    )
    invalid = await problem(
        await client.post("/executions/gone-1/fork", json={"from": "first"}), 422
    )
    assert invalid["type"] == "urn:orchestr8:problem:invalid-workflow"


async def test_a_draining_server_takes_no_fork(runtime: Runtime) -> None:
    """Like a new execution, a fork is refused with 503 while the server shuts down."""
    app = create_app(runtime)
    app.start_draining()
    response = await app.test_client().post("/executions/x/fork", json={"from": "a"})
    assert (await problem(response, 503))["type"] == "urn:orchestr8:problem:shutting-down"


async def test_the_openapi_document_describes_the_fork_route(client: Client) -> None:
    """The route, its body and both success answers are in the spec."""
    spec = await (await client.get("/openapi.json")).get_json()
    operation = spec["paths"]["/executions/{execution_id}/fork"]["post"]
    assert set(operation["responses"]) >= {"200", "202", "404", "409", "422"}
    assert spec["components"]["schemas"]["ForkRequest"]["required"] == ["from"]
    assert "forks" in spec["components"]["schemas"]["Execution"]["required"]
