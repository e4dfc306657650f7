"""Admission: a workflow is checked once, each agent built once and reused, inputs checked once."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

import orchestr8._execution._admission
import orchestr8._execution._runtime
from orchestr8._agents._contract import Agent, AgentContext
from orchestr8._agents._registry import AgentRegistry
from orchestr8._errors import (
    IdempotencyKeyReusedError,
    InputValidationError,
    WorkflowValidationError,
)
from orchestr8._execution._admission import (
    admit,
    admit_workflow,
    file_directory,
    recorded_directory,
)
from orchestr8._execution._runtime import open_runtime
from orchestr8._execution._secrets import Secrets
from orchestr8._journal._events import Event, EventType, ExecutionStatus
from orchestr8._workflow._inputs import validate_inputs

BUILT: list[Mapping[str, Any]] = []
"""The config of every `CountedAgent` built, in order (reset for every test)."""


class CountedAgent(Agent):
    """Records each construction of it; its run echoes the input with the instance's id."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        BUILT.append(dict(config))

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Return the input with the id of this instance, so tests see which one ran."""
        return {"input": input, "instance": id(self)}


AGENTS = {"counted": CountedAgent}


@pytest.fixture(autouse=True)
def reset_built() -> Iterator[None]:
    """Each test counts its own constructions."""
    BUILT.clear()
    yield
    BUILT.clear()


def workflow(*step_ids: str, **extra: Any) -> dict[str, Any]:
    """A workflow of `counted` steps, run one after another."""
    steps = [{"id": step_id, "agent": "counted", "input": step_id} for step_id in step_ids]
    return {"schema_version": "1.0", "name": "w", "strategy": "sequential", "steps": steps, **extra}


async def test_each_agent_is_built_once_per_load_and_runs_its_step() -> None:
    """Loading builds one agent per step; executions of the loaded workflow build none."""
    async with open_runtime(agents=AGENTS) as runtime:
        loaded = runtime.load(workflow("a", "b"))
        assert len(BUILT) == 2
        first = await (await runtime.start(loaded)).wait()
        second = await (await runtime.start(loaded)).wait()
    assert len(BUILT) == 2
    assert first.status is second.status is ExecutionStatus.SUCCEEDED
    assert first.steps["a"].output["instance"] == second.steps["a"].output["instance"]
    assert first.steps["a"].output["instance"] != first.steps["b"].output["instance"]


async def test_a_document_started_is_admitted_once() -> None:
    """Starting a document (as the REST layer does) builds each agent once, not per check."""
    async with open_runtime(agents=AGENTS) as runtime:
        result = await (await runtime.start(workflow("a", "b", "c"))).wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert len(BUILT) == 3


async def test_an_admission_started_builds_nothing_more() -> None:
    """The CLI's path: admitted before the runtime opens, started as is; one agent per step."""
    registry = AgentRegistry(AGENTS)
    admission = admit(admit_workflow(workflow("a", "b"), registry), None)
    assert len(BUILT) == 2
    async with open_runtime(agents=AGENTS) as runtime:
        result = await (await runtime.start(admission)).wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert len(BUILT) == 2


async def test_concurrent_executions_share_the_admitted_agents() -> None:
    """Executions of one loaded workflow running at once call the same agent instance."""
    async with open_runtime(agents=AGENTS) as runtime:
        loaded = runtime.load(workflow("a"))
        handles = [await runtime.start(loaded, {}) for _ in range(3)]
        results = [await handle.wait() for handle in handles]
    assert {result.steps["a"].output["instance"] for result in results} == {
        results[0].steps["a"].output["instance"]
    }
    assert len(BUILT) == 1


async def test_a_config_with_secrets_is_built_again_with_their_values() -> None:
    """A step whose config takes `${secrets.NAME}` gets its agent built from the bound config."""
    document = workflow("a")
    document["steps"][0]["agent"] = {"id": "counted", "config": {"token": "${secrets.TOKEN}"}}
    async with open_runtime(agents=AGENTS, secrets=Secrets({"TOKEN": "s3cret"})) as runtime:
        result = await (await runtime.start(document)).wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert BUILT == [{"token": "${secrets.TOKEN}"}, {"token": "s3cret"}]


async def test_inputs_are_validated_once_per_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """`start` checks inputs once, and an admission's inputs are not checked again."""
    checked: list[Any] = []
    real = validate_inputs

    def counting(loaded: Any, inputs: Any) -> dict[str, Any]:
        checked.append(inputs)
        return real(loaded, inputs)

    monkeypatch.setattr(orchestr8._execution._runtime, "validate_inputs", counting)
    monkeypatch.setattr(orchestr8._execution._admission, "validate_inputs", counting)
    schema = {"type": "object", "properties": {"who": {"type": "string"}}}
    document = workflow("a", inputs=schema)
    async with open_runtime(agents=AGENTS) as runtime:
        await (await runtime.start(document, {"who": "Ada"})).wait()
        assert checked == [{"who": "Ada"}]
        admission = admit(admit_workflow(document, AgentRegistry(AGENTS)), {"who": "Bob"})
        await (await runtime.start(admission)).wait()
    assert checked == [{"who": "Ada"}, {"who": "Bob"}]


async def test_an_admission_comes_with_its_inputs() -> None:
    """Passing inputs beside an admission is refused: they were checked already."""
    admission = admit(admit_workflow(workflow("a"), AgentRegistry(AGENTS)), {})
    async with open_runtime(agents=AGENTS) as runtime:
        with pytest.raises(TypeError, match="comes with its inputs"):
            await runtime.start(admission, {"who": "x"})


def test_a_bad_agent_config_names_the_step_and_the_file(tmp_path: Path) -> None:
    """An agent that refuses its config is a problem at `$.steps[N].agent`, naming the file."""
    path = tmp_path / "bad.json"
    document = workflow("a")
    document["steps"][0]["agent"] = {"id": "fail", "config": {"times": "two"}}
    path.write_text(json.dumps(document))
    with pytest.raises(WorkflowValidationError) as raised:
        admit_workflow(path, AgentRegistry(), source="bad.json")
    assert [problem.path for problem in raised.value.problems] == ["$.steps[0].agent"]
    assert "bad.json" in str(raised.value)


def test_inputs_that_do_not_fit_are_refused_at_admission() -> None:
    """`admit` raises `InputValidationError` for inputs outside the `inputs` schema."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    admitted = admit_workflow(workflow("a", inputs=schema), AgentRegistry(AGENTS))
    with pytest.raises(InputValidationError):
        admit(admitted, {"n": "one"})


async def test_a_reused_idempotency_key_with_other_inputs_is_refused() -> None:
    """The runtime owns idempotency: a key seen with other inputs raises, naming its execution."""
    schema = {"type": "object", "properties": {"who": {"type": "string"}}}
    document = workflow("a", inputs=schema)
    async with open_runtime(agents=AGENTS) as runtime:
        first = await runtime.start(document, {"who": "Ada"}, idempotency_key="k")
        await first.wait()
        again = await runtime.start(document, {"who": "Ada"}, idempotency_key="k")
        assert again.execution_id == first.execution_id
        with pytest.raises(IdempotencyKeyReusedError) as raised:
            await runtime.start(document, {"who": "Bob"}, idempotency_key="k")
    assert raised.value.execution_id == first.execution_id


async def test_find_returns_a_live_handle_or_none() -> None:
    """`find` gives the handle of an execution live here, and None for any other id."""
    release = trio.Event()

    async def waits(input: Any, context: AgentContext) -> Any:
        await release.wait()
        return input

    async with open_runtime(agents={"waits": waits}) as runtime:
        document = workflow("a")
        document["steps"][0]["agent"] = "waits"
        handle = await runtime.start(document)
        assert runtime.find(handle.execution_id) is handle
        assert runtime.find("no-such-execution") is None
        release.set()
        await handle.wait()


def test_the_workflow_file_directory_is_that_of_a_path_only(tmp_path: Path) -> None:
    """A path gives its file's directory; a document or JSON text has none."""
    assert file_directory(tmp_path / "flow.json") == tmp_path.resolve()
    assert file_directory(str(tmp_path / "flow.json")) == tmp_path.resolve()
    assert file_directory({"name": "x"}) is None
    assert file_directory('{"name": "x"}') is None


def test_the_recorded_directory_comes_from_execution_started_and_old_journals_have_none() -> None:
    """`execution.started` data says where the file was; without `directory` (older), None."""

    def started(data: dict[str, Any]) -> Event:
        return Event(
            "e1", 1, "2026-01-01T00:00:00Z", 0.0, EventType.EXECUTION_STARTED, None, None, data
        )

    assert recorded_directory([started({"directory": "/flows"})]) == Path("/flows")
    assert recorded_directory([started({"workflow": "x"})]) is None
    assert recorded_directory([]) is None


async def test_a_workflow_loaded_from_a_file_records_its_directory_when_started(
    tmp_path: Path,
) -> None:
    """`load(path)` then `start(workflow)` records the file's directory, as `start(path)` does."""
    path = tmp_path / "flow.json"
    echo = {"schema_version": "1.0", "name": "f", "steps": [{"id": "a", "agent": "echo"}]}
    path.write_text(json.dumps(echo))
    async with open_runtime() as runtime:
        loaded = runtime.load(path)
        handle = await runtime.start(loaded)
        await handle.wait()
        from_document = await runtime.start({**echo, "name": "d"})
        await from_document.wait()
        started = (await runtime.journal.events(handle.execution_id))[0]
        other = (await runtime.journal.events(from_document.execution_id))[0]
    assert started.data["directory"] == str(await trio.Path(tmp_path).resolve())
    assert "directory" not in other.data
