"""Forks: a new execution that reuses a finished one's outputs up to a step, and runs the rest.

`prepare_fork` plans a fork (`_fork_plans.plan_fork`), loads the workflow it runs (the source's
recorded document, or another one) and works out its inputs: the source's, changed by overrides
(`fork_inputs`: a dotted key sets a nested value), with those the journal redacted given again.
The `PreparedFork` is what `Runtime.start_fork` records: the fork's record (`forked_from`,
`fork_seq`), its `execution.started` (which says so, with `from_step`), and each kept unit's
recorded events copied into it (`copied_events`), stamped now and marked `reused_from` (the
source and seq), so the fork's journal tells its whole story. Then it runs like a resume
(`_resumption`), which reuses what was copied; approval gates downstream run again, so they are
asked again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._errors import ForkRefusedError, InputValidationError, Problem
from .._journal._events import Event, EventFactory
from .._journal._journal import ExecutionRecord
from .._json import append_path
from .._observability._redaction import default_redactor, redact
from .._workflow._codec import journal_document
from .._workflow._document import Workflow
from .._workflow._inputs import validate_inputs
from ._admission import Admitter, WorkflowLike, file_directory, recorded_directory
from ._fork_plans import ForkPlan, plan_fork
from ._secrets import redacted_inputs


@attrs.frozen
class PreparedFork:
    """A fork ready to record: its plan, the workflow it runs and the inputs it runs with."""

    plan: ForkPlan
    workflow: Workflow
    document: Mapping[str, Any]
    """The journal document of `workflow`, redacted, as the fork's record keeps it."""
    inputs: Mapping[str, Any]
    """The fork's inputs, checked against the workflow's `inputs` schema (secrets and all)."""
    directory: Path | None = None
    """The workflow file's directory (the source's, or the replacing file's); None: no file."""

    def record(self, execution_id: str) -> ExecutionRecord:
        """The fork's journal record: the workflow and redacted inputs, and where it came from."""
        return ExecutionRecord(
            execution_id=execution_id,
            workflow_name=redact(self.workflow.name),
            workflow=dict(self.document),
            inputs=redact(dict(self.inputs)),
            forked_from=self.plan.source_id,
            fork_seq=self.plan.fork_seq,
        )

    def start_data(self, execution_id: str) -> dict[str, Any]:
        """The data of the fork's `execution.started`: a start's, and where it was forked from.

        Its correlation id is its own id, as for any execution started without one.
        """
        data = {
            "workflow": redact(self.workflow.name),
            "inputs": redact(dict(self.inputs)),
            "correlation_id": execution_id,
            "forked_from": self.plan.source_id,
            "fork_seq": self.plan.fork_seq,
            "from_step": str(self.plan.point),
        }
        if self.directory is not None:
            data["directory"] = str(self.directory)
        return data

    def supplied(self) -> dict[str, Any]:
        """The inputs the fork's record keeps redacted, for its run to take again (`_secrets`)."""
        return {name: self.inputs[name] for name in redacted_inputs(redact(dict(self.inputs)))}


def prepare_fork(
    record: ExecutionRecord,
    events: Sequence[Event],
    admit: Admitter,
    point_text: str,
    *,
    workflow: WorkflowLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    recorded_hashes: Mapping[str, str] | None = None,
) -> PreparedFork:
    """Plan a fork of `record` and check what it would run with; nothing is written.

    `workflow` replaces the source's recorded document (its kept steps must be unchanged, as
    `recorded_hashes`, the journal's step hashes of the source, say); `overrides` change the
    source's inputs (`fork_inputs`). Agents are built in the directory of `workflow`'s file,
    else in the one the source recorded (`recorded_directory`).

    Raises:
        ForkRefusedError: `record` is a child execution, the fork point is not one the workflow
            has, or a kept step's spec changed.
        WorkflowValidationError: `workflow` is invalid.
        InputValidationError: an input the journal redacted is not given again, or the inputs
            do not fit the workflow's `inputs` schema.
    """
    if record.parent_id is not None:
        raise ForkRefusedError(
            f"execution {record.execution_id} is a child of execution {record.parent_id} (its "
            f"step {record.parent_step}); fork {record.parent_id} from that step instead"
        )
    if workflow is None:
        directory = recorded_directory(events)
        loaded, _ = admit(record.workflow, directory=directory)
        document: Mapping[str, Any] = record.workflow
    else:
        directory = file_directory(workflow)
        loaded, _ = admit(workflow)
        document = default_redactor().redact_workflow(journal_document(loaded))
    inputs = fork_inputs(record.inputs, overrides or {})
    secret = set(redacted_inputs(record.inputs))
    changed = frozenset(
        name
        for name in {*inputs, *record.inputs}
        if name not in secret and inputs.get(name) != record.inputs.get(name)
    )
    plan = plan_fork(
        record, events, loaded, document, point_text, recorded_hashes, changed_inputs=changed
    )
    missing = [name for name in redacted_inputs(inputs) if name not in (overrides or {})]
    if missing:
        raise InputValidationError(
            [
                Problem(
                    append_path("$.inputs", name),
                    "the journal keeps this input redacted (its key looks like a secret); "
                    "give it again to fork",
                )
                for name in missing
            ]
        )
    return PreparedFork(plan, loaded, document, validate_inputs(loaded, inputs), directory)


def copied_events(plan: ForkPlan, factory: EventFactory) -> list[Event]:
    """The fork's copies of the kept units' events: stamped now, each marked `reused_from`."""
    return [
        factory.create(
            event.type,
            step_id=event.step_id,
            data={
                **event.data,
                "reused_from": {"execution_id": plan.source_id, "seq": event.seq},
            },
        )
        for event in plan.copied
    ]


def fork_inputs(recorded: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The source's recorded inputs with `overrides` applied; a dotted key sets a nested value.

    `a.b=1` sets `b` inside the object `a` (made when missing). The result still holds `***`
    where the journal redacted an input not overridden: `require_unredacted` refuses those.

    Raises:
        InputValidationError: a dotted key goes through a value that is not an object.
    """
    inputs: dict[str, Any] = _copy_objects(dict(recorded))
    problems: list[Problem] = []
    for key, value in overrides.items():
        names = key.split(".")
        target = inputs
        for depth, name in enumerate(names[:-1]):
            inner = target.setdefault(name, {})
            if not isinstance(inner, dict):
                path = "$.inputs." + ".".join(names[: depth + 1])
                problems.append(Problem(path, f"is not an object, so {key} cannot be set in it"))
                break
            target = inner
        else:
            target[names[-1]] = value
    if problems:
        raise InputValidationError(problems)
    return inputs


def _copy_objects(value: Any) -> Any:
    """`value` with every object copied, so overrides never change the record's inputs."""
    if isinstance(value, dict):
        return {key: _copy_objects(inner) for key, inner in value.items()}
    return value
