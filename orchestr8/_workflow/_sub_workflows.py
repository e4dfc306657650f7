"""Sub-workflows: a step runs another workflow, named by a file path, a registered name or inline.

A step's `"workflow"` names its child workflow in one of three ways:

- a string ending in `.json` is a file path, relative to the directory of the document that
  names it; a document given as JSON text or as a parsed object (a request body) came from no
  file and may not name files at all, relative or absolute, so that it cannot read the server's;
- any other string is a registered name, looked up in a `WorkflowCatalog` (the embedding
  program's `open_runtime(workflows=...)`, then the `orchestr8.workflows` entry points);
- an object is the child document itself, inline.

Every child is loaded and checked when its parent is, recursively: problems in an inline child
are reported at their nested JSON path (`$.steps[2].workflow.steps[0].agent`), problems in a file
or a named child at the step's `workflow` path, naming the file. A workflow that includes itself,
directly or through others, and nesting deeper than `MAX_SUB_WORKFLOW_DEPTH`, are problems too.
The codec (`_codec`) drives this; this module holds the value and the rules.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._errors import Problem, WorkflowValidationError
from ._conditions import require_version_1_1
from ._references import json_type_name
from ._schema_problems import did_you_mean

if TYPE_CHECKING:
    from ._document import Workflow
    from ._expressions import Template

#: How deep sub-workflows may nest (a parent with a child is depth 1).
MAX_SUB_WORKFLOW_DEPTH: Final = 8

#: The entry point group where installed packages register workflows by name.
WORKFLOW_ENTRY_POINT_GROUP: Final = "orchestr8.workflows"

WorkflowDocumentSource = str | os.PathLike[str] | Mapping[str, Any]
"""What a registered name stands for: a file path, JSON text or a parsed document."""


class SubWorkflow:
    """A step's child workflow: how the document named it, and the workflow it resolved to.

    A plain class, not attrs: its `Workflow` is the AST's own class, which imports this module.
    """

    __slots__ = ("reference", "workflow")

    def __init__(self, reference: str | None, workflow: Workflow | None) -> None:
        """Pair the path or name as written (None: inline) with the loaded child workflow."""
        self.reference = reference
        """The path or registered name as written; None for an inline document."""
        self.workflow = workflow
        """The loaded child workflow; None only while loading the parent failed."""

    def __repr__(self) -> str:
        """Show the reference and the child workflow's name."""
        return f"SubWorkflow({self.reference!r}, {self.label!r})"

    @property
    def label(self) -> str:
        """What events and views call the child: its path or name, else its workflow's name."""
        if self.reference is not None:
            return self.reference
        return self.workflow.name if self.workflow is not None else "inline"

    def __eq__(self, other: object) -> bool:
        """Equal when the resolved workflows are: a path and its inlined document are the same."""
        if not isinstance(other, SubWorkflow):
            return NotImplemented
        return self.workflow == other.workflow

    def __hash__(self) -> int:
        """Hash like the resolved workflow's name (equal values share it)."""
        return hash(self.workflow.name if self.workflow is not None else None)


def to_sub_workflow(value: Any) -> SubWorkflow | None:
    """Accept a `SubWorkflow`, a loaded `Workflow` (inline) or None for `Step.workflow`.

    Raises:
        TypeError: anything else; documents are resolved by `load_workflow`, which has their
            directory and the registered names.
    """
    from ._document import Workflow  # the AST imports this module

    if value is None or isinstance(value, SubWorkflow):
        return value
    if isinstance(value, Workflow):
        return SubWorkflow(None, value)
    raise TypeError(
        "Step.workflow takes a loaded Workflow; load documents with load_workflow, which"
        " resolves paths and registered names"
    )


def is_path_reference(reference: str) -> bool:
    """Whether a `workflow` string is a file path (it ends in `.json`) rather than a name."""
    return reference.lower().endswith(".json")


class WorkflowCatalog:
    """Workflows by registered name: the program's own first, then the entry points."""

    def __init__(
        self,
        workflows: Mapping[str, WorkflowDocumentSource] | None = None,
        *,
        entry_points: bool = True,
    ) -> None:
        """Name `workflows` (they shadow entry points); `entry_points=False` ignores those."""
        self._workflows = dict(workflows or {})
        self._use_entry_points = entry_points
        self._entry_points: dict[str, importlib.metadata.EntryPoint] | None = None

    def names(self) -> list[str]:
        """Every registered name, for did-you-mean hints."""
        return sorted({*self._workflows, *self._found_entry_points()})

    def find(self, name: str) -> WorkflowDocumentSource | None:
        """The source registered under `name`, or None when no workflow has that name.

        Raises:
            WorkflowValidationError: its entry point cannot be loaded, or is not a workflow.
        """
        if name in self._workflows:
            return self._workflows[name]
        entry_point = self._found_entry_points().get(name)
        if entry_point is None:
            return None
        try:
            loaded = entry_point.load()
        except Exception as error:
            message = f"the entry point {entry_point.value!r} cannot be loaded: {error}"
            raise WorkflowValidationError([Problem("$", message)]) from None
        if not isinstance(loaded, str | os.PathLike | Mapping):
            message = (
                f"the entry point {entry_point.value!r} is not a workflow path or document"
                f" (it is a {type(loaded).__name__})"
            )
            raise WorkflowValidationError([Problem("$", message)])
        return loaded

    def _found_entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        if not self._use_entry_points:
            return {}
        if self._entry_points is None:
            group = importlib.metadata.entry_points(group=WORKFLOW_ENTRY_POINT_GROUP)
            self._entry_points = {entry_point.name: entry_point for entry_point in group}
        return self._entry_points


@attrs.frozen
class Nesting:
    """Where a document sits while it is loaded: its directory, its catalog, what includes it."""

    directory: Path | None
    """The directory relative paths start from; None for a document without a file."""
    catalog: WorkflowCatalog
    """Where registered names are looked up."""
    chain: tuple[str, ...] = ()
    """The files and names including this document, outermost first (to find cycles)."""
    depth: int = 0
    """How many parents this document has."""


#: Loads a child document: (path or JSON text or parsed document, its nesting, its label) → the
#: workflow, or raises `WorkflowValidationError`. The codec passes its own loader.
ChildLoader = Callable[[WorkflowDocumentSource, Nesting, str | None], "Workflow"]


def resolve_sub_workflow(
    value: Any, path: str, nesting: Nesting, load: ChildLoader, problems: list[Problem]
) -> SubWorkflow:
    """Load the child workflow a step's `workflow` value names, adding problems to `problems`.

    `path` is the JSON path of the `workflow` value. A child that cannot be loaded gives a
    `SubWorkflow` whose `workflow` is None, and at least one problem.
    """
    if nesting.depth + 1 > MAX_SUB_WORKFLOW_DEPTH:
        message = f"sub-workflows nest deeper than {MAX_SUB_WORKFLOW_DEPTH} levels"
        problems.append(Problem(path, message))
        return SubWorkflow(value if isinstance(value, str) else None, None)
    if isinstance(value, Mapping):
        child_nesting = attrs.evolve(nesting, depth=nesting.depth + 1)
        return SubWorkflow(None, _load_child(value, child_nesting, None, path, load, problems))
    if not isinstance(value, str) or not value:
        problems.append(Problem(path, "expected a file path, a registered name or an object"))
        return SubWorkflow(None, None)
    if is_path_reference(value):
        return SubWorkflow(value, _load_file(value, path, nesting, load, problems))
    return SubWorkflow(value, _load_named(value, path, nesting, load, problems))


def _load_file(
    reference: str, path: str, nesting: Nesting, load: ChildLoader, problems: list[Problem]
) -> Workflow | None:
    if nesting.directory is None:
        # Never touch the file system for a document that came from no file (a request body):
        # reading a server's file, or saying whether it exists, would leak it.
        problems.append(
            Problem(
                path,
                f"the file path '{reference}' is refused: this document was not loaded from a"
                " file, so it may not read sub-workflow files (inline the child document or"
                " use a registered name)",
            )
        )
        return None
    file = nesting.directory / reference
    identity = file_identity(file)
    if identity in nesting.chain:
        problems.append(Problem(path, _cycle_message(nesting, identity, reference)))
        return None
    child = Nesting(
        file.parent, nesting.catalog, (*nesting.chain, identity), depth=nesting.depth + 1
    )
    return _load_child(str(file), child, reference, path, load, problems)


def _load_named(
    name: str, path: str, nesting: Nesting, load: ChildLoader, problems: list[Problem]
) -> Workflow | None:
    identity = f"name:{name}"
    if identity in nesting.chain:
        problems.append(Problem(path, _cycle_message(nesting, identity, name)))
        return None
    try:
        source = nesting.catalog.find(name)
    except WorkflowValidationError as error:
        problems += [
            Problem(path, f"workflow '{name}': {problem.message}") for problem in error.problems
        ]
        return None
    if source is None:
        problems.append(Problem(path, _unknown_name_message(name, nesting.catalog.names())))
        return None
    directory: Path | None = None
    chain = (*nesting.chain, identity)
    is_text = isinstance(source, str) and source.lstrip()[:1] in ("{", "[")
    if isinstance(source, str | os.PathLike) and not is_text:
        file = Path(source)
        directory = file.parent
        chain = (*chain, file_identity(file))
    child = Nesting(directory, nesting.catalog, chain, depth=nesting.depth + 1)
    return _load_child(source, child, name, path, load, problems)


def _load_child(
    source: WorkflowDocumentSource,
    nesting: Nesting,
    label: str | None,
    path: str,
    load: ChildLoader,
    problems: list[Problem],
) -> Workflow | None:
    try:
        return load(source, nesting, label)
    except WorkflowValidationError as error:
        for problem in error.problems:
            if label is None:
                # Inline: the child's paths continue the parent's.
                problems.append(Problem(path + problem.path[1:], problem.message))
            else:
                problems.append(Problem(path, f"in {label}: {problem}"))
        return None


def _unknown_name_message(name: str, known: list[str]) -> str:
    """Why `name` names no workflow, with the closest name, or what is registered and how."""
    hint = did_you_mean(name, known)
    if not hint and known:
        hint = f" (registered: {', '.join(known)})"
    elif not hint:
        hint = (
            " (no workflow is registered by name: name them in open_runtime(workflows=...) or"
            " the orchestr8.workflows entry points; a file path ends in .json)"
        )
    return f"unknown workflow name '{name}'{hint}"


def file_identity(file: Path) -> str:
    """The file's absolute, resolved path: how a cycle of files is recognised."""
    try:
        return str(file.resolve())
    except (OSError, ValueError):
        # Not a usable path (a NUL byte, a loop of links): reading it reports that.
        return str(file)


def _cycle_message(nesting: Nesting, identity: str, reference: str) -> str:
    start = nesting.chain.index(identity)
    names = [_shown(link) for link in nesting.chain[start:]]
    return f"the workflow includes itself: {' → '.join([*names, _shown(identity)])} ('{reference}')"


def _shown(identity: str) -> str:
    return identity.removeprefix("name:") if identity.startswith("name:") else Path(identity).name


def step_kind_problems(
    index: int, agent: object, workflow: object, version: str | None = None
) -> list[Problem]:
    """The problems of a step's kind: both an agent and a workflow, neither, or a too old version.

    A workflow needs a "1.1" document (`version` None: not checked).
    """
    problems: list[Problem] = []
    if workflow is not None and version is not None:
        require_version_1_1(version, f"$.steps[{index}].workflow", "workflow", problems)
    if agent is not None and workflow is not None:
        problems.append(
            Problem(
                f"$.steps[{index}]", "a step runs an agent, a workflow or a plan: only one of them"
            )
        )
    elif agent is None and workflow is None:
        problems.append(Problem(f"$.steps[{index}]", "a step needs an agent, a workflow or a plan"))
    return problems


def literal_input_problems(index: int, workflow: object, input: Template) -> list[Problem]:
    """A sub-workflow step's input written as a literal that is not an object (nor null).

    The input is the child's inputs, so `"input": "text"` can never run: it is refused at load,
    at `$.steps[i].input`. An input with references is only known at run time, checked then.
    """
    if workflow is None or input.references:
        return []
    if input.source is None or isinstance(input.source, Mapping):
        return []
    kind = json_type_name(input.source)
    message = f"a sub-workflow step's input is its child's inputs: an object (or null), not {kind}"
    return [Problem(f"$.steps[{index}].input", message)]
