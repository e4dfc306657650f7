"""Tests for reading, validating, structuring and serialising workflow documents."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._agents._registry import AgentRegistry
from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._codec import (
    MAX_DOCUMENT_BYTES,
    load_workflow,
    parse_workflow,
    validate_workflow_document,
    workflow_to_json,
)
from orchestr8._workflow._document import AgentSpec, Step, Strategy, Workflow, WorkflowDefaults
from orchestr8._workflow._policy_spec import (
    BulkheadSpec,
    CircuitBreakerSpec,
    PolicySpec,
    RateLimitSpec,
    RetrySpec,
)

GOLDEN = Path(__file__).parents[1] / "golden"
KNOWN_AGENTS = frozenset({"echo", "sleep", "fail", "python", "llm"})

MINIMAL: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "minimal",
    "steps": [{"id": "a", "agent": "echo", "input": {"q": "${inputs.topic}"}}],
}


def problems(source: Any, **options: Any) -> list[str]:
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(source, **options)
    return [str(problem) for problem in caught.value.problems]


def with_changes(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(MINIMAL))
    document.update(changes)
    return document


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda path: path.stem)
def test_golden_broken_workflows_report_exactly_the_expected_problems(path: Path) -> None:
    """Each broken workflow in `tests/golden` gives exactly the lines `orchestr8 validate` shows."""
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    assert problems(path, agent_exists=AgentRegistry().check) == expected


def test_every_golden_case_has_an_expected_file_and_problems() -> None:
    """The corpus is complete: no case without expectations, no expectations without a case."""
    cases = {path.stem for path in GOLDEN.glob("*.json")}
    expectations = {path.stem for path in GOLDEN.glob("*.expected")}
    assert cases == expectations
    assert all(path.read_text(encoding="utf-8").strip() for path in GOLDEN.glob("*.expected"))


def test_loads_from_a_dict_json_text_a_path_string_and_a_path(tmp_path: Path) -> None:
    """All source forms give the same workflow."""
    file = tmp_path / "flow.json"
    file.write_text(json.dumps(MINIMAL), encoding="utf-8")
    loaded = [
        load_workflow(MINIMAL),
        load_workflow(json.dumps(MINIMAL)),
        load_workflow("  \n" + json.dumps(MINIMAL)),
        load_workflow(str(file)),
        load_workflow(file),
    ]
    assert all(workflow == loaded[0] for workflow in loaded)
    assert loaded[0].steps[0].agent == AgentSpec(id="echo")


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """Editors on some systems write a BOM; it is not an error."""
    file = tmp_path / "bom.json"
    file.write_bytes(b"\xef\xbb\xbf" + json.dumps(MINIMAL).encode())
    assert load_workflow(file).name == "minimal"


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    """The message of a file's validation error starts with its path."""
    file = tmp_path / "flow.json"
    file.write_text(json.dumps(with_changes(strategy="dg")), encoding="utf-8")
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(file)
    assert caught.value.source == str(file)
    assert str(caught.value).startswith(f"{file}: invalid workflow (1 problem):\n  $.strategy:")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "$: the document is empty"),
        (b"  \n\t ", "$: the document is empty"),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "$: this is a binary file (it contains NUL bytes), not JSON text",
        ),
        (b'{"name": "caf\xe9"}', "$: not UTF-8 text (byte 0xe9 at offset 13)"),
        (
            b'{\n  "name": "x",\n  "steps": [,]\n}',
            "$: invalid JSON at line 3, column 13: Expecting value",
        ),
        (b'{"timeout": NaN}', "$: NaN is not valid JSON (numbers must be finite)"),
        (b'{"timeout": 1e999}', "$.timeout: numbers must be finite, got inf"),
        (b"[" * 100 + b"]" * 100, "$" + "[0]" * 64 + ": nested deeper than 64 levels"),
        (b"[" * 100_000 + b"]" * 100_000, "$: nested deeper than 64 levels"),
    ],
    ids=["empty", "blank", "binary", "latin-1", "syntax", "nan", "overflow", "deep", "very-deep"],
)
def test_unreadable_files_are_one_clear_problem(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Bad bytes, bad text and bad JSON are reported, never raised as tracebacks."""
    file = tmp_path / "flow.json"
    file.write_bytes(content)
    assert problems(file) == [message]


def test_a_missing_file_and_a_directory_are_reported(tmp_path: Path) -> None:
    """Paths that are not readable files give a problem, not an `OSError`."""
    assert problems(tmp_path / "absent.json") == ["$: no such file"]
    assert problems(tmp_path) == ["$: this is a directory, not a workflow file"]
    assert problems(str(tmp_path / "nul\x00byte.json")) == ["$: not a usable file path"]


class RecordingReader(io.BufferedReader):
    """A binary file that records the sizes asked of `read`, to show what a reader reads."""

    sizes: list[int | None]

    def read(self, size: int | None = -1, /) -> bytes:
        self.sizes.append(size)
        return super().read(size)


def test_a_huge_file_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 50 MB file is refused on its size, against the 10 MiB limit, before any byte is read."""
    file = tmp_path / "huge.json"
    with file.open("wb") as handle:
        handle.write(b"[")
        handle.truncate(50 * 1024 * 1024)
    readers: list[RecordingReader] = []

    def open_recording(path: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        assert mode == "rb"
        reader = RecordingReader(io.FileIO(path, "rb"))
        reader.sizes = []
        readers.append(reader)
        return reader

    monkeypatch.setattr(Path, "open", open_recording)
    assert problems(file) == ["$: the file is larger than the 10 MiB limit for workflow documents"]
    assert len(readers) == 1
    assert readers[0].sizes == []
    assert readers[0].closed
    assert MAX_DOCUMENT_BYTES == 10 * 1024 * 1024


def test_huge_json_text_is_refused() -> None:
    """Text passed directly obeys the same limit."""
    text = '{"name": "' + "x" * MAX_DOCUMENT_BYTES + '"}'
    assert problems(text) == [
        "$: the document is larger than the 10 MiB limit for workflow documents"
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_concurrency": 2.9}, "$.max_concurrency: expected an integer, got a number"),
        ({"max_concurrency": True}, "$.max_concurrency: expected an integer, got a boolean"),
        ({"fail_fast": 1}, "$.fail_fast: expected a boolean, got an integer"),
        ({"name": None}, "$.name: expected a string, got null"),
        ({"timeout": "5"}, "$.timeout: expected a number or null, got a string"),
        ({"timeout": False}, "$.timeout: expected a number or null, got a boolean"),
        ({"steps": "a"}, "$.steps: expected an array, got a string"),
    ],
)
def test_values_are_never_coerced(changes: dict[str, Any], message: str) -> None:
    """No `2.9 -> 2`, no `None -> 'None'`, and a boolean is not a number."""
    assert problems(with_changes(**changes)) == [message]


def test_strings_holding_lone_surrogates_are_refused_where_text_goes() -> None:
    """`"\\ud800"` is valid JSON but not text: names and descriptions must be text."""
    document = with_changes(name="wf\ud800", description="\udc80")
    assert problems(document) == [
        "$.description: '\\udc80' holds a lone surrogate, which is not text",
        "$.name: 'wf\\ud800' holds a lone surrogate, which is not text",
    ]
    text = '{"schema_version": "1.0", "name": "wf\\ud800", "steps": [{"id": "a", "agent": "echo"}]}'
    with pytest.raises(WorkflowValidationError, match=r"\$\.name: .* lone surrogate"):
        load_workflow(text)


def test_integers_are_accepted_where_numbers_go_and_integral_floats_where_integers_go() -> None:
    """`"timeout": 5` is 5.0 seconds and `"max_attempts": 3.0` is 3 attempts."""
    document = with_changes(timeout=5, defaults={"policy": {"retry": {"max_attempts": 3.0}}})
    loaded = load_workflow(document)
    assert loaded.timeout == 5.0
    assert isinstance(loaded.timeout, float)
    assert loaded.policy_for("a").retry.max_attempts == 3
    assert isinstance(loaded.policy_for("a").retry.max_attempts, int)


def test_an_integer_too_long_for_python_is_named_at_its_path() -> None:
    """A 5000-digit integer in a workflow file is a problem at its path, not a bare parse error."""
    text = json.dumps(with_changes(timeout=1)).replace('"timeout": 1', '"timeout": ' + "9" * 5000)
    assert problems(text) == [
        "$.timeout: a number with 5000 digits is larger than any float "
        "(at most 1.7976931348623157e+308)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    """Type, key, graph and reference problems of one document come back together."""
    document = with_changes(
        strategy="sequentail",
        extra=1,
        steps=[
            {"id": "a", "agent": "echo", "policy": {"timeout": -1}},
            {"id": "a", "agent": "echo", "depends_on": ["b"]},
            {"id": "c", "agent": "nope", "input": "${steps.d.output}"},
        ],
    )
    assert problems(document, agent_exists=KNOWN_AGENTS.__contains__) == [
        "$: unknown key 'extra'",
        "$.steps[0].policy.timeout: must be greater than 0, got -1",
        "$.steps[1].depends_on[0]: unknown step 'b'",
        "$.steps[1].id: duplicate step id 'a' (also $.steps[0].id)",
        "$.steps[2].agent: unknown agent 'nope'",
        "$.steps[2].input: ${steps.d.output} refers to unknown step 'd'",
        "$.strategy: expected one of 'dag', 'sequential', 'parallel', got 'sequentail'",
    ]


def test_agents_are_checked_only_when_a_registry_is_given() -> None:
    """Without `agent_exists` any agent id is accepted, since the registry lives elsewhere."""
    document = with_changes(steps=[{"id": "a", "agent": {"id": "somewhere:else"}}])
    agent = load_workflow(document).steps[0].agent
    assert agent is not None
    assert agent.id == "somewhere:else"
    assert problems(document, agent_exists=lambda agent: False) == [
        "$.steps[0].agent.id: unknown agent 'somewhere:else'"
    ]


def test_validate_and_parse_report_the_same_problems() -> None:
    """`validate_workflow_document` returns what `parse_workflow` raises, with the source named."""
    document = with_changes(steps=[])
    found = validate_workflow_document(document)
    assert [str(problem) for problem in found] == ["$.steps: must not be empty"]
    with pytest.raises(WorkflowValidationError) as caught:
        parse_workflow(document, source="api")
    assert caught.value.problems == found
    assert caught.value.source == "api"
    assert validate_workflow_document(MINIMAL) == ()


def test_non_json_values_in_a_dict_source_are_reported() -> None:
    """Dicts built in Python may hold things JSON cannot; each is reported at its path."""
    document = with_changes(
        steps=[
            {
                "id": "a",
                "agent": "echo",
                "input": {
                    "s": {1, 2},
                    3: "x",
                    "f": float("nan"),
                    "t": (1,),
                    "m": MappingProxyType({}),
                },
            }
        ]
    )
    assert problems(document) == [
        "$.steps[0].input: object keys must be strings, got 3",
        "$.steps[0].input.f: numbers must be finite, got nan",
        "$.steps[0].input.m: not a JSON value: a mappingproxy (use a dict or a list)",
        "$.steps[0].input.s: not a JSON value: a set",
        "$.steps[0].input.t: not a JSON value: a tuple (use a dict or a list)",
    ]
    assert load_workflow(MappingProxyType(MINIMAL)) == load_workflow(MINIMAL)


def test_workflow_to_json_leaves_out_defaults_and_keeps_document_order() -> None:
    """The stored document is compact: only what differs from the defaults, in schema order."""
    loaded = load_workflow(
        with_changes(
            description="",
            strategy="dag",
            steps=[
                {
                    "id": "a",
                    "agent": {"id": "echo"},
                    "depends_on": [],
                    "policy": {},
                    "on_error": "fail",
                },
                {
                    "id": "b",
                    "agent": {"id": "llm", "config": {"m": 1}},
                    "policy": {"circuit_breaker": None},
                },
            ],
            output={"x": "${steps.b.output}"},
        )
    )
    assert workflow_to_json(loaded) == {
        "schema_version": "1.0",
        "name": "minimal",
        "steps": [
            {"id": "a", "agent": "echo"},
            {
                "id": "b",
                "agent": {"id": "llm", "config": {"m": 1}},
                "policy": {"circuit_breaker": None},
            },
        ],
        "output": {"x": "${steps.b.output}"},
    }


def test_workflow_to_json_returns_a_copy() -> None:
    """Changing the returned document does not change the workflow."""
    loaded = load_workflow(MINIMAL)
    workflow_to_json(loaded)["steps"][0]["input"]["q"] = "changed"
    assert loaded.steps[0].input.source == {"q": "${inputs.topic}"}


STEP_IDS = st.lists(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True),
    min_size=1,
    max_size=6,
    unique=True,
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
)
PLAIN_TEXT = st.text(max_size=12).map(lambda text: text.replace("$", "S"))
TIMES = st.floats(min_value=0, max_value=1e6, allow_nan=False)
POSITIVE = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
COUNTS = st.integers(min_value=1, max_value=100)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just("inherit"), strategy)


def spec(cls: type, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    drawn = st.fixed_dictionaries({name: maybe(value) for name, value in fields.items()})
    return drawn.map(lambda values: cls(**{k: v for k, v in values.items() if v != "inherit"}))


POLICIES = spec(
    PolicySpec,
    timeout=st.none() | POSITIVE,
    retry=spec(
        RetrySpec,
        max_attempts=COUNTS,
        initial_delay=TIMES,
        max_delay=TIMES,
        multiplier=POSITIVE,
        jitter=st.sampled_from(["full", "equal", "none"]),
    ),
    circuit_breaker=st.none()
    | spec(
        CircuitBreakerSpec, failure_threshold=COUNTS, reset_timeout=TIMES, half_open_requests=COUNTS
    ),
    deadline=st.none() | POSITIVE,
    bulkhead=st.none() | st.builds(BulkheadSpec, max_concurrent=COUNTS, max_wait=TIMES),
    rate_limit=st.none() | st.builds(RateLimitSpec, rate=POSITIVE, burst=COUNTS, max_wait=TIMES),
    key=st.none() | PLAIN_TEXT,
)


@attrs.frozen
class ReferenceSlot:
    """A leaf to be replaced by one of the references a step may use."""

    choice: int


def fill(value: Any, references: list[str]) -> Any:
    if isinstance(value, ReferenceSlot):
        return references[value.choice % len(references)] if references else "plain"
    if isinstance(value, list):
        return [fill(item, references) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, references) for key, item in value.items()}
    return value


def json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(PLAIN_TEXT, children, max_size=3)


INPUT_VALUES = st.recursive(
    SCALARS | PLAIN_TEXT | st.builds(ReferenceSlot, st.integers(0, 99)),
    json_containers,
    max_leaves=8,
)
AGENTS = st.sampled_from(["echo", "llm"]) | st.builds(
    AgentSpec,
    id=st.just("llm"),
    version=st.none() | PLAIN_TEXT,
    config=st.dictionaries(PLAIN_TEXT, SCALARS, max_size=2),
)
INPUT_NAMES = st.lists(
    st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True), max_size=3, unique=True
)


STRATEGIES: tuple[Strategy, ...] = ("dag", "sequential", "parallel")


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    """Valid workflows: acyclic dependencies on earlier steps, references only where allowed."""
    ids = draw(STEP_IDS)
    names = draw(INPUT_NAMES)
    strategy = draw(st.sampled_from(STRATEGIES))
    steps = []
    for index, step_id in enumerate(ids):
        earlier = ids[:index]
        depends_on = [other for other in earlier if draw(st.booleans())]
        readable = earlier if strategy == "sequential" else depends_on
        references = [f"${{inputs.{name}}}" for name in names]
        references += [f"${{steps.{other}.output}}" for other in readable]
        steps.append(
            Step(
                id=step_id,
                agent=draw(AGENTS),
                input=fill(draw(INPUT_VALUES), references),
                depends_on=depends_on,
                policy=draw(POLICIES),
                on_error=draw(st.sampled_from(["fail", "continue"])),
            )
        )
    output = draw(st.none() | st.builds(ReferenceSlot, st.integers(0, 99)))
    step_references = [f"${{steps.{step_id}.output}}" for step_id in ids]
    return Workflow(
        name=draw(PLAIN_TEXT.filter(bool)),
        description=draw(PLAIN_TEXT),
        inputs={"type": "object", "properties": {name: {"type": "string"} for name in names}},
        strategy=strategy,
        max_concurrency=draw(st.integers(0, 8)),
        fail_fast=draw(st.booleans()),
        defaults=WorkflowDefaults(policy=draw(POLICIES)),
        timeout=draw(st.none() | POSITIVE),
        steps=steps,
        output=None if output is None else {"out": fill(output, step_references)},
    )


@given(workflows())
def test_any_valid_workflow_survives_a_round_trip_through_json(workflow: Workflow) -> None:
    """Serialising to JSON text and loading it back gives an equal workflow."""
    document = workflow_to_json(workflow)
    loaded = load_workflow(json.loads(json.dumps(document)))
    assert loaded == workflow
    assert workflow_to_json(loaded) == document
    assert all(
        loaded.policy_for(step.id) == workflow.policy_for(step.id) for step in workflow.steps
    )


def test_a_schema_key_for_editors_is_accepted_and_ignored() -> None:
    """`"$schema"` lets editors find the schema; it is checked to be a string and then dropped."""
    loaded = load_workflow(with_changes(**{"$schema": "./workflow.schema.json"}))
    assert loaded == load_workflow(MINIMAL)
    assert "$schema" not in workflow_to_json(loaded)
    assert problems(with_changes(**{"$schema": 1})) == [
        "$['$schema']: expected a string, got an integer"
    ]


def test_a_valid_document_has_its_graph_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a valid document analyses its step graph once (as the Workflow is built)."""
    import orchestr8._workflow._codec
    import orchestr8._workflow._document
    from orchestr8._workflow._graph import GraphAnalysis, analyse_graph

    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> GraphAnalysis:
        calls.append(1)
        return analyse_graph(*args, **kwargs)

    monkeypatch.setattr(orchestr8._workflow._codec, "analyse_graph", counting)
    monkeypatch.setattr(orchestr8._workflow._document, "analyse_graph", counting)
    document = json.loads((Path(__file__).parents[2] / "examples" / "hello.json").read_text())
    load_workflow(document, agent_exists=AgentRegistry().check)
    assert len(calls) == 1
