"""Plans an agent wrote: the workflow fragment a planner returns, checked before it runs.

A planner returns a *fragment*: `{"steps": [...], "output": ...}`, optionally with `description`,
`strategy`, `max_concurrency`, `fail_fast`, `defaults` and `timeout`. It has no `name`,
`schema_version` or `inputs`: the engine names it after its step, reads it as schema "1.1", and
its inputs are the plan step's input. The fragment is taken from the planner's output as it is,
or, for an `llm` agent's reply (`{"text", "json", ...}`), from its `json` (else its `text` parsed
as JSON).

`check_plan` holds the fragment to the rules of a document (the same codec: schema, references,
cycles, known agents) and to the rules of a plan:

- every agent it runs is in the plan spec's `allowed_agents`;
- it runs no sub-workflow (`workflow` steps): what a plan may do is what its agents may do;
- it reads no secret (`${secrets.NAME}` in a step input or an agent config): a planner steered
  by what it reads (a prompt injection) must not be able to hand a secret to an agent;
- a plan step or a replanning planner inside it uses only allowed agents, allows no agent the
  outer plan does not, and nests no deeper than `max_depth` (a nested planner gets the levels
  left: its `max_depth` is lowered to fit).

Every problem is located by its JSON path inside the fragment (`$.steps[1].agent`), and all of
them are raised at once as a `PlanRejectedError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from .._errors import PlanRejectedError, Problem, WorkflowValidationError
from .._json import parse_strict
from ._codec import parse_workflow
from ._config_secrets import config_references
from ._document import DEFAULT_PLAN_DEPTH, PlanSpec, Workflow
from ._references import Reference, json_type_name
from ._schema_problems import sort_problems

__all__ = ["PLAN_KEYS", "check_plan", "plan_fragment", "plan_workflow_name", "problems_text"]

#: The keys a plan may hold; `steps` is required.
PLAN_KEYS: Final = (
    "description",
    "strategy",
    "max_concurrency",
    "fail_fast",
    "defaults",
    "timeout",
    "steps",
    "output",
)


def plan_workflow_name(workflow_name: str, step_id: str) -> str:
    """The name of the workflow a plan becomes: its parent's and its step's."""
    return f"{workflow_name}/{step_id}"


def plan_fragment(output: Any) -> Any:
    """The fragment in a planner's output: the output, or an `llm` reply's `json` or `text`."""
    if not isinstance(output, Mapping) or "steps" in output:
        return output
    if "json" in output:
        return output["json"]
    text = output.get("text")
    if isinstance(text, str):
        try:
            return parse_strict(text)[0]
        except (ValueError, RecursionError):
            return output
    return output


def check_plan(
    output: Any,
    spec: PlanSpec,
    *,
    name: str,
    agent_exists: Callable[[str], bool] | None = None,
) -> Workflow:
    """The workflow a planner's `output` describes, checked against `spec`'s rules.

    Raises:
        PlanRejectedError: with every problem found, each located inside the fragment.
    """
    fragment = plan_fragment(output)
    if not isinstance(fragment, Mapping):
        kind = json_type_name(fragment)
        message = f"a plan is an object with steps and an output, not {kind}"
        raise PlanRejectedError([Problem("$", message)])
    problems: list[Problem] = []
    document: dict[str, Any] = {"schema_version": "1.1", "name": name}
    for key, value in fragment.items():
        if key in PLAN_KEYS:
            document[key] = value
        else:
            problems.append(Problem(f"$.{key}", _unknown_key_message(key)))
    steps = fragment.get("steps")
    if isinstance(steps, list):
        document["steps"] = [
            _checked_step(step, index, spec, problems) for index, step in enumerate(steps)
        ]
    try:
        workflow = parse_workflow(document, agent_exists=agent_exists)
    except WorkflowValidationError as error:
        problems += error.problems
    else:
        problems += _secret_problems(workflow)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise PlanRejectedError(sort_problems(unique))
    return workflow


def _secret_problems(workflow: Workflow) -> list[Problem]:
    """A plan reads no secrets: whoever steers the planner must not reach them through it.

    Its steps' inputs and configs are checked here; its output may hold none in any document.
    """
    located: list[tuple[str, Reference]] = []
    for index, step in enumerate(workflow.steps):
        located += [
            (f"$.steps[{index}].input{suffix}", reference)
            for suffix, reference in step.input.located_references
        ]
        if step.agent is not None:
            located += config_references(step.agent.config, f"$.steps[{index}].agent.config", [])
    return [
        Problem(path, f"{reference.text}: a plan may not read secrets")
        for path, reference in located
        if reference.source == "secrets"
    ]


def _unknown_key_message(key: str) -> str:
    if key == "inputs":
        return "a plan declares no inputs: its inputs are its step's input"
    if key in ("name", "schema_version"):
        return f"a plan has no {key}: the engine gives it one"
    return f"unknown key '{key}' (a plan holds {', '.join(PLAN_KEYS)})"


def _agent_id(agent: Any) -> tuple[Any, str]:
    """The id an `agent` value names, and the path suffix it sits at."""
    if isinstance(agent, Mapping):
        return agent.get("id"), ".id"
    return agent, ""


def _checked_step(step: Any, index: int, spec: PlanSpec, problems: list[Problem]) -> Any:
    """Check one raw step of a plan against `spec`; give back the step, nested depths lowered."""
    if not isinstance(step, Mapping):
        return step
    path = f"$.steps[{index}]"
    allowed = spec.allowed_agents
    checked = dict(step)
    if "workflow" in step:
        problems.append(Problem(f"{path}.workflow", "a plan runs agents, not sub-workflows"))
        # Refused already: loading it would only add noise (its file, its name, its problems).
        del checked["workflow"]
    agent, suffix = _agent_id(step.get("agent"))
    if isinstance(agent, str) and agent not in allowed:
        problems.append(Problem(f"{path}.agent{suffix}", _not_allowed(agent, allowed)))
    nested = [(f"{path}.plan", step.get("plan"))]
    on_error = step.get("on_error")
    if isinstance(on_error, Mapping):
        nested.append((f"{path}.on_error.replan", on_error.get("replan")))
    for where, planner in nested:
        if not isinstance(planner, Mapping):
            continue
        if spec.max_depth <= 1:
            message = f"plans nest deeper than {_levels(spec)}: this plan may hold no planner"
            problems.append(Problem(where, message))
            continue
        lowered = _nested_planner(planner, where, spec, problems)
        if where.endswith(".plan"):
            checked["plan"] = lowered
        else:
            checked["on_error"] = {**on_error, "replan": lowered}  # type: ignore[dict-item]
    return checked


def _levels(spec: PlanSpec) -> str:
    return "1 level" if spec.max_depth == 1 else f"{spec.max_depth} levels"


def _nested_planner(
    planner: Mapping[str, Any], where: str, spec: PlanSpec, problems: list[Problem]
) -> dict[str, Any]:
    """A planner inside a plan: its agents must be allowed; its depth is what is left."""
    allowed = spec.allowed_agents
    agent, suffix = _agent_id(planner.get("agent"))
    if isinstance(agent, str) and agent not in allowed:
        problems.append(Problem(f"{where}.agent{suffix}", _not_allowed(agent, allowed)))
    nested_allowed = planner.get("allowed_agents")
    if isinstance(nested_allowed, list):
        for position, agent_id in enumerate(nested_allowed):
            if isinstance(agent_id, str) and agent_id not in allowed:
                problems.append(
                    Problem(f"{where}.allowed_agents[{position}]", _not_allowed(agent_id, allowed))
                )
    depth = planner.get("max_depth", DEFAULT_PLAN_DEPTH)
    left = spec.max_depth - 1
    if isinstance(depth, int) and not isinstance(depth, bool) and depth > left:
        depth = left
    return {**planner, "max_depth": depth}


def _not_allowed(agent: str, allowed: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{agent_id}'" for agent_id in allowed)
    return f"agent '{agent}' is not allowed in this plan (allowed_agents: {listed})"


def problems_text(problems: tuple[Problem, ...]) -> str:
    """The problems of a refused plan as the planner's next attempt reads them, one a line."""
    return "\n".join(str(problem) for problem in problems)
