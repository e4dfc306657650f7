"""`GET /executions/{id}/steps/{step_id}` over a real runtime: what the step panel reads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from documented_reads import get_documented
from quart.typing import TestClientProtocol as Client

from orchestr8 import Event, ExecutionRecord, Runtime, open_runtime
from orchestr8._web._app import create_app

RETRIED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "retried",
    "steps": [
        {"id": "first", "agent": "echo", "input": {"topic": "${inputs.topic}"}},
        {
            "id": "flaky",
            "agent": {"id": "fail", "config": {"times": 1, "message": "not yet"}},
            "depends_on": ["first"],
            "input": {"text": "${steps.first.output.topic}", "key": "${inputs.api_key}"},
            "policy": {"retry": {"max_attempts": 3, "initial_delay": 0.01, "jitter": "none"}},
        },
        {
            "id": "each",
            "agent": "echo",
            "for_each": "inputs.items",
            "input": {"value": "${item}", "at": "${index}"},
        },
    ],
}


@pytest.fixture(params=["memory", "sqlite"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    journal = None if request.param == "memory" else tmp_path / "journal.db"
    async with open_runtime(journal=journal) as opened:
        yield opened


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return create_app(runtime).test_client()


async def finished(runtime: Runtime, workflow: dict[str, Any], inputs: dict[str, Any]) -> str:
    handle = await runtime.start(workflow, inputs)
    await handle.wait()
    await runtime.journal.flush()
    return handle.execution_id


async def get(client: Client, url: str) -> tuple[int, Any]:
    """GET a step's document, checked against the documented schema of its status."""
    return await get_documented(client, url, "/executions/{execution_id}/steps/{step_id}")


INPUTS = {"topic": "owls", "api_key": "sk-secret-value", "items": ["x", "y"]}


async def test_a_retried_step_shows_its_attempts_and_both_inputs(
    runtime: Runtime, client: Client
) -> None:
    """A step retried once lists two attempts, its declared input, and the resolved one redacted."""
    execution_id = await finished(runtime, RETRIED, INPUTS)
    status, document = await get(client, f"/executions/{execution_id}/steps/flaky")
    assert status == 200
    assert document["status"] == "succeeded"
    assert [attempt["outcome"] for attempt in document["attempts"]] == ["failed", "succeeded"]
    assert document["attempt_count"] == 2
    assert "not yet" in json.dumps(document["attempts"][0]["error"])
    assert document["declared_input"] == RETRIED["steps"][1]["input"]
    resolved = document["resolved_input"]
    assert resolved["resolved"] is True
    assert resolved["value"]["text"] == "owls"
    assert resolved["value"]["key"] == "***"
    assert document["depends_on"] == ["first"]
    assert document["kind"] == "agent"


async def test_a_map_item_has_its_own_record(runtime: Runtime, client: Client) -> None:
    """`ID[1]` (percent-encoded) answers with that item's input, resolved from `for_each`."""
    execution_id = await finished(runtime, RETRIED, INPUTS)
    status, document = await get(client, f"/executions/{execution_id}/steps/each%5B1%5D")
    assert status == 200
    assert document["kind"] == "item"
    assert document["declared_step"] == "each"
    assert document["resolved_input"]["value"] == {"value": "y", "at": 1}
    _, group = await get(client, f"/executions/{execution_id}/steps/each")
    assert group["kind"] == "map"
    assert group["items"] == ["each[0]", "each[1]"]


async def test_an_unknown_step_is_a_named_404(runtime: Runtime, client: Client) -> None:
    """A step the execution does not have is `step-not-found`, naming it."""
    execution_id = await finished(runtime, RETRIED, INPUTS)
    status, document = await get(client, f"/executions/{execution_id}/steps/nope")
    assert status == 404
    assert document["type"] == "urn:orchestr8:problem:step-not-found"
    assert "'nope'" in document["detail"]


async def test_an_unknown_execution_is_a_404(client: Client) -> None:
    """An unknown execution id is `execution-not-found`."""
    status, document = await get(client, "/executions/missing/steps/flaky")
    assert status == 404
    assert document["type"] == "urn:orchestr8:problem:execution-not-found"


PARENT: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "parent",
    "steps": [
        {
            "id": "sub",
            "workflow": {
                "schema_version": "1.1",
                "name": "child",
                "inputs": {"type": "object", "properties": {"text": {"type": "string"}}},
                "steps": [{"id": "say", "agent": "echo", "input": "${inputs.text}"}],
                "output": "${steps.say.output}",
            },
            "input": {"text": "${inputs.topic}"},
        }
    ],
}


async def test_a_sub_workflow_step_links_its_child(runtime: Runtime, client: Client) -> None:
    """A sub-workflow step is of kind `workflow` and names the child execution it ran."""
    execution_id = await finished(runtime, PARENT, {"topic": "owls"})
    status, document = await get(client, f"/executions/{execution_id}/steps/sub")
    assert status == 200
    assert document["kind"] == "workflow"
    child = document["child_execution_id"]
    assert child is not None
    assert (await runtime.journal.get_execution(child)).parent_id == execution_id
    assert document["resolved_input"]["value"] == {"text": "owls"}


async def test_a_running_step_of_an_interrupted_execution_reads_interrupted(
    tmp_path: Path,
) -> None:
    """No process runs the execution: its running step and open attempt read `interrupted`."""
    async with open_runtime(journal=tmp_path / "journal.db") as runtime:
        client = create_app(runtime).test_client()
        await runtime.journal.create_execution(
            ExecutionRecord(execution_id="orphan", workflow_name="retried", workflow=RETRIED)
        )
        at = "2025-01-01T00:00:00.000Z"
        for seq, (kind, step) in enumerate(
            (("execution.started", None), ("step.started", "first"), ("attempt.started", "first")),
            start=1,
        ):
            await runtime.journal.append(
                Event("orphan", seq, at, 0.5 * seq, kind, step, 1 if step else None)
            )
        await runtime.journal.flush()
        status, document = await get(client, "/executions/orphan/steps/first")
        assert (status, document["status"]) == (200, "interrupted")
        assert [attempt["outcome"] for attempt in document["attempts"]] == ["interrupted"]
