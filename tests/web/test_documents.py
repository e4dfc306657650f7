"""`_documents`: the REST execution document links a parent and its sub-workflows' children."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from jsonschema import Draft202012Validator
from quart.testing.connections import WebsocketDisconnectError
from quart.typing import TestClientProtocol as Client

from orchestr8 import Runtime, open_runtime
from orchestr8._web._app import create_app
from orchestr8._web._openapi import openapi_document

CHILD: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "child",
    "inputs": {"type": "object", "properties": {"text": {"type": "string"}}},
    "steps": [{"id": "a", "agent": "echo", "input": "${inputs.text}"}],
    "output": "${steps.a.output}",
}
PARENT: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "parent",
    "steps": [{"id": "sub", "workflow": CHILD, "input": {"text": "hi"}}],
    "output": "${steps.sub.output}",
}
SPEC = openapi_document(auth=False)


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with open_runtime() as opened:
        yield opened


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return create_app(runtime).test_client()


def check_execution(document: Any) -> None:
    """The document fits the OpenAPI `Execution` schema."""
    schema = {"$ref": "#/components/schemas/Execution", "components": SPEC["components"]}
    Draft202012Validator(schema).validate(document)


async def test_a_parent_lists_its_children_and_a_child_names_its_parent(
    client: Client, runtime: Runtime
) -> None:
    """GET /executions/{id} links both ways: `children` of the parent, `parent` of the child."""
    response = await client.post("/workflows/execute", json={"workflow": PARENT})
    execution_id = (await response.get_json())["execution_id"]
    await runtime.get(execution_id).wait()
    parent = await (await client.get(f"/executions/{execution_id}")).get_json()
    child_id = f"{execution_id}.sub"
    assert parent["output"] == "hi"
    assert parent["parent"] is None
    assert parent["children"] == [
        {"step_id": "sub", "execution_id": child_id, "links": {"self": f"/executions/{child_id}"}}
    ]
    child = await (await client.get(parent["children"][0]["links"]["self"])).get_json()
    assert child["parent"] == {
        "execution_id": execution_id,
        "step_id": "sub",
        "links": {"self": f"/executions/{execution_id}"},
    }
    assert child["children"] == []
    check_execution(parent)
    check_execution(child)


async def test_the_list_leaves_out_children_when_asked_for_top_level_executions(
    client: Client, runtime: Runtime
) -> None:
    """`GET /executions?top_level=true` lists the parent only; the default lists both."""
    response = await client.post("/workflows/execute", json={"workflow": PARENT})
    execution_id = (await response.get_json())["execution_id"]
    await runtime.get(execution_id).wait()
    every = await (await client.get("/executions")).get_json()
    assert {item["execution_id"] for item in every["items"]} == {
        execution_id,
        f"{execution_id}.sub",
    }
    parents = {item["execution_id"]: item["parent_id"] for item in every["items"]}
    assert parents == {execution_id: None, f"{execution_id}.sub": execution_id}
    top = await (await client.get("/executions?top_level=true")).get_json()
    assert [item["execution_id"] for item in top["items"]] == [execution_id]
    refused = await client.get("/executions?top_level=yes")
    assert refused.status_code == 400
    assert "expected true or false, got 'yes'" in str(await refused.get_json())


async def test_a_path_in_a_posted_document_is_refused_with_the_reason(client: Client) -> None:
    """A document sent over REST has no file: a relative child path is a 422 naming why."""
    body = {"workflow": {**PARENT, "steps": [{"id": "sub", "workflow": "child.json"}]}}
    response = await client.post("/workflows/execute", json=body)
    assert response.status_code == 422
    problem = await response.get_json()
    assert "the file path 'child.json' is refused" in str(problem)


async def test_a_posted_document_cannot_read_a_server_file(client: Client, tmp_path: Path) -> None:
    """An absolute path in a request body is refused unread: no content, no existence oracle."""
    secret = tmp_path / "secret.json"
    secret.write_text('{"schema_version": "sk-SECRETVALUE", "name": "x", "steps": []}')
    answers = []
    for path in (secret, tmp_path / "missing.json"):
        body = {"workflow": {**PARENT, "steps": [{"id": "sub", "workflow": str(path)}]}}
        response = await client.post("/workflows/execute", json=body)
        assert response.status_code == 422
        answers.append(str(await response.get_json()).replace(path.name, "NAME"))
    assert "SECRETVALUE" not in answers[0]
    assert answers[0] == answers[1]
    assert "not loaded from a file" in answers[0]


async def test_a_running_child_streams_its_own_events_on_its_socket(
    client: Client, runtime: Runtime
) -> None:
    """While its parent's step runs it, a child's WebSocket sends its events, then closes 1000."""
    napping = {**CHILD, "steps": [{"id": "a", "agent": "sleep", "input": {"seconds": 0.3}}]}
    napping.pop("output")
    async with runtime.bus.subscribe() as events:
        response = await client.post(
            "/workflows/execute",
            json={
                "workflow": {
                    **PARENT,
                    "steps": [{"id": "sub", "workflow": napping, "input": {"text": "hi"}}],
                }
            },
        )
        execution_id = (await response.get_json())["execution_id"]
        async for event in events:
            if event.type == "child.started":
                break
    child_id = f"{execution_id}.sub"
    received = []
    async with client.websocket(f"/executions/{child_id}/events") as socket:
        with trio.fail_after(5):
            while True:
                try:
                    received.append(json.loads(await socket.receive()))
                except WebsocketDisconnectError as closed:
                    code = closed.args[0]
                    break
    assert code == 1000
    assert {event["execution_id"] for event in received} == {child_id}
    assert [event["type"] for event in received][-1] == "execution.succeeded"
    assert [event["seq"] for event in received] == list(range(1, len(received) + 1))
