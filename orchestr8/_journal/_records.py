"""What the journal stores and hands out: execution records, pages, statistics, write requests.

Plain attrs classes shared by the journal's interface (`_journal`), its two stores and its readers,
plus the opaque page cursors. The text rule every stored string obeys (no lone surrogates) is
strict JSON's, in `_json`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from .._errors import JournalError
from ._events import Event, ExecutionStatus, utc_timestamp


@attrs.frozen
class ExecutionRecord:
    """One execution as the journal holds it: what was run, with which inputs, and how it ended.

    `workflow` is the workflow JSON document, kept so `resume` can rebuild it. `status`,
    `started_at`, `finished_at`, `output` and `error` follow the execution's events. A child
    execution (a sub-workflow step's) names its parent and the step in `parent_id`, `parent_step`;
    a fork names its source and the source's last seq at the fork in `forked_from`, `fork_seq`.
    """

    execution_id: str
    workflow_name: str
    workflow: dict[str, Any]
    inputs: dict[str, Any] = attrs.field(factory=dict)
    status: ExecutionStatus = ExecutionStatus.PENDING
    created_at: str = attrs.field(factory=utc_timestamp)
    correlation_id: str | None = None
    idempotency_key: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    output: Any = None
    error: Any = None
    parent_id: str | None = None
    """The execution whose sub-workflow step ran this one (a child execution), else None."""
    parent_step: str | None = None
    """The id of that step in the parent, else None."""
    forked_from: str | None = None
    """The execution this one was forked from (`orchestr8 fork`), else None."""
    fork_seq: int | None = None
    """The last seq of that execution when it was forked, else None."""


@attrs.frozen
class ExecutionPage:
    """One page of executions, newest first; pass `next_cursor` as `before` for the next page."""

    items: tuple[ExecutionRecord, ...]
    next_cursor: str | None


@attrs.frozen
class JournalStatistics:
    """Counters of one open journal, so tests and benchmarks can see group commit at work.

    `failure` says why a failed journal failed; `writing_for` is how long (seconds on the trio
    clock) the batch being written has been on its way to disk, 0 when the writer is idle.
    """

    events_written: int
    batches_committed: int
    items_queued: int
    queue_size: int
    failed: bool
    failure: str | None = None
    writing_for: float = 0.0


StepHasher = Callable[[Any], Mapping[str, str]]
"""Given a workflow document, the hash of each step's spec by step id (`step_spec_hashes`).

The journal calls it only when it stores a document it did not hold yet, and keeps the hashes
beside it (`workflow_documents`), so a fork can tell which steps a changed document changed.
"""


@attrs.define(eq=False)
class CreateRequest:
    """A queued `create_execution`; the writer fills in `result` or `error`, then sets `done`.

    `existed` is True when nothing was written because the idempotency key was recorded already
    (then `result` is the execution recorded under it). `first_event` (seq 1, usually
    `execution.started`) is written in the same transaction as the record, or not at all.
    `step_hashes` makes the step hashes of a workflow document the journal stores for the first
    time (None: none are kept, `{}`). `queue` also queues a newly recorded execution for the
    workers in the same transaction (only a PostgreSQL store queues; the others refuse it with
    `QUEUE_NEEDS_POSTGRES`), so no crash can leave it recorded but never run.
    """

    record: ExecutionRecord
    first_event: Event | None = None
    step_hashes: StepHasher | None = None
    queue: bool = False
    done: trio.Event = attrs.Factory(trio.Event)
    result: ExecutionRecord | None = None
    error: JournalError | None = None
    existed: bool = False


QUEUE_NEEDS_POSTGRES = (
    "only a PostgreSQL journal queues executions for workers: submit to a journal whose location "
    "is a postgresql:// URL"
)
"""A SQLite or memory store's refusal of a `CreateRequest` that asks to queue."""


@attrs.frozen
class KeyHeld:
    """A store's answer to a create whose idempotency key an execution holds already: that one."""

    record: ExecutionRecord


@attrs.define(eq=False)
class FlushMarker:
    """A queued `flush`; the writer sets `done` once everything queued before it is committed."""

    done: trio.Event = attrs.Factory(trio.Event)


WorkItem = Event | CreateRequest | FlushMarker
"""What travels on the writer's queue, in append order."""


@attrs.define
class BatchOutcome:
    """What writing one batch did: events written, transactions committed, creates, failure."""

    events_written: int = 0
    committed: int = 0
    created: list[tuple[CreateRequest, ExecutionRecord | KeyHeld | JournalError]] = attrs.Factory(
        list
    )
    failure: JournalError | None = None


def encode_cursor(created_at: str, execution_id: str) -> str:
    """Pack a page position into an opaque, URL-safe cursor."""
    packed = json.dumps([created_at, execution_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Unpack a cursor made by `encode_cursor`, refusing anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, execution_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise ValueError(f"not a cursor from a previous page: {cursor!r}") from None
    if not isinstance(created_at, str) or not isinstance(execution_id, str):
        raise ValueError(f"not a cursor from a previous page: {cursor!r}")
    return created_at, execution_id
