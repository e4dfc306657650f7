"""Tests for the JSON Schema generator and the shipped schema files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from orchestr8._json import LARGEST_NUMBER
from orchestr8._workflow._codec import validate_workflow_document
from orchestr8._workflow._document import Step, workflow_schema
from orchestr8._workflow._policy_spec import RateLimitSpec
from orchestr8._workflow._schema import (
    add_schema_checks,
    render_schema,
    schema_for_class,
    schema_metadata,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [ROOT / "orchestr8" / "workflow.schema.json", ROOT / "docs" / "workflow.schema.json"]

RESEARCH_BRIEF_EXAMPLE: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "research-brief",
    "inputs": {
        "type": "object",
        "properties": {"topic": {"type": "string"}},
        "required": ["topic"],
    },
    "defaults": {"policy": {"timeout": 30.0}},
    "steps": [
        {"id": "search", "agent": "echo", "input": {"q": "${inputs.topic}"}},
        {
            "id": "brief",
            "agent": {"id": "llm", "version": "1", "config": {"model": "claude-sonnet-4-5"}},
            "input": {"prompt": "Summarise ${steps.search.output.q}"},
            "depends_on": ["search"],
            "policy": {"retry": {"max_attempts": 3, "jitter": "full"}, "circuit_breaker": None},
        },
    ],
    "output": {"brief": "${steps.brief.output}"},
}


@pytest.mark.parametrize("path", SHIPPED, ids=["package", "docs"])
def test_the_shipped_schema_files_equal_the_generated_schema(path: Path) -> None:
    """The package and docs copies are exactly what the generator writes today."""
    regenerate = (
        "python -m orchestr8._workflow._schema > orchestr8/workflow.schema.json, then copy to docs/"
    )
    assert path.read_text(encoding="utf-8") == render_schema(workflow_schema()), regenerate


def test_the_module_prints_the_schema() -> None:
    """`python -m orchestr8._workflow._schema` writes exactly the shipped file's text."""
    printed = subprocess.run(
        [sys.executable, "-m", "orchestr8._workflow._schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert printed == SHIPPED[0].read_text(encoding="utf-8")


def test_the_schema_is_valid_draft_2020_12_and_accepts_a_full_example() -> None:
    """The generated schema passes the meta-schema and accepts a document using each section."""
    schema = workflow_schema()
    Draft202012Validator.check_schema(schema)
    assert list(Draft202012Validator(schema).iter_errors(RESEARCH_BRIEF_EXAMPLE)) == []


def test_every_property_has_a_description() -> None:
    """Editors show descriptions, so no property may lack one."""
    schema = workflow_schema()
    objects = [schema, *schema["$defs"].values()]
    for body in objects:
        assert body["description"]
        for name, prop in body["properties"].items():
            assert prop.get("description"), name


def test_workflow_schema_returns_a_fresh_copy() -> None:
    """Callers may change the returned dict without changing what the next caller gets."""
    workflow_schema()["properties"].clear()
    assert "steps" in workflow_schema()["properties"]


class Marker:
    """Stands for a left-out value in the generator test."""


@attrs.frozen(kw_only=True)
class Inner:
    """An inner object."""

    flag: bool = attrs.field(default=False, metadata=schema_metadata("A flag."))


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class Outer:
    """An outer object."""

    name: str = attrs.field(metadata=schema_metadata("A name.", constraints={"minLength": 1}))
    count: int = attrs.field(
        default=1, metadata=schema_metadata("A count.", constraints={"minimum": 0})
    )
    ratio: float | None = attrs.field(default=None, metadata=schema_metadata("A ratio."))
    mode: Literal["a", "b"] = attrs.field(default="a", metadata=schema_metadata("A mode."))
    tags: tuple[str, ...] = attrs.field(default=(), metadata=schema_metadata("Tags."))
    extra: dict[str, Any] = attrs.field(factory=dict, metadata=schema_metadata("Extra."))
    inner: Inner | Marker | None = attrs.field(default=None, metadata=schema_metadata("Inner."))
    text: Any = attrs.field(
        default="", metadata=schema_metadata("Text.", json_type=Annotated[str, ("maxLength", 3)])
    )


def test_the_generator_maps_python_types_to_json_schema() -> None:
    """Scalars, unions with None, literals, tuples, dicts, nested classes and markers all map."""
    schema = schema_for_class(Outer, title="t", schema_id="urn:t", absent=(Marker,))
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["name"] == {"description": "A name.", "type": "string", "minLength": 1}
    assert props["count"] == {
        "description": "A count.",
        "type": "integer",
        "maximum": LARGEST_NUMBER,
        "minimum": 0,
        "default": 1,
    }
    assert props["ratio"]["type"] == ["number", "null"]
    assert props["ratio"]["maximum"] == LARGEST_NUMBER
    assert props["mode"]["enum"] == ["a", "b"]
    assert props["tags"]["items"] == {"type": "string"}
    assert props["extra"] == {"description": "Extra.", "type": "object", "default": {}}
    assert props["inner"]["anyOf"] == [{"$ref": "#/$defs/Inner"}, {"type": "null"}]
    assert props["text"] == {
        "description": "Text.",
        "type": "string",
        "maxLength": 3,
        "default": "",
    }
    assert schema["$defs"]["Inner"]["properties"]["flag"]["type"] == "boolean"


def test_the_field_transformer_applies_the_same_constraints() -> None:
    """Fields with constraints get a validator that enforces them in Python."""
    with pytest.raises(ValueError, match="count must be at least 0, got -1"):
        Outer(name="x", count=-1)
    with pytest.raises(ValueError, match="name must not be empty"):
        Outer(name="")


def test_the_shipped_file_is_plain_json() -> None:
    """The package file parses as JSON and names the draft it follows."""
    parsed = json.loads(SHIPPED[0].read_text(encoding="utf-8"))
    assert parsed["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# The shipped schema and `orchestr8 validate` agree on the edges


SHIPPED_VALIDATOR = Draft202012Validator(json.loads(SHIPPED[0].read_text(encoding="utf-8")))
HUGE = 10**400
NUMERIC_POLICY_FIELDS = [
    "timeout",
    "deadline",
    "retry.max_attempts",
    "retry.initial_delay",
    "retry.max_delay",
    "retry.multiplier",
    "circuit_breaker.failure_threshold",
    "circuit_breaker.reset_timeout",
    "circuit_breaker.half_open_requests",
    "bulkhead.max_concurrent",
    "bulkhead.max_wait",
    "rate_limit.rate",
    "rate_limit.burst",
    "rate_limit.max_wait",
]


def two_steps(**second: Any) -> dict[str, Any]:
    """A valid two-step document whose second step gets the fields `second`."""
    return {
        "schema_version": "1.0",
        "name": "edges",
        "steps": [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", **second}],
    }


def with_policy_value(dotted: str, value: Any) -> dict[str, Any]:
    """Two steps, the second's policy setting the (dotted) field to `value` in a complete group."""
    group, _, name = dotted.rpartition(".")
    if not group:
        return two_steps(policy={name: value})
    switched_on = {"bulkhead": {"max_concurrent": 1}, "rate_limit": {"rate": 1, "burst": 1}}
    return two_steps(policy={group: {**switched_on.get(group, {}), name: value}})


def agreeing_problems(document: dict[str, Any]) -> list[str]:
    """Validate's problems, after checking the shipped schema accepts exactly what validate does."""
    problems = [str(problem) for problem in validate_workflow_document(document)]
    assert SHIPPED_VALIDATOR.is_valid(document) == (not problems), problems
    return problems


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (two_steps(id="b\n"), "$.steps[1].id: 'b\\n' is not a valid step id"),
        (two_steps(id="b\nc"), "$.steps[1].id: 'b\\nc' is not a valid step id"),
        (two_steps(depends_on=["a", "a"]), "$.steps[1].depends_on[1]: 'a' is listed twice"),
        ({**two_steps(), "timeout": HUGE}, "$.timeout: must be at most 1.7976931348623157e+308"),
        ({**two_steps(), "max_concurrency": HUGE}, "$.max_concurrency: must be at most 1.79"),
        (
            {**two_steps(), "defaults": {"policy": {"retry": {"max_delay": HUGE}}}},
            "$.defaults.policy.retry.max_delay: must be at most 1.7976931348623157e+308 (the "
            "largest number a float holds), got 1000000000",
        ),
        (
            two_steps(policy={"timeout": "10"}),
            "$.steps[1].policy.timeout: expected a number or null, got a string",
        ),
        *(
            (with_policy_value(field, HUGE), f"$.steps[1].policy.{field}: must be at most 1.79")
            for field in NUMERIC_POLICY_FIELDS
        ),
    ],
)
def test_edges_are_refused_by_schema_and_validate_with_exact_paths(
    document: dict[str, Any], expected: str
) -> None:
    """A trailing newline, a repeated need, a number no float holds: both refuse, at a path."""
    problems = agreeing_problems(document)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


@pytest.mark.parametrize("field", NUMERIC_POLICY_FIELDS)
def test_the_largest_numbers_a_float_holds_are_accepted_by_both(field: str) -> None:
    """The bound is the float range itself: its largest value, as an integer, passes both."""
    assert agreeing_problems(with_policy_value(field, int(LARGEST_NUMBER))) == []


@given(
    st.text(max_size=6)
    | st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,4}", fullmatch=True).flatmap(
        lambda valid: st.sampled_from([valid, valid + "\n", valid + "\r\n", " " + valid])
    )
)
def test_schema_and_validate_agree_on_every_step_id(step_id: str) -> None:
    """Any string is a step id for both, or for neither."""
    assume(step_id != "a")  # the first step's id: a duplicate is validate's check alone
    agreeing_problems(two_steps(id=step_id))


@given(
    st.sampled_from(NUMERIC_POLICY_FIELDS),
    st.integers(min_value=-(10**310), max_value=10**310)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 1, HUGE, int(LARGEST_NUMBER), int(LARGEST_NUMBER) + 1]),
)
def test_schema_and_validate_agree_on_every_policy_number(field: str, value: int | float) -> None:
    """Any JSON number in any numeric policy field is accepted by both, or by neither."""
    agreeing_problems(with_policy_value(field, value))


@given(st.lists(st.sampled_from(["a", "c"]), max_size=4))
def test_schema_and_validate_agree_on_repeated_dependencies(needs: list[str]) -> None:
    """A dependency listed twice is refused by both; the others pass the schema."""
    document = two_steps(depends_on=needs)
    document["steps"].insert(0, {"id": "c", "agent": "echo"})
    agreeing_problems(document)


def test_python_built_specs_refuse_numbers_no_float_holds() -> None:
    """A workflow built in Python obeys the same bound as a document."""
    with pytest.raises(ValueError, match=r"burst must be at most 1.7976931348623157e\+308"):
        RateLimitSpec(rate=1.0, burst=HUGE)
    with pytest.raises(ValueError, match=r"id .* does not match"):
        Step(id="a\n", agent="echo")
