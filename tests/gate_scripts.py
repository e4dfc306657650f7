"""Executions with approval gates written straight into a journal, as a run would have left them.

The answering surfaces (`submit_answer`, `orchestr8 approve`, the REST gate routes, the prompt)
read the gates from the journal only, so their tests record the events a run emits
(`gate.opened`, `gate.resolved`, `execution.waiting`) without running the engine.
"""

from __future__ import annotations

from typing import Any

from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import ExecutionRecord, Journal

AMOUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "minimum": 10},
        "note": {"type": "string", "default": "ok"},
    },
    "required": ["amount"],
    "additionalProperties": False,
}
"""The schema of the `sign` gate: an amount of at least 10, an optional note."""

GATED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "gated",
    "steps": [
        {"id": "draft", "agent": "echo", "input": "text"},
        {
            "id": "sign",
            "approval": {"prompt": "Sign the draft?", "schema": AMOUNT_SCHEMA},
            "depends_on": ["draft"],
        },
        {
            "id": "review",
            "approval": {"prompt": "Review item ${item}?"},
            "for_each": "${inputs.items}",
        },
        {"id": "child", "workflow": {"schema_version": "1.1", "name": "c", "steps": []}},
    ],
}
"""A workflow with a plain gate (`sign`), a gate per map item (`review[i]`) and a sub-workflow."""

STAMP = "2026-01-01T00:00:00.000Z"


def opened(gate_id: str, prompt: str = "Sign the draft?", schema: Any = None) -> dict[str, Any]:
    """The data of a `gate.opened` event."""
    return {
        "prompt": prompt,
        "schema": schema,
        "timeout": None,
        "on_timeout": "reject",
        "deadline": None,
    }


async def record_gated(
    journal: Journal,
    execution_id: str,
    *events: tuple[str, str | None, dict[str, Any]],
    workflow: dict[str, Any] | None = None,
) -> None:
    """Record an execution of `GATED` (or `workflow`) that started, then had `events`."""
    await journal.create_execution(
        ExecutionRecord(
            execution_id=execution_id,
            workflow_name="gated",
            workflow=workflow or GATED,
            inputs={"items": ["a", "b"]},
        )
    )
    await append(journal, execution_id, (EventType.EXECUTION_STARTED, None, {}), *events)


async def append(
    journal: Journal, execution_id: str, *events: tuple[str, str | None, dict[str, Any]]
) -> None:
    """Append events after the execution's last one, and flush them."""
    seq = await journal.last_seq(execution_id)
    for offset, (kind, step_id, data) in enumerate(events, start=1):
        await journal.append(
            Event(execution_id, seq + offset, STAMP, 0.0, kind, step_id=step_id, data=data)
        )
    await journal.flush()


def gate_opened(gate_id: str, schema: Any = None) -> tuple[str, str | None, dict[str, Any]]:
    """A `gate.opened` event of `gate_id`."""
    return (EventType.GATE_OPENED, gate_id, opened(gate_id, schema=schema))


def gate_resolved(
    gate_id: str, approved: bool = True, by: str = "ada@lab", how: str = "answer"
) -> tuple[str, str | None, dict[str, Any]]:
    """A `gate.resolved` event of `gate_id`."""
    data = {
        "approved": approved,
        "input": {},
        "by": by,
        "reason": None,
        "how": how,
        "request_id": None,
    }
    return (EventType.GATE_RESOLVED, gate_id, data)


SIGN_ONLY: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "sign-only",
    "steps": [
        {"id": "draft", "agent": "echo", "input": {"text": "hello"}},
        {
            "id": "sign",
            "approval": {"prompt": "Sign the draft?", "schema": AMOUNT_SCHEMA},
            "depends_on": ["draft"],
        },
        {"id": "publish", "agent": "echo", "input": "${steps.sign.output}", "depends_on": ["sign"]},
    ],
    "output": "${steps.publish.output}",
}
"""A workflow the engine runs to a gate: draft, then the `sign` gate, then publish its answer."""
