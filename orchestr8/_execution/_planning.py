"""Plans an agent writes, run as child executions, and replanning a step that failed for good.

A plan step (`"plan": {...}`) runs, for each attempt, a `PlanAgent`: it asks the planner agent for
a workflow fragment, checks it (`check_plan`: the document rules and the plan rules), and runs it
as a child execution (`_children`) whose inputs are the step input and whose output is the step's
output. The decisions behind it:

- **What the planner gets.** Its input is `{"task", "agents", "inputs", "attempt", "feedback"}`:
  the rendered `plan.input`, the allowed agent ids, the inputs the plan will run with, the
  attempt number, and the problems of the plan it wrote last ("" the first time). A replanning
  planner also gets `"failure": {"step", "input", "error", "replan"}`.
- **An invalid plan fails the attempt** with `PlanRejectedError`, which is retried under the
  step's policy; the next attempt's `feedback` lists the problems, one `path: message` a line.
- **A plan is asked for once.** Once a plan passes, it is the step's plan: a retry after its
  child failed resumes that child (its finished steps are reused), and a resume of the parent
  takes the plan from the child's journal record without calling the planner again.
- **The journal** records `plan.proposed` {"attempt", "plan"} for every plan a planner returns
  and `plan.rejected` {"attempt", "problems"} for each refused one (with "replan" when it
  replans), then the child's `child.started`.
- **Replanning.** A step with `"on_error": {"replan": {...}, "max_replans": N}` that fails for
  good records `step.replanned` {"replan", "error", "child_id"} and runs a replacement plan, under
  the step's own policy, in its place; its output is the step's output. A replacement that fails
  too is handed on, at most N times in all; then the step fails with the last error. Replacement
  `k` runs as child `PARENT.STEP~replanK`, so a resume finds and continues it. When the planner
  itself fails for good (after the step policy's retries) no plan was tried: the step fails at
  once with `PlannerFailedError` ("the replanning planner failed: <type>: <message>"), and the
  planner's error is not handed on as a failed replacement.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import trio

from .._agents._contract import Agent, AgentContext
from .._agents._registry import AgentRegistry
from .._errors import (
    AgentError,
    CallStoppedError,
    InputValidationError,
    OutputNotSerialisableError,
    PlannerFailedError,
    PlanRejectedError,
    Problem,
)
from .._journal._events import EventType, describe_error
from .._json import json_value
from .._llm._catalog import ProviderCatalog
from .._llm._model_use_checks import model_use_problems
from .._resilience._pipeline import Rejection, call_with_policy
from .._workflow._codec import parse_workflow
from .._workflow._document import PlanSpec, Replanning, Step, Workflow
from .._workflow._plan_fragments import (
    check_plan,
    plan_fragment,
    plan_workflow_name,
    problems_text,
)
from .._workflow._policy import Policy
from .._workflow._references import json_type_name
from .._workflow._sub_workflows import SubWorkflow
from ._children import ChildRunner, ParentLink, child_execution_id
from ._step_resilience import SharedResilience, StepListener

__all__ = [
    "REPLAN_SEPARATOR",
    "AttemptRunner",
    "PlanAgent",
    "Replanner",
    "planner_agent_problems",
    "replan_child_id",
]

#: Runs one attempt of an agent for a step: (agent, step id, agent id, input, attempt) → output.
AttemptRunner = Callable[[Agent, str, str, Any, int], Awaitable[Any]]

#: Joins a step's child id and the number of a replacement plan: `PARENT.STEP~replan2`.
REPLAN_SEPARATOR: Final = "~replan"


def replan_child_id(parent_id: str, step_id: str, replan: int) -> str:
    """The id of the child execution that runs replacement plan `replan` of a step."""
    return f"{child_execution_id(parent_id, step_id)}{REPLAN_SEPARATOR}{replan}"


class PlanAgent(Agent):
    """The agent of a plan step or of one replacement: ask for a plan, check it, run it.

    One is built for each run of its step (or each replacement), so its attempts share what it
    learned: the problems of the last refused plan, and the plan that passed.
    """

    def __init__(
        self,
        *,
        spec: PlanSpec,
        task: Any,
        registry: AgentRegistry,
        children: ChildRunner,
        parent: ParentLink,
        name: str,
        child_id: str | None = None,
        failure: Mapping[str, Any] | None = None,
    ) -> None:
        """Plan with `spec`'s planner for `task`; run the plan as child `child_id` of `parent`.

        `name` is the plan workflow's name; `child_id` None is the step's own child (the unit's:
        `PARENT.ID#k` in a loop); `failure` is what a replacement plan replaces.
        """
        super().__init__({})
        self._spec = spec
        self._task = task
        self._registry = registry
        self._children = children
        self._parent = parent
        self._name = name
        self._child_id = child_id
        self._failure = failure
        self._planner: Agent | None = None
        self._feedback = ""
        self._accepted: Workflow | None = None
        self.planner_error: Exception | None = None
        """The error the planner raised last, if any: how a replanner tells it from its plan's."""

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Run the step's plan with `input` as its inputs: the journaled one, or a new one.

        Raises:
            InputValidationError: `input` is not an object (a planner is never asked then).
            PlanRejectedError: the planner's plan is invalid (retryable; fed back next time).
            ChildExecutionError: the plan ran and did not succeed.
        """
        inputs = {} if input is None else input
        if not isinstance(inputs, Mapping):
            kind = json_type_name(inputs)
            message = f"a plan's inputs are its step's input: an object, not {kind}"
            raise InputValidationError([Problem("$", message)])
        child_id = self._child_id or child_execution_id(self._parent.execution_id, context.step_id)
        if self._accepted is None:
            self._accepted = await self._journaled_plan(child_id)
        if self._accepted is None:
            self._accepted = await self._new_plan(inputs, context)
        label = "plan" if self._failure is None else f"replan {self._failure['replan']}"
        return await self._children.run_child(
            SubWorkflow(label, self._accepted), self._parent, inputs, context, child_id=child_id
        )

    async def _journaled_plan(self, child_id: str) -> Workflow | None:
        """The plan the journal holds for this child (a resume), or None when none ran yet."""
        record = await self._children.recorded(child_id)
        if record is None:
            return None
        return parse_workflow(record.workflow, agent_exists=self._registry.check)

    async def _new_plan(self, inputs: Mapping[str, Any], context: AgentContext) -> Workflow:
        """Ask the planner, journal what it wrote, and check it: the plan, or the refusal."""
        if self._planner is None:
            spec = self._spec.agent
            self._planner = self._registry.create(spec.id, spec.config)
        request: dict[str, Any] = {
            "task": self._task,
            "agents": list(self._spec.allowed_agents),
            "inputs": dict(inputs),
            "attempt": context.attempt,
            "feedback": self._feedback,
        }
        if self._failure is not None:
            request["failure"] = dict(self._failure)
        # Only the conversion is guarded: the planner's own errors keep their type and retry class.
        try:
            written = await self._planner.run(request, context)
        except Exception as error:
            self.planner_error = error
            raise
        try:
            output = json_value(written)
        except (TypeError, ValueError) as error:
            raise OutputNotSerialisableError(
                f"the planner returned a value that is not JSON: {error}"
            ) from None
        await self._emit(EventType.PLAN_PROPOSED, context, {"plan": plan_fragment(output)})
        try:
            plan = check_plan(
                output, self._spec, name=self._name, agent_exists=self._registry.check
            )
            session = context.llm
            catalog = session.catalog.root if session is not None else ProviderCatalog()
            built = _agent_config_problems(plan, self._registry, catalog)
            if built:
                raise PlanRejectedError(built)
        except PlanRejectedError as error:
            self._feedback = problems_text(error.problems)
            await self._emit(
                EventType.PLAN_REJECTED,
                context,
                {"problems": [str(problem) for problem in error.problems]},
            )
            raise
        return plan

    async def _emit(self, type: EventType, context: AgentContext, data: dict[str, Any]) -> None:
        data = {"attempt": context.attempt, **data}
        if self._failure is not None:
            data["replan"] = self._failure["replan"]
        await self._parent.emitter.emit(
            type, step_id=context.step_id, attempt=context.attempt, data=data
        )


class Replanner:
    """Runs the replacement plans of one execution's steps that failed for good."""

    def __init__(
        self,
        *,
        registry: AgentRegistry,
        children: ChildRunner,
        parent: ParentLink,
        workflow_name: str,
        resilience: SharedResilience,
        run_attempt: AttemptRunner,
        random_source: random.Random | None,
        stop_event: trio.Event,
    ) -> None:
        """Replan steps of the execution `parent`, each attempt run by `run_attempt`."""
        self._registry = registry
        self._children = children
        self._parent = parent
        self._workflow_name = workflow_name
        self._resilience = resilience
        self._run_attempt = run_attempt
        self._random = random_source
        self._stop = stop_event

    async def replan(
        self,
        step: Step,
        replanning: Replanning,
        *,
        task: Any,
        input: Any,
        error: Exception,
        policy: Policy,
        listener: StepListener,
    ) -> Any:
        """Run replacement plans for `step`, which failed with `error`, until one succeeds.

        Returns the output of the first replacement that succeeds.

        Raises:
            Exception: the last replacement's error, once `max_replans` of them failed.
            CallStoppedError: the execution stopped before a replacement could start.
        """
        spec = replanning.replan
        parent = self._parent
        inputs = input if isinstance(input, Mapping) else {"input": input}
        agent_id = f"plan:{spec.agent.id}"
        for number in range(1, replanning.max_replans + 1):
            if self._stop.is_set():
                raise CallStoppedError("the execution stopped before the step could be replanned")
            child_id = replan_child_id(parent.execution_id, step.id, number)
            described = describe_error(error)
            await parent.emitter.emit(
                EventType.STEP_REPLANNED,
                step_id=step.id,
                data={"replan": number, "error": described, "child_id": child_id},
            )
            failure = {"step": step.id, "input": input, "error": described, "replan": number}
            agent = PlanAgent(
                spec=spec,
                task=task,
                registry=self._registry,
                children=self._children,
                parent=parent,
                name=plan_workflow_name(
                    self._workflow_name, f"{step.id}{REPLAN_SEPARATOR}{number}"
                ),
                child_id=child_id,
                failure=failure,
            )
            try:
                return await self._call(agent, agent_id, step.id, inputs, policy, listener)
            except CallStoppedError:
                raise
            except Exception as replacement_error:
                if replacement_error is agent.planner_error:
                    described = describe_error(replacement_error)
                    raise PlannerFailedError(
                        f"the replanning planner failed: {described['type']}:"
                        f" {described['message']}"
                    ) from replacement_error
                error = replacement_error
        raise error

    async def _call(
        self,
        agent: PlanAgent,
        agent_id: str,
        step_id: str,
        inputs: Mapping[str, Any],
        policy: Policy,
        listener: StepListener,
    ) -> Any:
        """One replacement under the step's policy, its attempts numbered on from the step's."""
        breaker, bulkhead, rate_limiter = self._resilience.layers(policy.key or agent_id, policy)
        offset = listener.attempts

        async def attempt(number: int) -> Any:
            return await self._run_attempt(agent, step_id, agent_id, inputs, offset + number)

        return json_value(
            await call_with_policy(
                attempt,
                policy,
                breaker=breaker,
                bulkhead=bulkhead,
                rate_limiter=rate_limiter,
                listener=_NumberedOn(listener, offset),
                random=self._random,
                stop=self._stop,
            )
        )


class _NumberedOn:
    """The step's listener, told a replacement's attempts numbered after the step's own."""

    def __init__(self, listener: StepListener, offset: int) -> None:
        self._listener = listener
        self._offset = offset

    def attempt_started(self, attempt: int) -> None:
        self._listener.attempt_started(self._offset + attempt)

    def attempt_failed(self, attempt: int, error: Exception) -> None:
        self._listener.attempt_failed(self._offset + attempt, error)

    def retry_scheduled(self, attempt: int, delay: float) -> None:
        self._listener.retry_scheduled(self._offset + attempt, delay)

    def rejected(self, attempt: int, error: Rejection) -> None:
        self._listener.rejected(self._offset + attempt, error)


def _agent_config_problems(
    plan: Workflow, registry: AgentRegistry, catalog: ProviderCatalog
) -> list[Problem]:
    """The problems of building a plan's agents from their configs, as admission finds them.

    The models they call are checked against `catalog`, the runtime's providers: a plan, like
    any child workflow, does not see its parent's own `providers`.
    """
    problems: list[Problem] = []
    agents: dict[str, Agent] = {}
    for index, step in enumerate(plan.steps):
        if step.agent is not None:
            try:
                agents[step.id] = registry.create(step.agent.id, step.agent.config)
            except AgentError as error:
                problems.append(Problem(f"$.steps[{index}].agent", str(error)))
        problems += planner_agent_problems(step, index, registry)
    return problems + model_use_problems(plan, agents, catalog)


def planner_agent_problems(step: Step, index: int, registry: AgentRegistry) -> list[Problem]:
    """The problems of building a step's planners from their configs (admission's check)."""
    problems: list[Problem] = []
    specs = [(f"$.steps[{index}].plan.agent", step.plan)]
    if isinstance(step.on_error, Replanning):
        specs.append((f"$.steps[{index}].on_error.replan.agent", step.on_error.replan))
    for path, spec in specs:
        if spec is None:
            continue
        try:
            registry.create(spec.agent.id, spec.agent.config)
        except AgentError as error:
            problems.append(Problem(path, str(error)))
    return problems
