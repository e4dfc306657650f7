"""Plan steps and replanning in a document: the load-time rules of `plan` and `on_error.replan`.

A step with `"plan": {"agent", "input", "allowed_agents", "max_depth"}` runs a workflow that its
planner agent writes at run time; `"on_error": {"replan": {...}, "max_replans": N}` on any step
hands a step that failed for good to such a planner. What can be checked before anything runs is
checked here, when the document loads:

- both need schema_version "1.1";
- a plan step has no `agent` or `workflow` besides its `plan`;
- `${...}` references in a planner's `input` are checked like a step input's (the steps they
  read must be dependencies of the step);
- the planner and every entry of `allowed_agents` must be known agents (`plan_agent_checks`,
  which the codec runs with the other agent checks);
- a planner's config holds no `${secrets.NAME}`: secrets are bound into step agents only, so a
  planner takes its secret from its environment (`ANTHROPIC_API_KEY` for `llm`).

The plan itself is checked when the planner returns it (`_plan_fragments`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._errors import Problem
from ._conditions import require_version_1_1
from ._config_secrets import config_references

if TYPE_CHECKING:
    from ._document import PlanSpec, Step
    from ._references import Reference

__all__ = [
    "plan_agent_checks",
    "plan_field_problems",
    "planner_references",
    "replan_spec",
]


def replan_spec(step: Step) -> PlanSpec | None:
    """The planner a step's `on_error` hands its failure to, or None (`fail` or `continue`)."""
    on_error: Any = step.on_error
    return None if isinstance(on_error, str) else on_error.replan


def _planners(step: Step, index: int) -> list[tuple[str, PlanSpec]]:
    """The planner specs of a step with the JSON path of each."""
    found: list[tuple[str, PlanSpec]] = []
    if step.plan is not None:
        found.append((f"$.steps[{index}].plan", step.plan))
    replan = replan_spec(step)
    if replan is not None:
        found.append((f"$.steps[{index}].on_error.replan", replan))
    return found


def planner_references(step: Step, index: int) -> tuple[tuple[str, Reference], ...]:
    """The `${...}` references of a step's planner inputs, each with its JSON path."""
    if step.plan is None and isinstance(step.on_error, str):
        return ()
    return tuple(
        (f"{path}.input{suffix}", reference)
        for path, spec in _planners(step, index)
        for suffix, reference in spec.input.located_references
    )


def plan_field_problems(step: Step, index: int, version: str) -> list[Problem]:
    """The problems of a step's `plan` and `on_error.replan` that need no agent registry."""
    if step.plan is None and isinstance(step.on_error, str):
        return []
    problems: list[Problem] = []
    if step.plan is not None:
        require_version_1_1(version, f"$.steps[{index}].plan", "plan", problems)
        if step.agent is not None or step.workflow is not None:
            message = "a step runs an agent, a workflow or a plan: only one of them"
            problems.append(Problem(f"$.steps[{index}]", message))
    if not isinstance(step.on_error, str):
        require_version_1_1(version, f"$.steps[{index}].on_error", "replan", problems)
        if step.repeat is not None:
            message = (
                "a loop step (repeat) cannot be replanned: run the loop in a sub-workflow"
                " step and replan that step"
            )
            problems.append(Problem(f"$.steps[{index}].on_error", message))
    for path, spec in _planners(step, index):
        for where, reference in config_references(
            spec.agent.config, f"{path}.agent.config", problems
        ):
            message = (
                f"{reference.text}: a planner's config takes no secrets (give the agent its"
                " secret through its environment, e.g. ANTHROPIC_API_KEY for llm)"
            )
            problems.append(Problem(where, message))
        seen: set[str] = set()
        for position, agent_id in enumerate(spec.allowed_agents):
            if agent_id in seen:
                message = f"'{agent_id}' is listed twice"
                problems.append(Problem(f"{path}.allowed_agents[{position}]", message))
            seen.add(agent_id)
    return problems


def plan_agent_checks(
    step: Mapping[str, Any], index: int, agent_problem: Callable[[str], str | None]
) -> list[Problem]:
    """The problems of the agent ids a raw step's planners name: `agent_problem` says why not.

    Read from the raw document, so that they are found even when other fields are malformed.
    """
    problems: list[Problem] = []
    on_error = step.get("on_error")
    specs = [(f"$.steps[{index}].plan", step.get("plan"))]
    if isinstance(on_error, Mapping):
        specs.append((f"$.steps[{index}].on_error.replan", on_error.get("replan")))
    for path, spec in specs:
        if not isinstance(spec, Mapping):
            continue
        agent, agent_path = spec.get("agent"), f"{path}.agent"
        if isinstance(agent, Mapping):
            agent, agent_path = agent.get("id"), agent_path + ".id"
        named = [(agent_path, agent)]
        allowed = spec.get("allowed_agents")
        if isinstance(allowed, list):
            named += [
                (f"{path}.allowed_agents[{position}]", agent_id)
                for position, agent_id in enumerate(allowed)
            ]
        for where, agent_id in named:
            if isinstance(agent_id, str) and agent_id:
                problem = agent_problem(agent_id)
                if problem is not None:
                    problems.append(Problem(where, problem))
    return problems
