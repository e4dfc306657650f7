"""The workflow AST: frozen values for a document, its steps and their partial policies, and checks.

Every `Workflow` is valid once built: construction checks the dependency graph and the `${...}`
references, resolves each step's policy, and raises `WorkflowValidationError` with every problem
found. The JSON Schema is generated from these classes (`workflow_schema`), so the field metadata
here is the single source of descriptions, defaults and constraints. The graph checks work on
`StepOutline`s, so the codec can run them on a document that has other errors too.
"""

from __future__ import annotations

import enum
import functools
import heapq
import json
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import attrs

from ._errors import Problem, WorkflowValidationError
from ._expressions import Reference, Template, compile_template
from ._policy import (
    BulkheadPolicy,
    CircuitBreakerPolicy,
    Jitter,
    Policy,
    RateLimitPolicy,
    RetryPolicy,
)
from ._schema import (
    KnownNames,
    add_schema_checks,
    declared_names,
    did_you_mean,
    inputs_schema_problems,
    schema_for_class,
    schema_metadata,
    sort_problems,
)

#: The schema version this orchestr8 reads and writes.
SCHEMA_VERSION: Final = "1.0"

#: What a step id looks like: it appears in references (`${steps.ID.output}`) and in events.
STEP_ID_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_-]*$"

Strategy = Literal["dag", "sequential", "parallel"]
OnError = Literal["fail", "continue"]

_BUILTIN: Final = Policy()


class Inherit(enum.Enum):
    """Marks a policy field the document leaves out, so its value comes from the level below."""

    INHERIT = "inherit"

    def __repr__(self) -> str:
        """Render as the constant's name, as in `PolicySpec(timeout=INHERIT)`."""
        return "INHERIT"


#: The value of every policy field a document leaves out.
INHERIT: Final = Inherit.INHERIT


def _meta(description: str, constraints: Mapping[str, Any] | None = None, **more: Any) -> Any:
    return schema_metadata(description, constraints=constraints, **more)


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class RetrySpec:
    """The `retry` part of a policy as written; each field left out is inherited."""

    max_attempts: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Calls in all, the first one included (1: no retry).", {"minimum": 1}, default=3
        ),
    )
    initial_delay: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Seconds before the first retry, before jitter.", {"minimum": 0}, default=1.0
        ),
    )
    max_delay: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Upper bound in seconds on any delay, before jitter.", {"minimum": 0}, default=10.0
        ),
    )
    multiplier: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Factor by which each delay grows over the one before.",
            {"exclusiveMinimum": 0},
            default=2.0,
        ),
    )
    jitter: Jitter | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Randomising a delay d: full U(0, d), equal d/2 + U(0, d/2), none d.", default="full"
        ),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class CircuitBreakerSpec:
    """The `circuit_breaker` part of a policy as written; each field left out is inherited."""

    failure_threshold: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta("Consecutive failures that open the breaker.", {"minimum": 1}, default=5),
    )
    reset_timeout: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Seconds the breaker stays open before it admits probes.", {"minimum": 0}, default=60.0
        ),
    )
    half_open_requests: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Concurrent probes when half open; that many successes close it.",
            {"minimum": 1},
            default=3,
        ),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class BulkheadSpec:
    """The `bulkhead` part of a policy as written; `max_concurrent` must be given at some level."""

    max_concurrent: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Calls allowed at once (required to switch the bulkhead on).", {"minimum": 1}
        ),
    )
    max_wait: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta("Seconds a call waits for a free slot.", {"minimum": 0}, default=0.0),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class RateLimitSpec:
    """The `rate_limit` part of a policy as written; `rate` and `burst` must be given somewhere."""

    rate: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Tokens added per second (required to switch rate limiting on).",
            {"exclusiveMinimum": 0},
        ),
    )
    burst: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Tokens the bucket holds at most (required to switch rate limiting on).", {"minimum": 1}
        ),
    )
    max_wait: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta("Seconds a call waits for a token.", {"minimum": 0}, default=0.0),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class PolicySpec:
    """A resilience policy as written: partial, merged field by field over the level below.

    A step's policy is laid over the workflow's `defaults.policy`, which is laid over the built-in
    `Policy()`; inside `retry`, `circuit_breaker`, `bulkhead` and `rate_limit` the merge goes field
    by field too. `None` (JSON `null`) switches a feature off; an object switches it on.
    """

    timeout: float | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Seconds one attempt may take; null: no limit.", {"exclusiveMinimum": 0}, default=30.0
        ),
    )
    retry: RetrySpec | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta("How failed attempts are tried again."),
    )
    circuit_breaker: CircuitBreakerSpec | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta("The breaker shared by all calls with the same key; null switches it off."),
    )
    deadline: float | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Seconds all attempts together may take; null: no limit.",
            {"exclusiveMinimum": 0},
            default=None,
        ),
    )
    bulkhead: BulkheadSpec | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta("Bounds concurrent calls per key; off unless given; null switches it off."),
    )
    rate_limit: RateLimitSpec | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta("A token bucket per key; off unless given; null switches it off."),
    )
    key: str | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "The key of the breaker, bulkhead and rate limiter; null: the agent id.", default=None
        ),
    )


_SECTIONS: Final[Mapping[str, type]] = types.MappingProxyType(
    {
        "retry": RetryPolicy,
        "circuit_breaker": CircuitBreakerPolicy,
        "bulkhead": BulkheadPolicy,
        "rate_limit": RateLimitPolicy,
    }
)


def overlay_policy(lower: PolicySpec, upper: PolicySpec) -> PolicySpec:
    """Lay one partial policy over another, field by field, also inside each section.

    What `upper` gives wins; what it leaves out comes from `lower`; `None` in `upper` switches a
    section off, and a section in `upper` over one in `lower` merges their fields.
    """
    changes: dict[str, Any] = {}
    for name in attrs.fields_dict(PolicySpec):
        top, bottom = getattr(upper, name), getattr(lower, name)
        if top is INHERIT:
            continue
        if name in _SECTIONS and top is not None and bottom is not None and bottom is not INHERIT:
            top = attrs.evolve(bottom, **_given(top))
        changes[name] = top
    return attrs.evolve(lower, **changes)


def missing_policy_fields(spec: PolicySpec, base: Policy = _BUILTIN) -> dict[str, list[str]]:
    """For each section `spec` switches on, the fields it lacks that have no default in `base`."""
    missing: dict[str, list[str]] = {}
    for name, section in _SECTIONS.items():
        value = getattr(spec, name)
        if value is INHERIT or value is None or getattr(base, name) is not None:
            continue
        given = _given(value)
        lacking = [
            part.name
            for part in attrs.fields(section)
            if part.default is attrs.NOTHING and part.name not in given
        ]
        if lacking:
            missing[name] = lacking
    return missing


def resolve_policy(spec: PolicySpec, base: Policy = _BUILTIN) -> Policy:
    """Turn a partial policy into the resolved `Policy` the pipeline obeys, filling from `base`.

    Raises:
        ValueError: a section switched on here lacks a field with no default (e.g. `rate`).
    """
    missing = missing_policy_fields(spec, base)
    if missing:
        raise ValueError(
            "; ".join(
                f"{name}: missing {_names(lacking)}, required to switch {name} on"
                for name, lacking in missing.items()
            )
        )
    changes: dict[str, Any] = {}
    for name in attrs.fields_dict(PolicySpec):
        value = getattr(spec, name)
        if value is INHERIT:
            continue
        section = _SECTIONS.get(name)
        if section is not None and value is not None:
            below = getattr(base, name)
            given = _given(value)
            value = section(**given) if below is None else attrs.evolve(below, **given)
        changes[name] = value
    return attrs.evolve(base, **changes)


def _given(section: Any) -> dict[str, Any]:
    """The fields of a policy section that the document gives."""
    return {
        name: value
        for name, value in attrs.asdict(section, recurse=False).items()
        if value is not INHERIT
    }


def _names(names: Sequence[str]) -> str:
    return " and ".join(f"'{name}'" for name in names)


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
        factory=dict, metadata=_meta("Configuration for the agent's constructor (no references).")
    )


def _to_agent_spec(value: str | AgentSpec) -> AgentSpec:
    return AgentSpec(id=value) if isinstance(value, str) else value


def _to_template(value: Any) -> Template:
    return value if isinstance(value, Template) else compile_template(value)


def _to_optional_template(value: Any) -> Template | None:
    return None if value is None else _to_template(value)


def _to_tuple(value: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class Step:
    """One step: an agent, its input template, what it waits for, and how it copes with failure."""

    id: str = attrs.field(
        metadata=_meta(
            "Unique step id, used in depends_on and in ${steps.ID.output} references.",
            {"pattern": STEP_ID_PATTERN},
        ),
    )
    agent: AgentSpec = attrs.field(
        converter=_to_agent_spec,
        metadata=_meta(
            "An agent id, or {id, version, config}.",
            json_type=Annotated[str, ("minLength", 1)] | AgentSpec,
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
        metadata=_meta("Ids of the steps that must finish before this one starts."),
    )
    policy: PolicySpec = attrs.field(
        factory=PolicySpec,
        metadata=_meta("This step's policy, merged over defaults.policy field by field."),
    )
    on_error: OnError = attrs.field(
        default="fail",
        metadata=_meta("fail: the failure fails the execution; continue: output null, go on."),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class WorkflowDefaults:
    """Settings every step inherits unless it says otherwise."""

    policy: PolicySpec = attrs.field(
        factory=PolicySpec,
        metadata=_meta("The policy every step starts from, merged over the built-in defaults."),
    )


@attrs.frozen(kw_only=True)
class StepOutline:
    """What the graph checks need from one step, gathered even from a document with other errors.

    `step_id` is None, and `depends_on` entries are None, where the document holds no usable id;
    `references` pair each reference with the JSON path of the string holding it.
    """

    index: int
    step_id: str | None
    depends_on: tuple[str | None, ...] = ()
    references: tuple[tuple[str, Reference], ...] = ()


@attrs.frozen(kw_only=True)
class GraphAnalysis:
    """The outcome of the graph checks: every problem, and the graph when there are none."""

    problems: tuple[Problem, ...]
    dependencies: Mapping[str, tuple[str, ...]]
    dependents: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]


def analyse_graph(
    outlines: Sequence[StepOutline],
    *,
    strategy: str,
    inputs_schema: Any,
    output_references: Sequence[tuple[str, Reference]] = (),
) -> GraphAnalysis:
    """Check ids, dependencies, cycles, references and the inputs schema; derive the graph."""
    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    for outline in outlines:
        if outline.step_id is None:
            continue
        if outline.step_id in first_seen:
            first = first_seen[outline.step_id]
            problems.append(
                Problem(
                    f"$.steps[{outline.index}].id",
                    f"duplicate step id '{outline.step_id}' (also $.steps[{first}].id)",
                )
            )
        else:
            first_seen[outline.step_id] = outline.index
    dependencies: dict[str, tuple[str, ...]] = {}
    previous: str | None = None
    for outline in outlines:
        found = _check_depends_on(outline, first_seen, problems)
        if strategy == "sequential" and previous is not None and previous not in found:
            found.append(previous)
        step_id = outline.step_id
        if step_id is not None and first_seen[step_id] == outline.index:
            dependencies[step_id] = tuple(found)
        previous = step_id if step_id is not None else previous
    problems.extend(_cycle_problems(dependencies))
    known_input = declared_names(inputs_schema)
    order = _topological_order(dependencies)
    ancestors = _ancestor_lookup(dependencies, order)
    for outline in outlines:
        for path, reference in outline.references:
            problems.extend(
                _reference_problems(
                    path, reference, outline.step_id, ancestors, known_input, dependencies
                )
            )
    for path, reference in output_references:
        problems.extend(
            _reference_problems(path, reference, None, ancestors, known_input, dependencies)
        )
    problems.extend(inputs_schema_problems(inputs_schema))
    dependents: dict[str, list[str]] = {step_id: [] for step_id in dependencies}
    for step_id, needs in dependencies.items():
        for need in needs:
            dependents[need].append(step_id)
    order = () if problems else order
    return GraphAnalysis(
        problems=tuple(problems),
        dependencies=types.MappingProxyType(dependencies),
        dependents=types.MappingProxyType(
            {step_id: tuple(after) for step_id, after in dependents.items()}
        ),
        order=order,
    )


def _check_depends_on(
    outline: StepOutline, first_seen: Mapping[str, int], problems: list[Problem]
) -> list[str]:
    found: list[str] = []
    for position, need in enumerate(outline.depends_on):
        path = f"$.steps[{outline.index}].depends_on[{position}]"
        if need is None:
            continue
        if need == outline.step_id:
            problems.append(Problem(path, f"step '{need}' cannot depend on itself"))
        elif need not in first_seen:
            hint = did_you_mean(need, first_seen)
            problems.append(Problem(path, f"unknown step '{need}'{hint}"))
        elif need in found:
            problems.append(Problem(path, f"'{need}' is listed twice"))
        else:
            found.append(need)
    return found


def _cycle_problems(dependencies: Mapping[str, tuple[str, ...]]) -> list[Problem]:
    """Name each dependency cycle once, starting from its first step in document order."""
    position = {step_id: index for index, step_id in enumerate(dependencies)}
    state: dict[str, int] = {}
    cycles: dict[tuple[str, ...], None] = {}
    for root in dependencies:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        stack = [iter(dependencies[root])]
        while stack:
            for need in stack[-1]:
                if need not in state:
                    state[need] = 1
                    path.append(need)
                    stack.append(iter(dependencies[need]))
                    break
                if state[need] == 1:
                    cycle = path[path.index(need) :]
                    start = min(range(len(cycle)), key=lambda index: position[cycle[index]])
                    cycles[tuple(cycle[start:] + cycle[:start])] = None
            else:
                state[path.pop()] = 2
                stack.pop()
    return [
        Problem("$.steps", "dependency cycle " + " -> ".join((*cycle, cycle[0])))
        for cycle in cycles
    ]


def _topological_order(dependencies: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    position = {step_id: index for index, step_id in enumerate(dependencies)}
    waiting = {step_id: len(needs) for step_id, needs in dependencies.items()}
    dependents: dict[str, list[str]] = {step_id: [] for step_id in dependencies}
    for step_id, needs in dependencies.items():
        for need in needs:
            dependents[need].append(step_id)
    ready = [(position[step_id], step_id) for step_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, step_id = heapq.heappop(ready)
        order.append(step_id)
        for after in dependents[step_id]:
            waiting[after] -= 1
            if waiting[after] == 0:
                heapq.heappush(ready, (position[after], after))
    return tuple(order)


def _reference_problems(
    path: str,
    reference: Reference,
    step_id: str | None,
    ancestors: Callable[[str], frozenset[str] | None],
    known_input: KnownNames | None,
    step_ids: Iterable[str],
) -> list[Problem]:
    """Check one reference: a declared input, or a known step that `step_id` depends on."""
    text = reference.text
    if reference.step_id is None:
        name = reference.input_name
        if name is None or known_input is None or known_input(name):
            return []
        hint = did_you_mean(name, known_input.names)
        return [Problem(path, f"{text} refers to unknown input '{name}'{hint}")]
    target = reference.step_id
    if ancestors(target) is None:
        hint = did_you_mean(target, step_ids)
        return [Problem(path, f"{text} refers to unknown step '{target}'{hint}")]
    if step_id is None:
        return []
    if target == step_id:
        return [Problem(path, f"{text} refers to the output of its own step")]
    if target in (ancestors(step_id) or ()):
        return []
    return [
        Problem(
            path,
            f"{text} refers to step '{target}', which step '{step_id}' does not depend on"
            f" (add '{target}' to depends_on)",
        )
    ]


def _ancestor_lookup(
    dependencies: Mapping[str, tuple[str, ...]], order: Sequence[str]
) -> Callable[[str], frozenset[str] | None]:
    """Every step each step depends on, directly or not (None for an unknown step).

    Steps in `order` (all of them unless there is a cycle) are computed once each from their
    dependencies' sets; the rest are found by a search on demand.
    """
    known: dict[str, frozenset[str]] = {}
    for step_id in order:
        needs = dependencies[step_id]
        known[step_id] = frozenset(needs).union(*(known[need] for need in needs))

    def lookup(step_id: str) -> frozenset[str] | None:
        if step_id in known:
            return known[step_id]
        if step_id not in dependencies:
            return None
        seen: set[str] = set()
        frontier = list(dependencies[step_id])
        while frontier:
            need = frontier.pop()
            if need not in seen:
                seen.add(need)
                frontier.extend(dependencies.get(need, ()))
        known[step_id] = frozenset(seen)
        return known[step_id]

    return lookup


@attrs.frozen
class _Analysis:
    """What construction derives once, so the engine's lookups cost nothing."""

    steps_by_id: Mapping[str, Step]
    graph: GraphAnalysis
    policies: Mapping[str, Policy]


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class Workflow:
    """A validated workflow: steps, how they are scheduled, and what the execution returns.

    The engine reads `steps_by_id`, `dependencies` (effective: with `sequential` each step also
    depends on the one before), `dependents`, `order`, each step's compiled `input` template, and
    `policy_for(step_id)`; all of it is computed once, at construction.
    """

    schema_version: Literal["1.0"] = attrs.field(
        default=SCHEMA_VERSION,
        metadata=_meta('The workflow schema version; this orchestr8 reads "1.0".', required=True),
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
        metadata=_meta("Steps running at once at most; 0: unbounded.", {"minimum": 0}),
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
    _analysis: _Analysis = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        """Check the graph and resolve the policies, or raise with every problem found."""
        outlines = [
            StepOutline(
                index=index,
                step_id=step.id,
                depends_on=step.depends_on,
                references=tuple(
                    (f"$.steps[{index}].input{suffix}", reference)
                    for suffix, reference in step.input.located_references
                ),
            )
            for index, step in enumerate(self.steps)
        ]
        output = self.output.located_references if self.output is not None else ()
        graph = analyse_graph(
            outlines,
            strategy=self.strategy,
            inputs_schema=self.inputs,
            output_references=[(f"$.output{suffix}", reference) for suffix, reference in output],
        )
        problems = list(graph.problems)
        policies = self._resolve_policies(problems)
        if problems:
            raise WorkflowValidationError(sort_problems(problems))
        analysis = _Analysis(
            steps_by_id=types.MappingProxyType({step.id: step for step in self.steps}),
            graph=graph,
            policies=types.MappingProxyType(policies),
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
                message = f"missing {_names(fields)}, required to switch {name} on"
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
        schema_id="urn:orchestr8:schema:workflow:1.0",
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
