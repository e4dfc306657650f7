"""Admission: a workflow checked once, each of its agents built once, its inputs checked once.

Every way in admits a request here: `Runtime.load` and `Runtime.start` for embedding programs and
`POST /workflows/execute`, and `orchestr8 validate` and `run`, which admit before they open a
journal (so a bad file or input leaves no journal behind) and hand the `Admission` to
`Runtime.start`. `admit_workflow` loads the document (parsed, checked against the schema, the
step graph and the references in one pass by `load_workflow`) and builds each step's agent from
its config, which checks the config; that instance then runs the step (docs/agents.md says what
this asks of agents). `admit` checks the inputs against the workflow's `inputs` schema; nothing
checks them again. A runtime keeps what it admitted (`AdmittedWorkflows`), so starting a loaded
workflow again builds nothing.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from .._agents._contract import Agent
from .._agents._registry import AgentRegistry
from .._agents._workflow_directory import agents_built_in
from .._errors import AgentConfigurationError, AgentError, Problem, WorkflowValidationError
from .._journal._events import Event, EventType
from .._llm._catalog import ProviderCatalog
from .._llm._model_use_checks import model_use_problems
from .._observability._redaction import default_redactor, redact_text
from .._workflow._budgets import capped_workflow, cost_capped
from .._workflow._codec import load_workflow
from .._workflow._document import Step, Workflow
from .._workflow._inputs import validate_inputs
from .._workflow._provider_specs import ProviderSpec
from .._workflow._sub_workflows import WorkflowCatalog
from ._planning import planner_agent_problems
from ._secrets import secret_values_of

__all__ = [
    "Admission",
    "AdmittedWorkflow",
    "AdmittedWorkflows",
    "Admitter",
    "WorkflowLike",
    "admit",
    "admit_workflow",
    "file_directory",
    "recorded_directory",
]

WorkflowLike = Workflow | Mapping[str, Any] | str | os.PathLike[str]
"""What the runtime accepts as a workflow: a loaded one, a parsed document, JSON text or a path."""


@attrs.frozen(eq=False)
class AdmittedWorkflow:
    """A workflow whose document and agents passed every check, with the agents built for it."""

    workflow: Workflow
    """The loaded workflow."""
    agents: Mapping[str, Agent]
    """Each step's agent by step id, built from the step's config; it runs the step."""
    children: Mapping[str, AdmittedWorkflow] = attrs.field(factory=dict)
    """Each sub-workflow step's child workflow, admitted too, by step id."""
    directory: Path | None = None
    """The directory its agents were built in (its file's), None for a workflow with no file."""


@attrs.frozen(eq=False)
class Admission:
    """A request ready to start: an admitted workflow and the inputs checked against it."""

    admitted: AdmittedWorkflow
    """The workflow and its agents."""
    inputs: dict[str, Any]
    """The inputs as `validate_inputs` returned them (defaults filled in)."""

    @property
    def workflow(self) -> Workflow:
        """The loaded workflow (a shortcut for `admitted.workflow`)."""
        return self.admitted.workflow


def admit_workflow(
    workflow: WorkflowLike,
    registry: AgentRegistry,
    *,
    source: str | None = None,
    workflows: WorkflowCatalog | None = None,
    directory: Path | None = None,
    providers: ProviderCatalog | Mapping[str, ProviderSpec] | None = None,
    max_cost_usd: float | None = None,
    cost_capped_above: bool = False,
) -> AdmittedWorkflow:
    """Load `workflow`, check its agents exist, and build each step's agent from its config.

    `source` names the file in messages (default: the path, when `workflow` is one);
    `workflows` holds the registered names sub-workflows may use. Child workflows are admitted
    too, their problems located under their step (`$.steps[2].workflow.steps[0].agent`).
    Agents are built inside `agents_built_in` with the workflow file's directory (`directory`
    when `workflow` is no path: a child's is its parent's, or its own file's). The models the
    agents declare they call are checked against `providers` (a catalog, or a provider config
    file's specs; None: the built-in providers) with the workflow's own over them.
    `max_cost_usd` (`run --max-cost`) lowers the workflow's cost cap before its agents are
    built and checked (`capped_workflow`). `cost_capped_above`: a child whose parent step a cost
    cap covers (its calls count against it too), so every model it calls needs a price.

    Raises:
        WorkflowValidationError: with every problem found, each as `JSON path: message`.
        ValueError: `max_cost_usd` is negative or not finite.
    """
    loaded = (
        workflow
        if isinstance(workflow, Workflow)
        else load_workflow(workflow, agent_exists=registry.check, workflows=workflows)
    )
    loaded = capped_workflow(loaded, max_cost_usd)
    path = _path_of(workflow)
    if path is not None:
        directory = Path(path).resolve().parent
    catalog = providers if isinstance(providers, ProviderCatalog) else ProviderCatalog(providers)
    problems: list[Problem] = []
    agents: dict[str, Agent] = {}
    children: dict[str, AdmittedWorkflow] = {}
    for index, step in enumerate(loaded.steps):
        if step.plan is not None or not isinstance(step.on_error, str):
            problems += planner_agent_problems(step, index, registry)
        if step.agent is None:
            capped = cost_capped_above or cost_capped(loaded, step.id)
            _admit_child(step, index, registry, children, problems, directory, catalog, capped)
            continue
        try:
            with agents_built_in(directory):
                agents[step.id] = registry.create(step.agent.id, step.agent.config)
        except AgentError as error:
            problems += _agent_problems(error, index, loaded)
    problems += model_use_problems(
        loaded,
        agents,
        catalog,
        cost_capped=lambda step_id: cost_capped_above or cost_capped(loaded, step_id),
    )
    if problems:
        raise WorkflowValidationError(problems, source=source or _path_of(workflow))
    return AdmittedWorkflow(loaded, agents, children, directory)


def _agent_problems(error: AgentError, index: int, loaded: Workflow) -> list[Problem]:
    """The problems of a step's agent that could not be built: each at its path when it says.

    An `AgentConfigurationError` listing its `problems` gives one per problem, at
    `$.steps[i].agent.config...`; any other, one at the agent.
    """
    # The agent may quote its config: its secret values are redacted too.
    with default_redactor().lease(secret_values_of(loaded, {}, {})):
        if isinstance(error, AgentConfigurationError) and error.problems:
            return [
                Problem(f"$.steps[{index}].agent.{where}", redact_text(message))
                for where, message in error.problems
            ]
        return [Problem(f"$.steps[{index}].agent", redact_text(str(error)))]


def _admit_child(
    step: Step,
    index: int,
    registry: AgentRegistry,
    children: dict[str, AdmittedWorkflow],
    problems: list[Problem],
    directory: Path | None,
    catalog: ProviderCatalog,
    cost_capped_above: bool,
) -> None:
    """Admit a sub-workflow step's child, or add its problems located under the step.

    A child read from a file builds its agents in that file's directory, any other in its
    parent's. `cost_capped_above`: a cost cap covers the step, so the child's models need prices.
    """
    child = step.workflow.workflow if step.workflow is not None else None
    if child is None:
        return
    reference = step.workflow.reference if step.workflow is not None else None
    if directory is not None and reference is not None and reference.endswith(".json"):
        directory = (directory / reference).resolve().parent
    try:
        children[step.id] = admit_workflow(
            child,
            registry,
            directory=directory,
            providers=catalog,
            cost_capped_above=cost_capped_above,
        )
    except WorkflowValidationError as error:
        where = f"$.steps[{index}].workflow"
        problems += [
            Problem(where + problem.path[1:], problem.message) for problem in error.problems
        ]


def admit(admitted: AdmittedWorkflow, inputs: Mapping[str, Any] | None) -> Admission:
    """Check `inputs` against the admitted workflow's `inputs` schema, once.

    Raises:
        InputValidationError: with every problem found.
    """
    return Admission(admitted, validate_inputs(admitted.workflow, inputs))


class Admitter(Protocol):
    """The runtime's admission: a workflow loaded and its agents built (once per workflow)."""

    def __call__(
        self, workflow: WorkflowLike, *, directory: Path | None = None
    ) -> tuple[Workflow, Mapping[str, Agent]]:
        """The loaded workflow and its agents, built in `directory` when it has no file."""
        ...


def file_directory(workflow: WorkflowLike) -> Path | None:
    """The directory of the file `workflow` is read from; None for a document or JSON text."""
    path = _path_of(workflow)
    return None if path is None else Path(path).resolve().parent


def recorded_directory(events: Sequence[Event]) -> Path | None:
    """The workflow file's directory an execution's `execution.started` recorded, if any.

    Resume and fork build the agents of the journaled workflow there, so relative paths in
    agent configs (templates) resolve as they did at the start. Journals written before the
    directory was recorded have none: their workflows are admitted without one, as before.
    """
    for event in events:
        if event.type is EventType.EXECUTION_STARTED:
            directory = event.data.get("directory")
            return Path(directory) if isinstance(directory, str) else None
    return None


def _path_of(workflow: WorkflowLike) -> str | None:
    """The file `workflow` was read from, or None for a document, JSON text or a workflow."""
    if isinstance(workflow, Workflow | Mapping):
        return None
    if isinstance(workflow, str) and workflow.lstrip()[:1] in ("{", "["):
        return None
    return os.fspath(workflow)


class AdmittedWorkflows:
    """The workflows a runtime admitted, so each is loaded and has its agents built only once."""

    def __init__(
        self,
        registry: AgentRegistry,
        workflows: WorkflowCatalog | None = None,
        providers: ProviderCatalog | None = None,
    ) -> None:
        """Build agents from `registry`, which does not change for the runtime's life.

        `workflows` holds the registered names sub-workflows may use; `providers` the runtime's
        provider catalog the models of the agents are checked against.
        """
        self._registry = registry
        self._workflows = workflows
        self._providers = providers
        # By id(): a weak reference to each workflow and the agents built for its steps. An
        # entry goes when its workflow is dropped.
        self._admitted: dict[int, tuple[weakref.ref[Workflow], Mapping[str, Agent]]] = {}
        # By id() too: the directory a workflow's agents were built in (its file's), if any.
        self._directories: dict[int, Path] = {}

    def admit(
        self,
        workflow: WorkflowLike,
        *,
        max_cost_usd: float | None = None,
        directory: Path | None = None,
    ) -> tuple[Workflow, Mapping[str, Agent]]:
        """The loaded workflow and its agents by step id, built on its first admission only.

        `max_cost_usd` caps the workflow's cost (`admit_workflow`): a capped workflow is a new
        one, admitted anew. `directory` is where agents of a workflow with no file are built
        (a resumed execution's recorded one); a path's own directory wins.

        Raises:
            WorkflowValidationError: with every problem found.
        """
        if isinstance(workflow, Workflow) and max_cost_usd is None:
            entry = self._admitted.get(id(workflow))
            if entry is not None and entry[0]() is workflow:
                return workflow, entry[1]
        admitted = admit_workflow(
            workflow,
            self._registry,
            workflows=self._workflows,
            providers=self._providers,
            max_cost_usd=max_cost_usd,
            directory=directory,
        )
        self.remember(admitted)
        return admitted.workflow, admitted.agents

    def directory_of(self, workflow: Workflow) -> Path | None:
        """The directory `workflow`'s agents were built in when this runtime admitted it."""
        entry = self._admitted.get(id(workflow))
        if entry is None or entry[0]() is not workflow:
            return None
        return self._directories.get(id(workflow))

    def remember(self, admitted: AdmittedWorkflow) -> None:
        """Keep the agents of a workflow admitted elsewhere (the CLI's), and of its children."""
        loaded, key = admitted.workflow, id(admitted.workflow)
        self._admitted[key] = (weakref.ref(loaded), admitted.agents)
        if admitted.directory is not None:
            self._directories[key] = admitted.directory
            weakref.finalize(loaded, self._directories.pop, key, None)
        weakref.finalize(loaded, self._admitted.pop, key, None)
        for child in admitted.children.values():
            self.remember(child)
