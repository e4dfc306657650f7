"""The journal's rules as pure functions, shared by the SQLite store and the memory store.

How records and events become stored values (strict, compact JSON text written by `_json`'s
encoder: no NaN or infinity, data always an object), how a status event changes its execution's
record (the rules `replay` follows), and the words the journal uses when it refuses an event. Both
stores call these, so they agree on every one of these details by construction.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .._errors import JournalError
from .._json import encode_json, has_lone_surrogate
from ._events import Event, EventType, ExecutionStatus
from ._records import ExecutionRecord


class NotTextError(ValueError):
    """A field stored as text holds a lone surrogate, which UTF-8 text (so SQLite) cannot hold."""


STATUS_EVENT_TYPES = frozenset(
    {
        EventType.EXECUTION_STARTED,
        EventType.EXECUTION_RESUMED,
        EventType.EXECUTION_SUCCEEDED,
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
        EventType.EXECUTION_WAITING,
    }
)
"""The event types that change their execution's record."""

EXECUTION_FIELDS = [field.name for field in attrs.fields(ExecutionRecord)]
"""The fields of `ExecutionRecord`, in order: the columns of a stored execution row."""

_JSON_COLUMNS = [EXECUTION_FIELDS.index(name) for name in ("workflow", "inputs", "output", "error")]
_STATUS_COLUMN = EXECUTION_FIELDS.index("status")
_WORKFLOW_COLUMN = EXECUTION_FIELDS.index("workflow")
_OTHER_JSON_COLUMNS = [index for index in _JSON_COLUMNS if index != _WORKFLOW_COLUMN]

_unchanging_workflow: tuple[Any, str | None, str | None] = (None, None, None)
"""The workflow document the engine promised never to change, its JSON text and its digest."""


def remember_unchanging_workflow(document: Any) -> None:
    """Encode `document` once for every record that carries it; it must never change after this.

    A service starts one workflow again and again, and the engine records each start with the
    same redacted document (`_execution/_starting`): encoding a 1,000-step document again cost
    about 1 µs per step on every start. One document is remembered, the latest; a record that
    carries any other object (a caller's own, which it may change between two records) is
    encoded anew each time.
    """
    global _unchanging_workflow
    if _unchanging_workflow[0] is not document:
        _unchanging_workflow = (document, None, None)


def _workflow_json(workflow: Any) -> str | None:
    """`to_json(workflow)`, made once for the document `remember_unchanging_workflow` was given."""
    global _unchanging_workflow
    document, text, _ = _unchanging_workflow
    if workflow is not document or workflow is None:
        return to_json(workflow)
    if text is None:
        text = to_json(workflow)
        _unchanging_workflow = (document, text, None)
    return text


def document_digest(text: str) -> str:
    """The content address of a stored workflow document: the sha256 (hex) of its JSON text.

    The text is the journal's own encoding of the document (`to_json`: compact strict JSON, keys
    in the document's order), so the stored text always hashes to its digest. The digest of the
    remembered unchanging document's text is made once, like its text.
    """
    global _unchanging_workflow
    document, known, digest = _unchanging_workflow
    if text is known and digest is not None:
        return digest
    digest = hashlib.sha256(text.encode()).hexdigest()
    if text is known:
        _unchanging_workflow = (document, known, digest)
    return digest


def to_json(value: Any) -> str | None:
    """Encode strict JSON (no NaN) compactly, keeping None as None (SQL NULL)."""
    return None if value is None else encode_json(value)


def from_json(text: str | None) -> Any:
    """Decode JSON text, reading None (SQL NULL) as None."""
    return None if text is None else json.loads(text)


def encode_execution(record: ExecutionRecord) -> tuple[Any, ...]:
    """Turn a record into its stored row (the columns follow the record's fields).

    Raises:
        TypeError, ValueError: `workflow`, `inputs`, `output` or `error` is not JSON, or a text
            field holds a lone surrogate.
    """
    values = list(attrs.astuple(record, recurse=False))
    for index in _OTHER_JSON_COLUMNS:
        values[index] = to_json(values[index])
    values[_WORKFLOW_COLUMN] = _workflow_json(record.workflow)
    for name, value in zip(EXECUTION_FIELDS, values, strict=True):
        if isinstance(value, str) and has_lone_surrogate(value):
            raise NotTextError(f"its {name} {value!r} holds a lone surrogate, which is not text")
    values[_STATUS_COLUMN] = str(values[_STATUS_COLUMN])
    return tuple(values)


def decode_execution(row: Sequence[Any]) -> ExecutionRecord:
    """Turn a stored execution row back into a record (with freshly decoded JSON values)."""
    values = list(row)
    for index in _JSON_COLUMNS:
        values[index] = from_json(values[index])
    values[_STATUS_COLUMN] = ExecutionStatus(values[_STATUS_COLUMN])
    return ExecutionRecord(*values)


def encode_event(event: Event, encode: Callable[[Any], str] = encode_json) -> tuple[Any, ...]:
    """Turn an event into its stored row: the envelope's fields in order, `data` as JSON text.

    `encode` is `encode_json` or one made by `make_encoder`.

    Raises:
        TypeError, ValueError: `data` is not a JSON object JSON can encode, `elapsed` is not a
            number, or a text field holds a lone surrogate.
    """
    if not isinstance(event.data, dict):
        raise TypeError(f"data must be a JSON object, not {type(event.data).__name__}")
    # Empty data (an `attempt.started`, one event in three) needs no encoder.
    data = encode(event.data) if event.data else "{}"
    step_id = event.step_id
    try:
        plain = (
            event.type.isascii() and event.ts.isascii() and (step_id is None or step_id.isascii())
        )
    except AttributeError:  # not text at all: the stores refuse that themselves
        plain = False
    if not plain:
        # Rare, so the envelope's text is looked at closely only when it is not all ASCII.
        for name, text in (("type", event.type), ("step_id", step_id), ("ts", event.ts)):
            if isinstance(text, str) and has_lone_surrogate(text):
                raise NotTextError(f"its {name} {text!r} holds a lone surrogate, which is not text")
    return (
        event.execution_id,
        event.seq,
        event.ts,
        float(event.elapsed),
        str(event.type),
        event.step_id,
        event.attempt,
        data,
    )


def decode_event(row: Sequence[Any]) -> Event:
    """Turn a stored event row back into an event (with freshly decoded data)."""
    return Event(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]))


def execution_update(event: Event) -> tuple[Any, ...]:
    """Return how a status event changes its execution's row (the rules `replay` follows).

    The tuple is `(status, started_at, finished_at, output, error, execution_id)`: `started_at` is
    only set when the row has none yet (the first start is kept); the other values replace the
    row's, with `output` and `error` as JSON text or None.
    """
    if event.type in (EventType.EXECUTION_STARTED, EventType.EXECUTION_RESUMED):
        return ("running", event.ts, None, None, None, event.execution_id)
    if event.type == EventType.EXECUTION_SUCCEEDED:
        output = to_json(event.data.get("output"))
        return ("succeeded", None, event.ts, output, None, event.execution_id)
    if event.type == EventType.EXECUTION_WAITING:
        # Not finished: no `finished_at`, and nothing to report until it carries on.
        return ("waiting", None, None, None, None, event.execution_id)
    status = event.type.removeprefix("execution.")
    error = to_json(event.data.get("error"))
    return (status, None, event.ts, None, error, event.execution_id)


def describe(event: Event) -> str:
    """Name an event in an error message."""
    return f"event seq {event.seq} ({event.type}) of execution {event.execution_id!r}"


def refusal(event: Event, last: int | None) -> JournalError:
    """Say why an event's seq does not follow its execution's last seq (None: no execution)."""
    if last is None:
        return JournalError(f"{describe(event)}: no such execution (record it first)")
    if event.seq <= last:
        return JournalError(
            f"{describe(event)}: seq {event.seq} is already written (last seq {last})"
        )
    return JournalError(f"{describe(event)}: seq must be gap-free, expected {last + 1}")


def not_json(event: Event, error: Exception) -> JournalError:
    """Say that an event's data (or envelope) cannot be stored as JSON."""
    if isinstance(error, NotTextError):
        return JournalError(f"{describe(event)}: cannot be stored: {error}")
    return JournalError(f"{describe(event)}: data is not JSON: {error}")
