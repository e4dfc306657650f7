"""Tests for the workflow AST: construction, policy merging, the graph and the static checks."""

from __future__ import annotations

from typing import Any

import pytest

from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._document import AgentSpec, Step, Workflow, WorkflowDefaults
from orchestr8._workflow._expressions import Template
from orchestr8._workflow._policy import (
    BulkheadPolicy,
    CircuitBreakerPolicy,
    Policy,
    RateLimitPolicy,
    RetryPolicy,
)
from orchestr8._workflow._policy_spec import (
    INHERIT,
    BulkheadSpec,
    CircuitBreakerSpec,
    PolicySpec,
    RateLimitSpec,
    RetrySpec,
    overlay_policy,
    resolve_policy,
)


def workflow(*steps: Step, **fields: Any) -> Workflow:
    return Workflow(name="test", steps=steps, **fields)


def problems_of(*steps: Step, **fields: Any) -> list[str]:
    with pytest.raises(WorkflowValidationError) as caught:
        workflow(*steps, **fields)
    return [str(problem) for problem in caught.value.problems]


def step(step_id: str, *depends_on: str, **fields: Any) -> Step:
    return Step(id=step_id, agent="echo", depends_on=depends_on, **fields)


def test_a_malformed_reference_in_python_construction_raises_at_once() -> None:
    """Templates compile when a step is built, so a bad reference fails right there."""
    with pytest.raises(WorkflowValidationError, match=r"invalid reference \$\{steps.c.outputs\}"):
        step("a", input="${steps.c.outputs}")


def test_python_construction_converts_agent_input_and_lists() -> None:
    """A bare agent id becomes an `AgentSpec`, the input a compiled template, lists tuples."""
    built = Step(id="a", agent="echo", input={"q": "${inputs.q}"}, depends_on=[])
    assert built.agent == AgentSpec(id="echo")
    assert isinstance(built.input, Template)
    assert built.input.source == {"q": "${inputs.q}"}
    assert built.depends_on == ()
    assert built.policy == PolicySpec()
    assert built.on_error == "fail"


def test_defaults_match_the_design() -> None:
    """A minimal workflow has the documented defaults."""
    minimal = workflow(step("a"))
    assert minimal.schema_version == "1.1"
    assert (minimal.strategy, minimal.max_concurrency, minimal.fail_fast) == ("dag", 0, True)
    assert minimal.inputs == {"type": "object"}
    assert minimal.timeout is None
    assert minimal.output is None
    assert minimal.defaults == WorkflowDefaults()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Step(id="1a", agent="echo"), "id '1a' does not match"),
        (lambda: Step(id="a", agent=""), "id must not be empty"),
        (lambda: RetrySpec(max_attempts=0), "max_attempts must be at least 1, got 0"),
        (lambda: RetrySpec(multiplier=0), "multiplier must be greater than 0, got 0"),
        (lambda: PolicySpec(timeout=-1.0), "timeout must be greater than 0, got -1.0"),
        (lambda: CircuitBreakerSpec(reset_timeout=-0.5), "reset_timeout must be at least 0"),
        (lambda: Workflow(name="x", steps=[]), "steps must not be empty"),
        (lambda: Workflow(name="", steps=[step("a")]), "name must not be empty"),
        (lambda: Workflow(name="x", steps=[step("a")], max_concurrency=-1), "max_concurrency"),
    ],
)
def test_python_construction_obeys_the_schema_constraints(build: Any, message: str) -> None:
    """The constraints in the generated schema also guard values built in Python."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


def test_no_policy_anywhere_resolves_to_the_builtin_defaults() -> None:
    """With no policy given, a step gets exactly `Policy()`."""
    assert workflow(step("a")).policy_for("a") == Policy()


def test_step_policy_merges_over_defaults_field_by_field_and_deeply() -> None:
    """Inside `retry` and the other sections, each field comes from the closest level giving it."""
    defaults = PolicySpec(
        timeout=10.0,
        retry=RetrySpec(max_attempts=5, jitter="none"),
        circuit_breaker=CircuitBreakerSpec(failure_threshold=2),
    )
    own = PolicySpec(
        retry=RetrySpec(initial_delay=0.5), circuit_breaker=CircuitBreakerSpec(reset_timeout=5.0)
    )
    built = workflow(step("a", policy=own), step("b"), defaults=WorkflowDefaults(policy=defaults))
    assert built.policy_for("a") == Policy(
        timeout=10.0,
        retry=RetryPolicy(max_attempts=5, initial_delay=0.5, jitter="none"),
        circuit_breaker=CircuitBreakerPolicy(failure_threshold=2, reset_timeout=5.0),
    )
    assert built.policy_for("b") == Policy(
        timeout=10.0,
        retry=RetryPolicy(max_attempts=5, jitter="none"),
        circuit_breaker=CircuitBreakerPolicy(failure_threshold=2),
    )


def test_none_switches_a_feature_off_and_an_object_back_on() -> None:
    """`null` turns off the timeout or breaker; a section object over an off one turns it on."""
    defaults = PolicySpec(circuit_breaker=None, timeout=None)
    built = workflow(
        step("off"),
        step(
            "on",
            policy=PolicySpec(circuit_breaker=CircuitBreakerSpec(failure_threshold=9), timeout=2.0),
        ),
        step("empty", policy=PolicySpec(circuit_breaker=CircuitBreakerSpec())),
        defaults=WorkflowDefaults(policy=defaults),
    )
    assert built.policy_for("off").circuit_breaker is None
    assert built.policy_for("off").timeout is None
    assert built.policy_for("on").circuit_breaker == CircuitBreakerPolicy(failure_threshold=9)
    assert built.policy_for("on").timeout == 2.0
    assert built.policy_for("empty").circuit_breaker == CircuitBreakerPolicy()


def test_bulkhead_rate_limit_deadline_and_key_resolve() -> None:
    """Sections without built-in defaults are switched on by giving their required fields."""
    own = PolicySpec(
        bulkhead=BulkheadSpec(max_concurrent=2),
        rate_limit=RateLimitSpec(rate=5.0, burst=10),
        deadline=30.0,
        key="shared",
    )
    resolved = workflow(step("a", policy=own)).policy_for("a")
    assert resolved.bulkhead == BulkheadPolicy(max_concurrent=2, max_wait=0.0)
    assert resolved.rate_limit == RateLimitPolicy(rate=5.0, burst=10, max_wait=0.0)
    assert (resolved.deadline, resolved.key) == (30.0, "shared")


def test_a_section_missing_required_fields_is_blamed_on_the_level_that_switched_it_on() -> None:
    """A bulkhead without `max_concurrent` is reported where it was written."""
    defaults = WorkflowDefaults(policy=PolicySpec(bulkhead=BulkheadSpec(max_wait=1.0)))
    assert problems_of(
        step("a"),
        step("b", policy=PolicySpec(rate_limit=RateLimitSpec(rate=1.0))),
        step("c", policy=PolicySpec(bulkhead=BulkheadSpec(max_concurrent=3))),
        defaults=defaults,
    ) == [
        "$.defaults.policy.bulkhead: missing 'max_concurrent', required to switch bulkhead on",
        "$.steps[1].policy.rate_limit: missing 'burst', required to switch rate_limit on",
    ]


def test_overlay_and_resolve_policy_are_usable_on_their_own() -> None:
    """`overlay_policy` keeps what the upper level leaves out; `resolve_policy` fills the rest."""
    lower = PolicySpec(timeout=5.0, retry=RetrySpec(max_attempts=2))
    upper = PolicySpec(retry=RetrySpec(multiplier=3.0))
    merged = overlay_policy(lower, upper)
    assert merged == PolicySpec(timeout=5.0, retry=RetrySpec(max_attempts=2, multiplier=3.0))
    assert merged.deadline is INHERIT
    assert resolve_policy(merged).retry == RetryPolicy(max_attempts=2, multiplier=3.0)
    with pytest.raises(
        ValueError, match="rate_limit: missing 'rate' and 'burst', required to switch rate_limit on"
    ):
        resolve_policy(PolicySpec(rate_limit=RateLimitSpec()))


def test_policy_for_an_unknown_step_raises_key_error() -> None:
    """Asking for a step that does not exist is a `KeyError`."""
    with pytest.raises(KeyError):
        workflow(step("a")).policy_for("b")


def test_dag_graph_dependencies_dependents_and_order() -> None:
    """The engine gets direct dependencies, dependents and a document-ordered topological order."""
    built = workflow(step("report", "b", "a"), step("a"), step("b", "a"), step("solo"))
    assert dict(built.dependencies) == {"report": ("b", "a"), "a": (), "b": ("a",), "solo": ()}
    assert dict(built.dependents) == {
        "report": (),
        "a": ("report", "b"),
        "b": ("report",),
        "solo": (),
    }
    assert built.order == ("a", "b", "report", "solo")
    assert built.steps_by_id["b"].depends_on == ("a",)


def test_sequential_adds_the_previous_step_as_a_dependency() -> None:
    """With `sequential` each step depends on the one before, besides its own `depends_on`."""
    built = workflow(step("a"), step("b"), step("c", "a"), strategy="sequential")
    assert dict(built.dependencies) == {"a": (), "b": ("a",), "c": ("a", "b")}
    assert built.order == ("a", "b", "c")


def test_parallel_adds_no_dependencies() -> None:
    """With `parallel` only explicit `depends_on` count."""
    built = workflow(step("a"), step("b"), strategy="parallel")
    assert dict(built.dependencies) == {"a": (), "b": ()}


def test_duplicate_ids_and_bad_depends_on_are_all_reported() -> None:
    """Duplicates, unknown, self and repeated dependencies each get a problem at their path."""
    assert problems_of(
        step("search"),
        step("search"),
        step("brief", "serch", "brief", "search", "search"),
    ) == [
        "$.steps[1].id: duplicate step id 'search' (also $.steps[0].id)",
        "$.steps[2].depends_on[0]: unknown step 'serch' (did you mean 'search'?)",
        "$.steps[2].depends_on[1]: step 'brief' cannot depend on itself",
        "$.steps[2].depends_on[3]: 'search' is listed twice",
    ]


def test_cycles_are_named_from_their_first_step_in_document_order() -> None:
    """Each cycle is reported once, as `a -> b -> c -> a` (each step depends on the next)."""
    assert problems_of(
        step("b", "c"), step("a", "b"), step("c", "a"), step("x", "y"), step("y", "x")
    ) == [
        "$.steps: dependency cycle b -> c -> a -> b",
        "$.steps: dependency cycle x -> y -> x",
    ]


def test_a_forward_dependency_in_a_sequential_workflow_is_a_cycle() -> None:
    """The implicit edge of `sequential` closes a cycle with a dependency on a later step."""
    assert problems_of(step("a", "b"), step("b"), strategy="sequential") == [
        "$.steps: dependency cycle a -> b -> a"
    ]


def test_step_references_must_name_known_dependencies() -> None:
    """A step may read only steps it depends on, directly or through others."""
    assert problems_of(
        step("a"),
        step("b", "a"),
        step("c", "b", input={"ok": "${steps.a.output}", "x": "${steps.d.output}"}),
        step("d", input="${steps.d.output} ${steps.nope.output}"),
    ) == [
        "$.steps[2].input.x: ${steps.d.output} refers to step 'd', which step 'c' does not"
        " depend on (add 'd' to depends_on)",
        "$.steps[3].input: ${steps.d.output} refers to the output of its own step",
        "$.steps[3].input: ${steps.nope.output} refers to unknown step 'nope'",
    ]


def test_in_a_sequential_workflow_every_earlier_step_may_be_referenced() -> None:
    """Sequential steps depend transitively on all earlier ones."""
    built = workflow(
        step("a"), step("b"), step("c", input="${steps.a.output}"), strategy="sequential"
    )
    assert built.steps_by_id["c"].input.references[0].step_id == "a"


def test_the_output_may_reference_any_step_but_not_unknown_ones() -> None:
    """The workflow output is rendered after all steps, so only existence is checked."""
    assert workflow(step("a"), step("b"), output={"a": "${steps.a.output}"}).output is not None
    assert problems_of(step("a"), output=["${steps.b.output}"]) == [
        "$.output[0]: ${steps.b.output} refers to unknown step 'b'"
    ]


@pytest.mark.parametrize(
    ("inputs", "known"),
    [
        ({"type": "object"}, True),
        ({"type": "object", "properties": {"topic": {}}}, False),
        ({"type": "object", "properties": {"topic": {}}, "additionalProperties": True}, True),
        (
            {
                "type": "object",
                "properties": {"topic": {}},
                "additionalProperties": {"type": "string"},
            },
            True,
        ),
        ({"type": "object", "properties": {}, "patternProperties": {"^top": {}}}, True),
    ],
)
def test_input_references_are_checked_against_declared_properties(
    inputs: dict[str, Any], known: bool
) -> None:
    """Undeclared input names are errors only where the schema declares its properties."""
    steps = (step("a", input="${inputs.topc}"),)
    if known:
        workflow(*steps, inputs=inputs)
    else:
        assert problems_of(*steps, inputs=inputs) == [
            "$.steps[0].input: ${inputs.topc} refers to unknown input 'topc'"
            " (did you mean 'topic'?)"
        ]


def test_inputs_must_be_a_valid_json_schema_for_an_object() -> None:
    """A broken inputs schema, or one describing something other than an object, is reported."""
    assert problems_of(
        step("a"), inputs={"type": "object", "properties": {"n": {"type": "integr"}}}
    ) == [
        "$.inputs.properties.n.type: expected one of 'array', 'boolean', 'integer', 'null',"
        " 'number', 'object', 'string' or an array, got 'integr'"
    ]
    assert problems_of(step("a"), inputs={"type": "string"}) == [
        "$.inputs.type: the inputs must be described as an 'object'"
    ]


def test_workflows_are_equal_by_value() -> None:
    """Two workflows built from equal parts are equal, whatever their derived state."""
    assert workflow(step("a", input={"x": 1})) == workflow(step("a", input={"x": 1}))
    assert workflow(step("a", input={"x": 1})) != workflow(step("a", input={"x": 2}))
