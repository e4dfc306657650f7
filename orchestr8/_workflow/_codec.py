"""The JSON boundary of workflows: reading and checking documents, writing them back.

Loading goes in stages, each reporting every problem it finds: read the file (at most
`MAX_DOCUMENT_BYTES`), decode UTF-8 and parse JSON; check that the document holds only JSON values;
check the schema version; validate against the generated JSON Schema and, on the same pass, run the
graph and reference checks; only then structure the AST with the strict converter (`_converter`).
Execution inputs are checked in `_inputs`.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import cattrs
from jsonschema import Draft202012Validator

from .._errors import (
    Problem,
    UnknownAgentError,
    WorkflowValidationError,
)
from .._json import (
    MAX_DEPTH,
    json_value_problems,
    parse_strict,
)
from ._approvals import raw_approval_problems
from ._budgets import raw_budget_problems
from ._conditions import require_version_1_1
from ._config_secrets import config_references
from ._converter import converter
from ._document import (
    SCHEMA_VERSIONS,
    STEP_ID_PATTERN,
    Workflow,
    workflow_schema,
)
from ._expressions import scan_template
from ._graph import StepOutline, analyse_graph
from ._loops import LOOP_LOCALS, outline_repeat
from ._map_fields import raw_map_outline
from ._plans import plan_agent_checks
from ._provider_specs import PROVIDER_NAME_PATTERN, raw_provider_problems
from ._schema_problems import schema_problems, sort_problems
from ._step_conditions import outline_condition
from ._sub_workflows import (
    Nesting,
    WorkflowCatalog,
    WorkflowDocumentSource,
    file_identity,
    resolve_sub_workflow,
    step_kind_problems,
)

#: The largest workflow file or text accepted; bigger ones are refused before they are read.
MAX_DOCUMENT_BYTES: Final = 10 * 1024 * 1024

WorkflowSource = str | os.PathLike[str] | Mapping[str, Any]

_PATTERN_NAMES: Final = {
    STEP_ID_PATTERN: "a valid step id (a letter or '_', then letters, digits, '_' or '-')",
    PROVIDER_NAME_PATTERN: "a provider name (a lower-case letter, then lower-case letters,"
    " digits, '_' or '-')",
}


def load_workflow(
    source: WorkflowSource,
    *,
    agent_exists: Callable[[str], bool] | None = None,
    workflows: WorkflowCatalog | Mapping[str, WorkflowDocumentSource] | None = None,
) -> Workflow:
    """Load and validate a workflow from a path, JSON text (starting with `{` or `[`) or a dict.

    Args:
        source: a path (str or path-like), JSON text, or an already parsed document.
        agent_exists: tells whether an agent id is known, or raises `UnknownAgentError` saying why
            not (its message becomes the problem); without it agents are not checked.
        workflows: the workflows sub-workflow steps may name, by name (a path, JSON text or a
            parsed document each), before the `orchestr8.workflows` entry points.

    Raises:
        WorkflowValidationError: with every problem found, each as `JSON path: message`.
    """
    catalog = _catalog(workflows)
    nesting = Nesting(None, catalog)
    if not isinstance(source, Mapping) and not _is_json_text(source):
        file = Path(os.fspath(source))
        nesting = Nesting(file.parent, catalog, (file_identity(file),))
    return _load(source, nesting, agent_exists)


def parse_workflow(
    document: Any,
    *,
    agent_exists: Callable[[str], bool] | None = None,
    source: str | None = None,
    workflows: WorkflowCatalog | Mapping[str, WorkflowDocumentSource] | None = None,
) -> Workflow:
    """Validate a parsed JSON document and build its `Workflow`.

    It has no file: a sub-workflow named by a file path in it, relative or absolute, is refused.

    Raises:
        WorkflowValidationError: with every problem found; `source` names the file in messages.
    """
    nesting = Nesting(None, _catalog(workflows))
    workflow, problems = _parse(document, agent_exists, nesting)
    if workflow is None:
        raise WorkflowValidationError(problems, source=source)
    return workflow


def validate_workflow_document(
    document: Any,
    *,
    agent_exists: Callable[[str], bool] | None = None,
    workflows: WorkflowCatalog | Mapping[str, WorkflowDocumentSource] | None = None,
) -> tuple[Problem, ...]:
    """Return every problem of a parsed JSON document (empty when it is a valid workflow)."""
    nesting = Nesting(None, _catalog(workflows))
    return _parse(document, agent_exists, nesting)[1]


def _catalog(
    workflows: WorkflowCatalog | Mapping[str, WorkflowDocumentSource] | None,
) -> WorkflowCatalog:
    """The catalog of registered names: the one given, or one over the mapping given."""
    return workflows if isinstance(workflows, WorkflowCatalog) else WorkflowCatalog(workflows)


def _is_json_text(source: WorkflowSource) -> bool:
    return isinstance(source, str) and source.lstrip()[:1] in ("{", "[")


def _load(
    source: WorkflowDocumentSource,
    nesting: Nesting,
    agent_exists: Callable[[str], bool] | None,
    label: str | None = None,
) -> Workflow:
    """Read `source` (a document, JSON text or a file) and build its workflow at `nesting`."""
    if isinstance(source, Mapping):
        document: Any = source if isinstance(source, dict) else dict(source)
    elif _is_json_text(source):
        document = _parse_text(str(source), label)
    else:
        label = os.fspath(source) if label is None else label
        document = _parse_text(_read_file(Path(os.fspath(source)), label), label)
    workflow, problems = _parse(document, agent_exists, nesting)
    if workflow is None:
        raise WorkflowValidationError(problems, source=label)
    return workflow


def workflow_to_json(workflow: Workflow) -> dict[str, Any]:
    """Serialise a workflow back to its JSON document, leaving out fields at their defaults."""
    document: dict[str, Any] = copy.deepcopy(converter.unstructure(workflow))
    return {name: document[name] for name in attrs.fields_dict(Workflow) if name in document}


_documents: dict[int, tuple[weakref.ref[Workflow], dict[str, Any]]] = {}


def journal_document(workflow: Workflow) -> dict[str, Any]:
    """`workflow_to_json(workflow)` made once per workflow object, for the journal's records.

    Every execution records its workflow, and a workflow started again and again (a service)
    would otherwise be serialised each time. The document is shared, with the workflow too (it
    is not copied): read it, or `redact` it (which copies what it changes), but never change it.
    """
    key = id(workflow)
    cached = _documents.get(key)
    if cached is not None and cached[0]() is workflow:
        return cached[1]
    shared: dict[str, Any] = converter.unstructure(workflow)
    document = {name: shared[name] for name in attrs.fields_dict(Workflow) if name in shared}
    # Forgotten when the workflow is: its id may then be reused by another object.
    reference = weakref.ref(workflow, lambda _: _documents.pop(key, None))
    _documents[key] = (reference, document)
    return document


def _read_file(path: Path, label: str) -> str:
    def fail(message: str) -> WorkflowValidationError:
        return WorkflowValidationError([Problem("$", message)], source=label)

    try:
        with path.open("rb") as file:
            # A regular file's size is known up front; other files are read up to the limit.
            if os.fstat(file.fileno()).st_size > MAX_DOCUMENT_BYTES:
                data = b""
                too_large = True
            else:
                data = file.read(MAX_DOCUMENT_BYTES + 1)
                too_large = len(data) > MAX_DOCUMENT_BYTES
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("this is a directory, not a workflow file") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as error:
        raise fail(f"cannot read the file: {error.strerror or error}") from None
    except ValueError:
        raise fail("not a usable file path") from None
    if too_large:
        limit = MAX_DOCUMENT_BYTES // (1024 * 1024)
        raise fail(f"the file is larger than the {limit} MiB limit for workflow documents")
    if b"\x00" in data:
        raise fail("this is a binary file (it contains NUL bytes), not JSON text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        raise fail(f"not UTF-8 text (byte 0x{byte:02x} at offset {error.start})") from None


def _parse_text(text: str, label: str | None) -> Any:
    def fail(message: str) -> WorkflowValidationError:
        return WorkflowValidationError([Problem("$", message)], source=label)

    if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        limit = MAX_DOCUMENT_BYTES // (1024 * 1024)
        raise fail(f"the document is larger than the {limit} MiB limit for workflow documents")
    if not text.strip():
        raise fail("the document is empty")
    try:
        document, duplicates = parse_strict(text)
    except json.JSONDecodeError as error:
        raise fail(
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise fail(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        raise fail(str(error)) from None
    problems = json_value_problems(document, duplicates=duplicates)
    if problems:
        raise WorkflowValidationError(sort_problems(problems), source=label)
    return document


@functools.cache
def _validator() -> Draft202012Validator:
    """The validator of workflow documents, built once from the generated schema."""
    return Draft202012Validator(workflow_schema())


def _parse(
    document: Any, agent_exists: Callable[[str], bool] | None, nesting: Nesting
) -> tuple[Workflow | None, tuple[Problem, ...]]:
    problems = json_value_problems(document)
    if problems:
        return None, tuple(sort_problems(problems))
    version = document.get("schema_version") if isinstance(document, Mapping) else None
    if isinstance(version, str) and version not in SCHEMA_VERSIONS:
        readable = "' or '".join(SCHEMA_VERSIONS)
        message = f"unsupported schema version '{version}' (this orchestr8 reads '{readable}')"
        return None, (Problem("$.schema_version", message),)
    problems += schema_problems(_validator().iter_errors(document), pattern_names=_PATTERN_NAMES)
    if problems:
        # The document cannot become a Workflow: check on the raw document what can be checked,
        # so that every problem is reported at once.
        if isinstance(document, Mapping):
            problems += _document_checks(document, agent_exists)
        return None, tuple(sort_problems(problems))
    # Valid against the schema: building the Workflow checks the graph, the references and the
    # config secrets (`Workflow.__attrs_post_init__`), so they are checked once, there.
    problems = _agent_checks(document["steps"], agent_exists)
    fields = {key: value for key, value in document.items() if key != "$schema"}
    children: list[Problem] = []
    fields["steps"] = _resolve_steps(document["steps"], nesting, agent_exists, children)
    problems += children
    try:
        workflow = converter.structure(fields, Workflow)
    except WorkflowValidationError as error:
        return None, tuple(sort_problems([*problems, *error.problems]))
    except cattrs.BaseValidationError as error:
        # A part failed before the Workflow was built (a malformed reference): the graph and
        # references were not checked yet, so check the raw document, as above; what that finds
        # is located better than what structuring reports.
        found = _document_checks(document, agent_exists)
        return None, tuple(sort_problems(children + (found or _structuring_problems(error))))
    if problems:
        return None, tuple(sort_problems(problems))
    return workflow, ()


def _resolve_steps(
    steps: list[Any],
    nesting: Nesting,
    agent_exists: Callable[[str], bool] | None,
    problems: list[Problem],
) -> list[Any]:
    """The steps, each `workflow` value replaced by the sub-workflow it names, loaded."""

    def load(source: WorkflowDocumentSource, child: Nesting, label: str | None) -> Workflow:
        return _load(source, child, agent_exists, label)

    resolved: list[Any] = []
    for index, step in enumerate(steps):
        if isinstance(step, Mapping) and step.get("workflow") is not None:
            path = f"$.steps[{index}].workflow"
            step = {
                **step,
                "workflow": resolve_sub_workflow(step["workflow"], path, nesting, load, problems),
            }
        resolved.append(step)
    return resolved


def _structuring_problems(error: cattrs.BaseValidationError) -> list[Problem]:
    """Problems from a failed structuring: those the AST raised as they are, others located."""
    found: list[Problem] = []
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        elif isinstance(current, WorkflowValidationError):
            found.extend(current.problems)

    def describe(exception: BaseException, _: Any) -> str:
        return "" if isinstance(exception, WorkflowValidationError) else str(exception)

    for message in cattrs.transform_error(error, format_exception=describe):
        text, _, path = message.rpartition(" @ ")
        if text:
            found.append(Problem(path, text))
    return found


def _document_checks(
    document: Mapping[str, Any], agent_exists: Callable[[str], bool] | None
) -> list[Problem]:
    """Run the graph, reference and agent checks on a document the schema found errors in."""
    problems: list[Problem] = []
    steps = document.get("steps")
    outlines: list[StepOutline] = []
    for index, step in enumerate(steps if isinstance(steps, list) else ()):
        if not isinstance(step, Mapping):
            continue
        step_id = step.get("id")
        depends_on = step.get("depends_on")
        map_references, local_names = raw_map_outline(
            step, index, document.get("schema_version"), problems
        )
        outlines.append(
            StepOutline(
                index=index,
                step_id=step_id if isinstance(step_id, str) else None,
                depends_on=tuple(
                    need if isinstance(need, str) else None
                    for need in (depends_on if isinstance(depends_on, list) else ())
                ),
                references=_references(step.get("input"), f"$.steps[{index}].input", problems)
                + outline_condition(step, index, document.get("schema_version"), problems)
                + map_references
                + outline_repeat(step, index, document.get("schema_version"), problems)
                + _references(
                    step["approval"].get("prompt")
                    if isinstance(step.get("approval"), Mapping)
                    else None,
                    f"$.steps[{index}].approval.prompt",
                    problems,
                ),
                local_names=local_names | (LOOP_LOCALS if "repeat" in step else frozenset()),
            )
        )
        _check_config_secrets(step.get("agent"), index, problems)
        version = document.get("schema_version")
        known_version = version if isinstance(version, str) else None
        if step.get("approval") is not None:
            problems += raw_approval_problems(step, index, version)
        elif step.get("plan") is None:
            problems += step_kind_problems(
                index, step.get("agent"), step.get("workflow"), known_version
            )
        elif known_version is not None:
            require_version_1_1(known_version, f"$.steps[{index}].plan", "plan", problems)
        if known_version is not None and isinstance(step.get("on_error"), Mapping):
            require_version_1_1(known_version, f"$.steps[{index}].on_error", "replan", problems)
        problems += raw_budget_problems(step.get("budget"), f"$.steps[{index}].budget", version)
    problems += raw_budget_problems(
        document.get("budget"), "$.budget", document.get("schema_version")
    )
    problems += raw_provider_problems(document.get("providers"), document.get("schema_version"))
    problems += _agent_checks(steps, agent_exists)
    strategy = document.get("strategy", "dag")
    graph = analyse_graph(
        outlines,
        strategy=strategy if isinstance(strategy, str) else "dag",
        inputs_schema=document.get("inputs", {"type": "object"}),
        output_references=_references(document.get("output"), "$.output", problems),
    )
    return problems + list(graph.problems)


def _agent_checks(steps: Any, agent_exists: Callable[[str], bool] | None) -> list[Problem]:
    """The problems of the steps' agent ids that `agent_exists` rejects (none without it)."""
    problems: list[Problem] = []
    if agent_exists is None or not isinstance(steps, list):
        return problems
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        agent = step.get("agent")
        agent_path = f"$.steps[{index}].agent"
        if isinstance(agent, Mapping):
            agent, agent_path = agent.get("id"), agent_path + ".id"
        if isinstance(agent, str) and agent:
            problem = _agent_problem(agent, agent_exists)
            if problem is not None:
                problems.append(Problem(agent_path, problem))
        if "plan" in step or isinstance(step.get("on_error"), Mapping):
            problems += plan_agent_checks(
                step, index, lambda agent_id: _agent_problem(agent_id, agent_exists)
            )
    return problems


def _agent_problem(agent: str, agent_exists: Callable[[str], bool]) -> str | None:
    """Why `agent` is unusable, or None: `agent_exists` says no, or raises saying why."""
    try:
        if agent_exists(agent):
            return None
    except UnknownAgentError as error:
        return str(error)
    return f"unknown agent '{agent}'"


def _references(value: Any, path: str, problems: list[Problem]) -> tuple[tuple[str, Any], ...]:
    located, malformed = scan_template(value, path=path)
    problems.extend(malformed)
    return located


def _check_config_secrets(agent: Any, index: int, problems: list[Problem]) -> None:
    """Report the malformed `${secrets...}` references of a step's agent config."""
    if isinstance(agent, Mapping) and isinstance(agent.get("config"), Mapping):
        config_references(agent["config"], f"$.steps[{index}].agent.config", problems)
