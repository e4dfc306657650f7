"""The workflow AST: frozen values for a document, its steps, and the JSON Schema they generate.

Every `Workflow` is valid once built: construction checks the dependency graph and the `${...}`
references (`analyse_graph`), resolves each step's policy (`_policy_spec`), and raises
`WorkflowValidationError` with every problem found. The JSON Schema is generated from these classes
(`workflow_schema`), so the field metadata here is the single source of descriptions, defaults and
constraints.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import attrs

from .._errors import Problem, WorkflowValidationError
from ._approvals import Approval, approval_problems, approval_references
from ._budgets import Budget, budget_problems, pause_gate_clashes
from ._conditions import Expression
from ._config_secrets import config_references
from ._expressions import Template, compile_template
from ._graph import GraphAnalysis, StepOutline, analyse_graph
from ._loops import LOOP_LOCALS, OnMaxIterations, Repeat, check_repeat
from ._map_fields import map_fields, to_for_each, to_when
from ._plans import plan_field_problems, planner_references
from ._policy import Policy
from ._policy_spec import (
    INHERIT,
    Inherit,
    PolicySpec,
    missing_fields_message,
    missing_policy_fields,
    overlay_policy,
    resolve_policy,
)
from ._provider_specs import PROVIDERS_CONSTRAINTS, ProviderSpec, provider_spec_problems
from ._schema import add_schema_checks, schema_for_class, schema_metadata
from ._schema_problems import sort_problems
from ._step_conditions import locate_conditions
from ._sub_workflows import (
    SubWorkflow,
    literal_input_problems,
    step_kind_problems,
    to_sub_workflow,
)

#: The schema version this orchestr8 writes; it reads "1.0" documents too (see `SCHEMA_VERSIONS`).
SCHEMA_VERSION: Final = "1.1"

#: Every schema version this orchestr8 reads. "1.1" added expressions and the fields built on
#: them (conditions, maps, loops, sub-workflows); a "1.0" document is read exactly as before.
SCHEMA_VERSIONS: Final = ("1.0", "1.1")

#: What a step id looks like: it appears in references (`${steps.ID.output}`) and in events.
#: It ends with `(?![\s\S])`, "nothing follows", not `$`: Python's `$` (jsonschema's and `re`'s)
#: also matches before a final newline, and `\Z` is not ECMA-262, the dialect of JSON Schema.
STEP_ID_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_-]*(?![\s\S])"

Strategy = Literal["dag", "sequential", "parallel"]
OnError = Literal["fail", "continue"]

#: How many levels of plans may nest when a plan step does not say (`PlanSpec.max_depth`).
DEFAULT_PLAN_DEPTH: Final = 3


def _meta(description: str, constraints: Mapping[str, Any] | None = None, **more: Any) -> Any:
    return schema_metadata(description, constraints=constraints, **more)


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class AgentSpec:
    """Which agent runs a step; JSON also accepts the bare agent id as a string."""

    id: str = attrs.field(
        metadata=_meta(
            "The agent id: a built-in, a registered name, an entry point or module:attribute.",
            {"minLength": 1},
        ),
    )
    version: str | None = attrs.field(
        default=None, metadata=_meta("The agent version, when the registry offers several.")
    )
    config: dict[str, Any] = attrs.field(
        factory=dict,
        metadata=_meta(
            "Configuration for the agent's constructor; ${secrets.NAME} in its strings is"
            " replaced by the secret, other text is kept as written."
        ),
    )


def _to_agent_spec(value: str | AgentSpec | None) -> AgentSpec | None:
    return AgentSpec(id=value) if isinstance(value, str) else value


def _to_agent_spec_required(value: str | AgentSpec) -> AgentSpec:
    return AgentSpec(id=value) if isinstance(value, str) else value


def _to_template(value: Any) -> Template:
    return value if isinstance(value, Template) else compile_template(value)


def _to_optional_template(value: Any) -> Template | None:
    return None if value is None else _to_template(value)


def _to_tuple(value: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class PlanSpec:
    """How an agent writes a plan: the planner, its task, the agents a plan may use, how deep."""

    agent: AgentSpec = attrs.field(
        converter=_to_agent_spec_required,
        metadata=_meta(
            "The planner: an agent id, or {id, version, config}; it returns a workflow"
            " fragment {steps, output} (an llm agent's reply JSON is read from its json).",
            json_type=Annotated[str, ("minLength", 1)] | AgentSpec,
        ),
    )
    input: Template = attrs.field(
        default=None,
        converter=_to_template,
        metadata=_meta(
            "The planner's task: JSON; strings may hold ${...} references. The planner gets"
            " {task, agents, inputs, attempt, feedback} (and failure when it replans).",
            json_type=Any,
        ),
    )
    allowed_agents: tuple[str, ...] = attrs.field(
        converter=_to_tuple,
        metadata=_meta(
            "The only agent ids a plan may use (its planner's own too, for a nested plan).",
            {"minItems": 1, "uniqueItems": True},
            json_type=tuple[Annotated[str, ("minLength", 1)], ...],
        ),
    )
    max_depth: int = attrs.field(
        default=DEFAULT_PLAN_DEPTH,
        metadata=_meta(
            "How many levels of plans may nest, this one included: a plan holding a plan"
            " step is refused once the levels run out.",
            {"minimum": 1},
        ),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class Replanning:
    """on_error's third form: a step that failed for good is replaced by a plan an agent writes."""

    replan: PlanSpec = attrs.field(
        metadata=_meta(
            "The planner that writes the replacement; its input also gets the failure"
            " {step, input, error}."
        ),
    )
    max_replans: int = attrs.field(
        default=1,
        metadata=_meta(
            "How many replacement plans may run, one after another, before the step fails.",
            {"minimum": 1},
        ),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class Step:
    """One step: an agent, its input template, what it waits for, and how it copes with failure."""

    id: str = attrs.field(
        metadata=_meta(
            "Unique step id, used in depends_on and in ${steps.ID.output} references.",
            {"pattern": STEP_ID_PATTERN},
        ),
    )
    agent: AgentSpec | None = attrs.field(
        default=None,
        converter=_to_agent_spec,
        metadata=_meta(
            "An agent id, or {id, version, config}; a step has one of agent, workflow or plan.",
            json_type=Annotated[str, ("minLength", 1)] | AgentSpec,
        ),
    )
    workflow: SubWorkflow | None = attrs.field(
        default=None,
        converter=to_sub_workflow,
        metadata=_meta(
            "Instead of agent: the child workflow this step runs, as a file path ending in"
            " .json (relative to this document's file), a registered name, or an inline"
            " workflow document; the step input is its inputs, its output the step's output.",
            json_type=Annotated[str, ("minLength", 1)] | dict[str, Any],
        ),
    )
    plan: PlanSpec | None = attrs.field(
        default=None,
        metadata=_meta(
            "Instead of agent: an agent writes this step's workflow (a plan), which is checked"
            " and run as a child execution; the step input is its inputs, its output the"
            " step's output."
        ),
    )
    approval: Approval | None = attrs.field(
        default=None,
        metadata=_meta(
            "Instead of agent: a gate that waits for a person's answer, which is the step's"
            ' output {approved, input, by, reason}. Schema "1.1".'
        ),
    )
    input: Template = attrs.field(
        default=None,
        converter=_to_template,
        metadata=_meta(
            "The agent's input: JSON; strings may hold ${...} references.", json_type=Any
        ),
    )
    depends_on: tuple[str, ...] = attrs.field(
        default=(),
        converter=_to_tuple,
        metadata=_meta(
            "Ids of the steps that must finish before this one starts.", {"uniqueItems": True}
        ),
    )
    policy: PolicySpec = attrs.field(
        factory=PolicySpec,
        metadata=_meta("This step's policy, merged over defaults.policy field by field."),
    )
    on_error: OnError | Replanning = attrs.field(
        default="fail",
        metadata=_meta(
            "fail: the failure fails the execution; continue: output null, go on;"
            " {replan, max_replans}: a plan an agent writes runs in the step's place."
        ),
    )
    when: Expression | None = attrs.field(
        default=None,
        converter=to_when,
        metadata=_meta(
            "A JMESPath condition over inputs and steps.ID.output, checked as the step is about"
            " to start; false: the step is skipped. On a for_each step, one that reads item or"
            " index filters items: false skips that item (null output). Needs schema_version 1.1.",
            json_type=Annotated[str, ("minLength", 1)],
        ),
    )
    accept_skipped: bool = attrs.field(
        default=False,
        metadata=_meta(
            "true: a step this one reads (steps.ID.output) that was skipped reads as null and"
            " this step runs; false: this step is skipped too. Needs schema_version 1.1."
        ),
    )
    for_each: Expression | None = attrs.field(
        default=None,
        converter=to_for_each,
        metadata=_meta(
            "A map (schema 1.1): a JMESPath expression over inputs and steps.ID.output yielding"
            " an array; the agent runs once per item, with ${item} and ${index} in its input,"
            " and the step's output is the array of item outputs in order.",
            json_type=Annotated[str, ("minLength", 1)],
        ),
    )
    on_item_error: OnError = attrs.field(
        default="fail",
        metadata=_meta(
            "For a map: fail: an item failing for good fails the step (the other items are"
            " cancelled under fail_fast); continue: the item's output is null, the rest go on."
        ),
    )
    max_concurrency: int = attrs.field(
        default=0,
        metadata=_meta(
            "For a map: items running at once at most; 0: the workflow's max_concurrency,"
            " at most 100.",
            {"minimum": 0},
        ),
    )
    repeat: Repeat | None = attrs.field(
        default=None,
        metadata=_meta(
            'Run the agent again until "until" holds, at most max_iterations times; the input'
            " may read ${previous} (the last output, null at first) and ${iteration} (from 1)."
            ' Schema "1.1".'
        ),
    )
    on_max_iterations: OnMaxIterations = attrs.field(
        default="fail",
        metadata=_meta(
            "fail: a loop that reaches max_iterations without until holding fails; succeed: it"
            ' succeeds with the last output. Schema "1.1".'
        ),
    )
    budget: Budget | None = attrs.field(
        default=None,
        metadata=_meta(
            "What this step's model calls may spend (all its attempts, items and iterations"
            ' together), on top of the workflow\'s budget. Schema "1.1".'
        ),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class WorkflowDefaults:
    """Settings every step inherits unless it says otherwise."""

    policy: PolicySpec = attrs.field(
        factory=PolicySpec,
        metadata=_meta("The policy every step starts from, merged over the built-in defaults."),
    )


_READS_NOTHING: Final[frozenset[str]] = frozenset()


@attrs.frozen
class _Analysis:
    """What construction derives once, so the engine's lookups cost nothing."""

    steps_by_id: Mapping[str, Step]
    graph: GraphAnalysis
    policies: Mapping[str, Policy]
    reads: Mapping[str, frozenset[str]]


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class Workflow:
    """A validated workflow: steps, how they are scheduled, and what the execution returns.

    The engine reads `steps_by_id`, `dependencies` (effective: with `sequential` each step also
    depends on the one before), `dependents`, `order`, each step's compiled `input` template, and
    `policy_for(step_id)`; all of it is computed once, at construction.
    """

    schema_version: Literal["1.0", "1.1"] = attrs.field(
        default=SCHEMA_VERSION,
        metadata=_meta(
            'The workflow schema version: "1.1" (conditions, maps, loops, sub-workflows) or "1.0".',
            required=True,
        ),
    )
    name: str = attrs.field(
        metadata=_meta("The name shown in logs, events and listings.", {"minLength": 1}),
    )
    description: str = attrs.field(default="", metadata=_meta("What the workflow is for."))
    inputs: dict[str, Any] = attrs.field(
        factory=lambda: {"type": "object"},
        metadata=_meta("A JSON Schema (Draft 2020-12) the execution inputs must match."),
    )
    strategy: Strategy = attrs.field(
        default="dag",
        metadata=_meta(
            "dag: a step starts once its depends_on have finished; sequential: each step also"
            " depends on the one before; parallel: no implicit dependencies (as dag)."
        ),
    )
    max_concurrency: int = attrs.field(
        default=0,
        metadata=_meta(
            "Steps (and map items) running at once at most; 0: unbounded.", {"minimum": 0}
        ),
    )
    fail_fast: bool = attrs.field(
        default=True,
        metadata=_meta(
            "true: the first step failing for good cancels the rest; false: independent"
            " branches finish and dependents of a failed step are skipped."
        ),
    )
    defaults: WorkflowDefaults = attrs.field(
        factory=WorkflowDefaults, metadata=_meta("Settings every step inherits.")
    )
    timeout: float | None = attrs.field(
        default=None,
        metadata=_meta(
            "Seconds the whole execution may take; null: no limit.", {"exclusiveMinimum": 0}
        ),
    )
    steps: tuple[Step, ...] = attrs.field(
        converter=_to_tuple,
        metadata=_meta("The steps, at least one.", {"minItems": 1}),
    )
    output: Template | None = attrs.field(
        default=None,
        converter=_to_optional_template,
        metadata=_meta(
            "The execution's output: JSON; strings may hold ${...} references.", json_type=Any
        ),
    )
    budget: Budget | None = attrs.field(
        default=None,
        metadata=_meta(
            "What the execution's model calls may spend in all; run --max-cost lowers the"
            ' cost cap. Schema "1.1".'
        ),
    )
    providers: dict[str, ProviderSpec] = attrs.field(
        factory=dict,
        metadata=_meta(
            "Model providers by name, over the built-in ones and a provider config file;"
            ' an llm step names one in its model ("local:llama3.1"). Schema "1.1".',
            PROVIDERS_CONSTRAINTS,
        ),
    )
    _analysis: _Analysis = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        """Check the graph and resolve the policies, or raise with every problem found."""
        config_problems: list[Problem] = []
        steps = locate_conditions(self.steps, self.schema_version, config_problems)
        object.__setattr__(self, "steps", steps)
        outlines = [
            StepOutline(
                index=index,
                step_id=step.id,
                depends_on=step.depends_on,
                references=tuple(
                    (f"$.steps[{index}].input{suffix}", reference)
                    for suffix, reference in step.input.located_references
                )
                + (step.when.located_references if step.when is not None else ())
                + planner_references(step, index)
                + approval_references(step.approval, index)
                + check_repeat(
                    step.repeat,
                    step.on_max_iterations,
                    index=index,
                    version=self.schema_version,
                    problems=config_problems,
                ),
                local_names=LOOP_LOCALS if step.repeat is not None else frozenset(),
            )
            for index, step in enumerate(self.steps)
        ]
        for index, step in enumerate(self.steps):
            if step.agent is not None:
                config_references(
                    step.agent.config, f"$.steps[{index}].agent.config", config_problems
                )
            if step.approval is not None:
                config_problems += approval_problems(
                    index,
                    self.schema_version,
                    step.approval,
                    runs=step.agent is not None or step.workflow is not None,
                    policy_fields=tuple(
                        name
                        for name in attrs.fields_dict(PolicySpec)
                        if getattr(step.policy, name) is not INHERIT
                    ),
                    replans=not isinstance(step.on_error, str),
                )
            elif step.plan is None:
                config_problems += step_kind_problems(
                    index, step.agent, step.workflow, self.schema_version
                )
                config_problems += literal_input_problems(index, step.workflow, step.input)
            config_problems += plan_field_problems(step, index, self.schema_version)
            config_problems += budget_problems(
                step.budget, f"$.steps[{index}].budget", self.schema_version
            )
        config_problems += budget_problems(self.budget, "$.budget", self.schema_version)
        config_problems += pause_gate_clashes(self.budget, [step.id for step in self.steps])
        steps, outlines = map_fields(self.schema_version, self.steps, outlines, config_problems)
        object.__setattr__(self, "steps", steps)
        output = self.output.located_references if self.output is not None else ()
        graph = analyse_graph(
            outlines,
            strategy=self.strategy,
            inputs_schema=self.inputs,
            output_references=[(f"$.output{suffix}", reference) for suffix, reference in output],
        )
        problems = config_problems + list(graph.problems)
        problems += provider_spec_problems(self.providers, version=self.schema_version)
        policies = self._resolve_policies(problems)
        if problems:
            raise WorkflowValidationError(sort_problems(problems))
        analysis = _Analysis(
            steps_by_id=types.MappingProxyType({step.id: step for step in self.steps}),
            graph=graph,
            policies=types.MappingProxyType(policies),
            reads=types.MappingProxyType(
                {
                    # One shared empty set for the many steps that read none (large fan-outs).
                    outline.step_id: frozenset(
                        reference.step_id
                        for _, reference in outline.references
                        if reference.step_id is not None
                    )
                    or _READS_NOTHING
                    for outline in outlines
                    if outline.step_id is not None
                }
            ),
        )
        object.__setattr__(self, "_analysis", analysis)

    def _resolve_policies(self, problems: list[Problem]) -> dict[str, Policy]:
        """Resolve every step's policy; blame a missing field on the level that switched it on."""
        policies: dict[str, Policy] = {}
        defaults = self.defaults.policy
        for index, step in enumerate(self.steps):
            spec = overlay_policy(defaults, step.policy)
            lacking = missing_policy_fields(spec)
            for name, fields in lacking.items():
                own = getattr(step.policy, name) is not INHERIT
                where = f"$.steps[{index}].policy.{name}" if own else f"$.defaults.policy.{name}"
                message = missing_fields_message(name, fields)
                problems.append(Problem(where, message))
            if not lacking:
                policies[step.id] = resolve_policy(spec)
        return policies

    @property
    def steps_by_id(self) -> Mapping[str, Step]:
        """Every step by its id, for the engine's lookups."""
        return self._analysis.steps_by_id

    @property
    def dependencies(self) -> Mapping[str, tuple[str, ...]]:
        """Each step's direct dependencies, implicit ones (`sequential`) included."""
        return self._analysis.graph.dependencies

    @property
    def dependents(self) -> Mapping[str, tuple[str, ...]]:
        """Each step's direct dependents, so a failure skips exactly what depends on it."""
        return self._analysis.graph.dependents

    @property
    def reads(self) -> Mapping[str, frozenset[str]]:
        """The steps whose output each step reads (in any expression or reference it holds).

        A dependency a step reads that was skipped skips it too (unless it sets
        `accept_skipped`); a dependency it only orders after does not.
        """
        return self._analysis.reads

    @property
    def order(self) -> tuple[str, ...]:
        """Step ids in an order that respects dependencies; document order where free."""
        return self._analysis.graph.order

    def policy_for(self, step_id: str) -> Policy:
        """The resolved policy of one step: its own over `defaults.policy` over the built-ins.

        Raises:
            KeyError: no step has that id.
        """
        return self._analysis.policies[step_id]


@functools.cache
def _schema_text() -> str:
    schema = schema_for_class(
        Workflow,
        title="orchestr8 workflow",
        schema_id="urn:orchestr8:schema:workflow:1.1",
        absent=(Inherit,),
    )
    # Editors find a document's schema through `$schema`; it is allowed and then ignored.
    editor_hint = {"description": "The JSON Schema this document follows, for editors; ignored."}
    schema["properties"] = {"$schema": {**editor_hint, "type": "string"}, **schema["properties"]}
    return json.dumps(schema)


def workflow_schema() -> dict[str, Any]:
    """The JSON Schema of workflow documents, generated from these classes (`orchestr8 schema`)."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema
