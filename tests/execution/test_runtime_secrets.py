"""`_secrets` and the runtime: `${secrets.NAME}`, secrets files, redacted inputs on resume.

The first tests cover `_execution._secrets` alone; the rest run executions through the runtime on
a real SQLite journal and read what it recorded, byte for byte.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestr8._agents._contract import AgentContext
from orchestr8._errors import (
    InputValidationError,
    MissingSecretError,
    NonRetryableError,
    SecretsFileError,
    WorkflowValidationError,
)
from orchestr8._execution._runtime import open_runtime
from orchestr8._execution._secrets import (
    Secrets,
    bind_secrets,
    redacted_inputs,
    resupply_inputs,
    secret_names,
)
from orchestr8._journal._events import ExecutionStatus
from orchestr8._observability._redaction import (
    REDACTED,
    Redactor,
    default_redactor,
    set_default_redactor,
)
from orchestr8._workflow._codec import load_workflow

TOKEN = "svc-token-0123456789"
API_KEY = "input-api-key-abcdef"
NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}
FAILS: dict[str, int] = {}


async def fails_until_fixed(input: Any, context: AgentContext) -> Any:
    """Fail while `FAILS[step_id]` is positive (counting down), then return the input."""
    if FAILS.get(context.step_id, 0) > 0:
        FAILS[context.step_id] -= 1
        raise NonRetryableError("the service was down")
    return input


SEEN: list[Any] = []


async def records_until_fixed(input: Any, context: AgentContext) -> Any:
    """Keep each input it is given in `SEEN`, and fail while `FAILS[step_id]` is positive."""
    SEEN.append(input)
    return await fails_until_fixed(input, context)


async def leaks_its_key(input: Any, context: AgentContext) -> Any:
    """Fail with a message quoting the `api_key` of its input, as careless code does."""
    raise NonRetryableError(f"the service refused key {input['api_key']}")


@pytest.fixture(autouse=True)
def fresh_redactor() -> Iterator[Redactor]:
    """Each test gets a process-wide redactor of its own, and its failure counts."""
    redactor = Redactor()
    previous = set_default_redactor(redactor)
    FAILS.clear()
    SEEN.clear()
    try:
        yield redactor
    finally:
        set_default_redactor(previous)
        FAILS.clear()
        SEEN.clear()


def document(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A workflow document with these steps and no retries; `options` are top-level keys."""
    return {
        "schema_version": "1.0",
        "name": "secrets",
        "steps": list(steps),
        "defaults": {"policy": NO_RETRY},
        **options,
    }


def python(step_id: str, function: str, **extra: Any) -> dict[str, Any]:
    """A `python` step calling a function of this module."""
    agent = {"id": "python", "config": {"callable": f"{__name__}:{function}"}}
    return {"id": step_id, "agent": agent, **extra}


KEYED_INPUTS = {
    "type": "object",
    "properties": {"api_key": {"type": "string", "minLength": 8}, "topic": {"type": "string"}},
    "required": ["api_key", "topic"],
}
"""An inputs schema with a property named like a secret: the schema itself is no secret."""


def journal_text(path: Path) -> str:
    """Everything the SQLite journal holds, as one string (records and events)."""
    with sqlite3.connect(path) as connection:
        rows = [
            row
            for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            for row in connection.execute(f"SELECT * FROM {table}")
        ]
    return json.dumps(rows, default=str)


# -- the secret source -----------------------------------------------------------------------


def test_secrets_come_from_the_file_then_prefixed_environment_variables() -> None:
    """A file's value wins; otherwise `ORCHESTR8_SECRET_NAME`; never the bare variable."""
    environ = {
        "ORCHESTR8_SECRET_A": "from-env-a",
        "ORCHESTR8_SECRET_B": "from-env-b",
        "C": "bare-variable",
    }
    secrets = Secrets({"A": "from-file-a"}, environ)
    assert secrets.lookup("A") == "from-file-a"
    assert secrets.lookup("B") == "from-env-b"
    assert secrets.lookup("C") is None


def test_missing_secrets_are_all_named_with_the_variable_to_set() -> None:
    """`resolve` names every missing secret and where it may be set."""
    with pytest.raises(MissingSecretError) as caught:
        Secrets({"HAVE": "x"}, {}).resolve(["ZED", "HAVE", "ALPHA"])
    assert caught.value.names == ("ALPHA", "ZED")
    assert "ORCHESTR8_SECRET_ALPHA, ORCHESTR8_SECRET_ZED" in str(caught.value)


def test_a_secrets_file_is_a_json_object_of_strings(tmp_path: Path) -> None:
    """A valid file loads; a missing, non-JSON, non-string or ambiguous file is a clear error."""
    good = tmp_path / "secrets.json"
    good.write_text(json.dumps({"TOKEN": TOKEN}))
    assert Secrets.from_file(good).lookup("TOKEN") == TOKEN
    cases = {
        "missing.json": (None, "No such file"),
        "text.json": ("TOKEN=abc", "not a JSON object"),
        "list.json": ('["abc"]', "expected a JSON object"),
        "number.json": ('{"TOKEN": 12345678, "OK": "x"}', "these are not: $.TOKEN"),
        "twice.json": ('{"TOKEN": "abc", "TOKEN": "abd"}', "named more than once: TOKEN"),
        "nan.json": ('{"TOKEN": NaN}', "not a JSON object"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        with pytest.raises(SecretsFileError, match=message.replace("$", r"\$")) as caught:
            Secrets.from_file(path)
        assert str(path) in str(caught.value)
    assert "abc" not in str(caught.value)


# -- references in workflows -----------------------------------------------------------------


def test_secret_references_in_step_inputs_and_agent_configs_load() -> None:
    """`${secrets.NAME}` is valid in a step's input and in its agent's config."""
    loaded = load_workflow(
        document(
            {
                "id": "a",
                "agent": {"id": "fail", "config": {"message": "token ${secrets.CONFIGURED}"}},
                "input": {"authorization": "Bearer ${secrets.TOKEN}"},
            },
        )
    )
    assert secret_names(loaded) == {"CONFIGURED", "TOKEN"}


@pytest.mark.parametrize(
    ("step", "output", "path", "message"),
    [
        (
            {"id": "a", "agent": {"id": "echo", "config": {"k": ["${secrets.A.b}"]}}},
            None,
            "$.steps[0].agent.config.k[0]",
            "a secret reference is '${secrets.NAME}'",
        ),
        (
            {"id": "a", "agent": "echo"},
            {"leak": "${secrets.TOKEN}"},
            "$.output.leak",
            "the output cannot reference secrets",
        ),
        (
            {"id": "a", "agent": "echo", "input": "${secrets.TOKEN.field}"},
            None,
            "$.steps[0].input",
            "a secret reference is '${secrets.NAME}'",
        ),
        (
            {"id": "a", "agent": "echo", "input": "${secrets}"},
            None,
            "$.steps[0].input",
            "a secret reference is '${secrets.NAME}'",
        ),
    ],
)
def test_misplaced_or_malformed_secret_references_are_validation_errors(
    step: dict[str, Any], output: Any, path: str, message: str
) -> None:
    """Secrets only in inputs and configs, only as `${secrets.NAME}`: else a located problem."""
    options = {} if output is None else {"output": output}
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(document(step, **options))
    assert [problem.path for problem in caught.value.problems] == [path]
    assert message in caught.value.problems[0].message


def test_a_config_interprets_secret_references_only() -> None:
    """`${input.topic}` in a config is the agent's own text (an llm prompt): kept as written."""
    config = {
        "prompt": "About ${input.topic}, ${inputs.x}",
        "key": "$${secrets.KEPT}",
        "auth": ["Bearer ${ secrets.TOKEN }", "$$$${secrets.TOKEN}"],
    }
    loaded = load_workflow(document({"id": "a", "agent": {"id": "fail", "config": config}}))
    assert secret_names(loaded) == {"TOKEN"}
    bound_agent = bind_secrets(loaded, {"TOKEN": TOKEN}).steps[0].agent
    assert bound_agent is not None
    assert bound_agent.config == {
        "prompt": "About ${input.topic}, ${inputs.x}",
        "key": "${secrets.KEPT}",
        "auth": [f"Bearer {TOKEN}", "$${secrets.TOKEN}"],
    }


def test_binding_replaces_references_by_values_and_keeps_the_original() -> None:
    """The bound workflow holds the values; the loaded one (what is journaled) keeps references."""
    loaded = load_workflow(
        document(
            {
                "id": "a",
                "agent": {"id": "fail", "config": {"message": "x${secrets.TOKEN}y"}},
                "input": {
                    "whole": "${secrets.TOKEN}",
                    "header": "Bearer ${secrets.TOKEN}",
                    "plain": "$${secrets.TOKEN}",
                },
            },
        )
    )
    bound = bind_secrets(loaded, {"TOKEN": TOKEN})
    step = bound.steps[0]
    assert step.input.render({}, {}) == {
        "whole": TOKEN,
        "header": f"Bearer {TOKEN}",
        "plain": "${secrets.TOKEN}",
    }
    assert step.agent is not None
    assert step.agent.config == {"message": f"x{TOKEN}y"}
    assert loaded.steps[0].agent is not None
    assert loaded.steps[0].agent.config == {"message": "x${secrets.TOKEN}y"}
    assert bind_secrets(loaded, {}) is loaded


# -- redacted inputs -------------------------------------------------------------------------


def test_redacted_inputs_are_named_and_only_they_can_be_supplied_again() -> None:
    """Resume inputs: redacted ones are required again; others may not be changed."""
    recorded = {"api_key": REDACTED, "creds": {"password": REDACTED}, "topic": "t"}
    assert redacted_inputs(recorded) == ["api_key", "creds"]
    with pytest.raises(InputValidationError) as caught:
        resupply_inputs(recorded, {"api_key": API_KEY, "topic": "other"})
    assert [problem.path for problem in caught.value.problems] == [
        "$.inputs.creds",
        "$.inputs.topic",
    ]
    merged = resupply_inputs(recorded, {"api_key": API_KEY, "creds": {"password": "pw-12345"}})
    assert merged == {"api_key": API_KEY, "creds": {"password": "pw-12345"}, "topic": "t"}


# -- through the runtime ---------------------------------------------------------------------


async def test_a_workflow_with_secret_looking_schema_properties_resumes(tmp_path: Path) -> None:
    """The journaled workflow stays valid; a resume names the redacted input, then takes it."""
    path = tmp_path / "journal.db"
    workflow = document(
        python("call", "fails_until_fixed", input={"key": "${inputs.api_key}"}),
        inputs=KEYED_INPUTS,
        output={"seen": "${steps.call.output.key}"},
    )
    FAILS["call"] = 1
    async with open_runtime(journal=path) as runtime:
        handle = await runtime.start(workflow, {"api_key": API_KEY, "topic": "t"})
        assert (await handle.wait()).status is ExecutionStatus.FAILED
        record = await runtime.journal.get_execution(handle.execution_id)
    assert record.workflow["inputs"] == KEYED_INPUTS
    assert record.inputs == {"api_key": REDACTED, "topic": "t"}

    async with open_runtime(journal=path) as runtime:
        with pytest.raises(InputValidationError) as caught:
            await runtime.resume(handle.execution_id)
        assert [problem.path for problem in caught.value.problems] == ["$.inputs.api_key"]
        with pytest.raises(InputValidationError) as caught:
            await runtime.resume(handle.execution_id, inputs={"api_key": "short-1"})
        assert str(caught.value) == "invalid inputs:\n  $.inputs.api_key: '***' is too short"
        resumed = await runtime.resume(handle.execution_id, inputs={"api_key": API_KEY})
        result = await resumed.wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == {"seen": REDACTED}
    assert API_KEY not in journal_text(path)


async def test_a_step_whose_output_was_journaled_redacted_runs_again_on_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its dependents get the real value after a resume, never `***`; the journal never holds it."""
    path = tmp_path / "journal.db"
    workflow = document(
        {"id": "a", "agent": "echo", "input": {"k": "${inputs.api_key}"}},
        {
            **python("b", "records_until_fixed", input={"from_a": "${steps.a.output.k}"}),
            "depends_on": ["a"],
        },
        inputs=KEYED_INPUTS,
    )
    FAILS["b"] = 1
    async with open_runtime(journal=path) as runtime:
        handle = await runtime.start(workflow, {"api_key": API_KEY, "topic": "t"})
        assert (await handle.wait()).status is ExecutionStatus.FAILED
    async with open_runtime(journal=path) as runtime:
        with caplog.at_level("WARNING", logger="orchestr8.runtime"):
            resumed = await runtime.resume(handle.execution_id, inputs={"api_key": API_KEY})
        result = await resumed.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert SEEN == [{"from_a": API_KEY}, {"from_a": API_KEY}]
    assert [(event.type, event.step_id) for event in events if event.type == "step.succeeded"] == [
        ("step.succeeded", "a"),
        ("step.succeeded", "a"),
        ("step.succeeded", "b"),
    ]
    resumed_event = next(event for event in events if event.type == "execution.resumed")
    assert resumed_event.data["reused_steps"] == []
    assert [
        record.getMessage() for record in caplog.records if record.name == "orchestr8.runtime"
    ] == [
        f"execution {handle.execution_id} runs a again: the journal holds its output redacted "
        "(it held a secret), and a resume reuses only outputs recorded as they were"
    ]
    assert API_KEY not in journal_text(path)


async def test_secret_references_resolve_at_start_and_resume_and_are_never_journaled(
    tmp_path: Path,
) -> None:
    """`${secrets.TOKEN}` reaches the agent on both runs; the journal only has the reference."""
    path = tmp_path / "journal.db"
    uses = {"header": "Bearer ${secrets.TOKEN}", "raw": "${secrets.TOKEN}"}
    workflow = document(python("call", "fails_until_fixed", input=uses))
    FAILS["call"] = 1
    secrets = Secrets({"TOKEN": TOKEN}, {})
    async with open_runtime(journal=path, secrets=secrets) as runtime:
        handle = await runtime.start(workflow)
        assert (await handle.wait()).status is ExecutionStatus.FAILED
    async with open_runtime(journal=path, secrets=Secrets({}, {})) as runtime:
        with pytest.raises(MissingSecretError, match="ORCHESTR8_SECRET_TOKEN"):
            await runtime.resume(handle.execution_id)
    async with open_runtime(
        journal=path, secrets=Secrets({}, {"ORCHESTR8_SECRET_TOKEN": TOKEN})
    ) as runtime:
        result = await (await runtime.resume(handle.execution_id)).wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    # The agent got the value; everything the runtime hands back or records is redacted.
    assert result.steps["call"].output == {"header": f"Bearer {REDACTED}", "raw": REDACTED}
    text = journal_text(path)
    assert TOKEN not in text
    assert "Bearer ${secrets.TOKEN}" in text


async def test_a_missing_secret_fails_the_start_before_anything_is_recorded() -> None:
    """No execution is recorded, and no step runs, when a referenced secret is not set."""
    workflow = document(python("call", "fails_until_fixed", input="${secrets.ABSENT}"))
    async with open_runtime(secrets=Secrets({}, {})) as runtime:
        with pytest.raises(MissingSecretError, match="missing secret ABSENT"):
            await runtime.start(workflow)
        assert not (await runtime.journal.list_executions()).items


async def test_a_secret_literal_in_a_step_input_is_redacted_where_an_agent_echoes_it(
    fresh_redactor: Redactor,
) -> None:
    """A literal under a secret key in a step `input` is known while the execution runs."""
    workflow = document(python("call", "leaks_its_key", input={"api_key": API_KEY}))
    async with open_runtime() as runtime:
        result = await (await runtime.start(workflow)).wait()
        events = await runtime.journal.events(result.execution_id)
    assert result.steps["call"].error == {
        "type": "NonRetryableError",
        "message": f"the service refused key {REDACTED}",
    }
    assert API_KEY not in json.dumps([event.to_json() for event in events])
    assert fresh_redactor.secret_count == 0


async def test_an_executions_secrets_are_released_when_it_ends(fresh_redactor: Redactor) -> None:
    """A thousand distinct `api_key` inputs leave the redactor as small as it started."""
    workflow = load_workflow(document({"id": "a", "agent": "echo", "input": "${inputs.api_key}"}))
    async with open_runtime() as runtime:
        for number in range(1000):
            handle = await runtime.start(workflow, {"api_key": f"distinct-key-{number:06d}"})
            assert fresh_redactor.secret_count == 1
            await handle.wait()
    assert fresh_redactor.secret_count == 0
    assert default_redactor() is fresh_redactor


async def test_a_workflow_started_again_is_recorded_with_the_secret_values_known_then(
    fresh_redactor: Redactor,
) -> None:
    """The journal's copy of a workflow started again is redacted anew once a value is known."""
    value = "literal-value-abcdef"
    workflow = load_workflow(document({"id": "a", "agent": "echo", "input": value}))
    async with open_runtime() as runtime:
        first = await (await runtime.start(workflow)).wait()
        again = await (await runtime.start(workflow)).wait()
        with fresh_redactor.lease([value]):
            known = await (await runtime.start(workflow)).wait()
        records = [
            await runtime.journal.get_execution(result.execution_id)
            for result in (first, again, known)
        ]
    steps = [record.workflow["steps"][0]["input"] for record in records]
    assert steps == [value, value, "***"]


async def test_resuming_steps_whose_literal_secrets_were_journaled_redacted_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A literal secret comes back as `***` on resume: a warning names where, and the fix."""
    workflow = document(
        python("first", "fails_until_fixed", input={"token": "literal-token-1"}),
        {
            **python("second", "fails_until_fixed", input={"password": "literal-pass-1"}),
            "depends_on": ["first"],
        },
    )
    FAILS["second"] = 1
    async with open_runtime() as runtime:
        handle = await runtime.start(workflow)
        assert (await handle.wait()).status is ExecutionStatus.FAILED
        with caplog.at_level("WARNING", logger="orchestr8.runtime"):
            result = await (await runtime.resume(handle.execution_id)).wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    messages = [
        record.getMessage() for record in caplog.records if record.name == "orchestr8.runtime"
    ]
    assert messages == [
        # `first` echoed its token: that output was journaled redacted, so `first` runs again.
        f"execution {handle.execution_id} runs first again: the journal holds its output "
        "redacted (it held a secret), and a resume reuses only outputs recorded as they were",
        f"execution {handle.execution_id} resumes with '***' in place of "
        "$.steps[0].input.token, $.steps[1].input.password (the journal keeps literal secrets "
        "redacted); write ${secrets.NAME} for the values a resume needs",
    ]
    # Log lines are redacted whole: the warning's own words must survive that intact.
    assert [Redactor().redact_text(message) for message in messages] == messages


async def test_a_secret_value_in_the_workflow_name_is_never_journaled(
    tmp_path: Path, fresh_redactor: Redactor
) -> None:
    """The execution's recorded name is redacted like the document: `inspect` and REST read it."""
    path = tmp_path / "journal.db"
    fresh_redactor.add_secret(TOKEN)
    async with open_runtime(journal=path) as runtime:
        handle = await runtime.start(document(python("call", "leaks_its_key"), name=f"n-{TOKEN}"))
        await handle.wait()
        [record] = (await runtime.journal.list_executions()).items
    assert record.workflow_name == f"n-{REDACTED}"
    assert TOKEN not in journal_text(path)
