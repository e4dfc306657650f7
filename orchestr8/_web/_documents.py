"""The JSON documents the REST API answers with: JSON responses, executions, their steps and links.

An execution is shown as its events tell it (`_replay`): status, times, duration, inputs (as the
journal keeps them, redacted), output, error, the last seq, and every step with its attempts; a
child execution names its parent, and a parent lists the children of its sub-workflow steps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from quart import Response

from .._execution._fork_plans import ForkPlan
from .._execution._gates import gate_document
from .._journal._journal import ExecutionRecord
from .._journal._map_items import item_counts, split_item_id
from .._journal._replay import ExecutionState, StepState

__all__ = [
    "execution_document",
    "execution_lineage",
    "execution_links",
    "execution_summary",
    "fork_accepted",
    "json_response",
]


def json_response(
    document: Any,
    status: int = 200,
    *,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> Response:
    """Encode a JSON document as a response (UTF-8, compact, no NaN)."""
    try:
        body = json.dumps(
            document, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8; escaped, it stays valid JSON.
        body = json.dumps(document, allow_nan=False, separators=(",", ":")).encode("ascii")
    return Response(body, status=status, headers=dict(headers or {}), content_type=content_type)


def execution_links(execution_id: str) -> dict[str, str]:
    """The paths of an execution's resources."""
    base = f"/executions/{quote(execution_id, safe='')}"
    return {
        "self": base,
        "journal": f"{base}/journal",
        "events": f"{base}/events",
        "cancel": f"{base}/cancel",
    }


def execution_summary(record: ExecutionRecord) -> dict[str, Any]:
    """One item of `GET /executions`: id, workflow name, status and times."""
    return {
        "execution_id": record.execution_id,
        "workflow": record.workflow_name,
        "status": str(record.status),
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "correlation_id": record.correlation_id,
        "links": {"self": execution_links(record.execution_id)["self"]},
    }


def execution_document(record: ExecutionRecord, state: ExecutionState) -> dict[str, Any]:
    """`GET /executions/{id}`: the execution as its events tell it, with every declared step."""
    declared = [
        step["id"]
        for step in record.workflow.get("steps", ())
        if isinstance(step, Mapping) and isinstance(step.get("id"), str)
    ]
    # A map's items are counted under their map step (`items`), not listed one by one.
    extra = (s for s in state.steps if s not in declared and split_item_id(s) is None)
    steps = {
        step_id: _step_document(state.steps.get(step_id, StepState()))
        for step_id in [*declared, *extra]
    }
    for step_id, items in item_counts(state).items():
        if step_id in steps:
            steps[step_id]["items"] = items.to_json()
    return {
        "execution_id": record.execution_id,
        "workflow": record.workflow_name,
        "status": str(state.status),
        "created_at": record.created_at,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "duration": _duration(state.started, state.finished),
        "correlation_id": record.correlation_id,
        "idempotency_key": record.idempotency_key,
        "inputs": record.inputs,
        "output": state.output,
        "error": state.error,
        "last_seq": state.last_seq,
        "cost_usd": state.cost_usd,
        "steps": steps,
        "gates": {gate_id: gate_document(gate) for gate_id, gate in state.gates.items()},
        "parent": _parent_document(record),
        "children": [
            {
                "step_id": step_id,
                "execution_id": step.child,
                "links": {"self": execution_links(step.child)["self"]},
            }
            for step_id, step in state.steps.items()
            if step.child is not None
        ],
        "links": execution_links(record.execution_id),
    }


def execution_lineage(record: ExecutionRecord, forks: Sequence[str]) -> dict[str, Any]:
    """An execution's fork lineage: what it was forked from, at which seq, and its own forks."""
    return {"forked_from": record.forked_from, "fork_seq": record.fork_seq, "forks": list(forks)}


def fork_accepted(execution_id: str, plan: ForkPlan) -> dict[str, Any]:
    """The 202 document of a fork that started: the new execution, where it came from, links."""
    return {
        "execution_id": execution_id,
        "status": "running",
        "forked_from": plan.source_id,
        "fork_seq": plan.fork_seq,
        "from": str(plan.point),
        "links": execution_links(execution_id),
    }


def _parent_document(record: ExecutionRecord) -> dict[str, Any] | None:
    """The execution whose sub-workflow step runs this one, with its link; None for none."""
    if record.parent_id is None:
        return None
    return {
        "execution_id": record.parent_id,
        "step_id": record.parent_step,
        "links": {"self": execution_links(record.parent_id)["self"]},
    }


def _step_document(step: StepState) -> dict[str, Any]:
    return {
        "status": str(step.status),
        "attempts": step.total_attempts,
        "duration": step.duration,
        "output": step.output,
        "error": step.error,
        "reason": step.reason,
        "cost_usd": step.cost_usd,
    }


def _duration(started: float | None, finished: float | None) -> float | None:
    if started is None or finished is None:
        return None
    return max(0.0, finished - started)
