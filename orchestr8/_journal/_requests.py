"""Control requests: what other processes ask of an execution's owner, kept in the journal.

An execution runs in one process (the one holding its lock, `_execution/_lock`), but people steer
it from anywhere: `orchestr8 cancel` in another terminal, an answer to an approval gate over
REST. Such a request is a row of the journal's `requests` table, written in a small transaction
of its own (never through the event writer's queue, which belongs to the process's own runs), so
any process on the journal can leave one and the owner finds it by polling. The owner settles
each request it takes (`applied` or `refused`, with a detail), so a request is acted on once.

An answer is addressed by execution and gate id, and only the first answer for a gate is ever
recorded (a unique index): a second one is refused at once with `GateAlreadyAnsweredError`,
whoever sent it and in whatever order the two arrived. An answer the owner refused (it came after
the gate timed out, or no longer fits) does not count: the gate may be answered again.

The stores below are the SQLite and the memory forms of the same table; `Journal` offers them as
`submit_request`, `pending_requests`, `requests` and `settle_request`.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Collection
from pathlib import Path
from typing import Any, Final, Protocol

import attrs

from .._errors import ExecutionNotFoundError, GateAlreadyAnsweredError
from .._json import encode_json
from ._events import utc_timestamp


class RequestKind(enum.StrEnum):
    """What a control request asks of an execution's owner."""

    CANCEL = "cancel"
    ANSWER = "answer"


class RequestOutcome(enum.StrEnum):
    """How the owner settled a request."""

    APPLIED = "applied"
    REFUSED = "refused"


@attrs.frozen
class ControlRequest:
    """One request to an execution's owner, as the journal holds it; `outcome` None = pending.

    `target` is the gate id of an answer (None for a cancel); `body` is the request's JSON object
    (cancel: `reason`, `force`, `by`; answer: `approve`, `input`, `reason`, `by`).
    """

    request_id: int
    execution_id: str
    kind: RequestKind
    target: str | None
    body: dict[str, Any]
    created_at: str
    outcome: str | None = None
    detail: str | None = None
    settled_at: str | None = None

    @property
    def pending(self) -> bool:
        """Whether no owner has settled it yet."""
        return self.outcome is None

    def to_json(self) -> dict[str, Any]:
        """The request as a JSON object, for views."""
        return {
            "request_id": self.request_id,
            "execution_id": self.execution_id,
            "kind": str(self.kind),
            "target": self.target,
            "body": self.body,
            "created_at": self.created_at,
            "outcome": self.outcome,
            "detail": self.detail,
            "settled_at": self.settled_at,
        }


_COLUMNS: Final = (
    "request_id, execution_id, kind, target, body, created_at, outcome, detail, settled_at"
)


def _decode(row: tuple[Any, ...]) -> ControlRequest:
    """A stored `requests` row as a `ControlRequest`."""
    return ControlRequest(row[0], row[1], RequestKind(row[2]), row[3], json.loads(row[4]), *row[5:])


def already_answered(existing: ControlRequest) -> GateAlreadyAnsweredError:
    """The error for a second answer to a gate: who answered first, and when."""
    by = existing.body.get("by")
    who = f" by {by}" if isinstance(by, str) and by else ""
    return GateAlreadyAnsweredError(
        f"gate {existing.target!r} of execution {existing.execution_id} was answered already"
        f"{who} at {existing.created_at} (request {existing.request_id})",
        existing=existing,
    )


class RequestStore(Protocol):
    """Where a journal keeps its control requests; every method is synchronous and short."""

    def submit(
        self, execution_id: str, kind: RequestKind, body: dict[str, Any], target: str | None
    ) -> ControlRequest:
        """Record a request; see `Journal.submit_request` for the errors."""
        ...

    def pending(self, execution_ids: Collection[str], after: int) -> list[ControlRequest]:
        """The unsettled requests of these executions with id > `after`, in id order."""
        ...

    def of_execution(self, execution_id: str) -> list[ControlRequest]:
        """Every request of the execution, in id order."""
        ...

    def settle(self, request_id: int, outcome: RequestOutcome, detail: str | None) -> None:
        """Settle a pending request; a settled one stays as it was."""
        ...


class SQLiteRequests:
    """The `requests` table of a SQLite journal, on a connection of its own (one thread at once)."""

    def __init__(self, path: Path) -> None:
        """Open a connection to the journal file at `path` (migrated already by the journal)."""
        from ._sqlite_schema import connect

        self._connection = connect(path, [])

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def submit(
        self, execution_id: str, kind: RequestKind, body: dict[str, Any], target: str | None
    ) -> ControlRequest:
        """Record a request in its own transaction; see `Journal.submit_request`."""
        connection = self._connection
        text = encode_json(body)
        connection.execute("BEGIN IMMEDIATE")
        try:
            exists = connection.execute(
                "SELECT 1 FROM executions WHERE execution_id = ?", (execution_id,)
            ).fetchone()
            if exists is None:
                raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
            try:
                cursor = connection.execute(
                    "INSERT INTO requests (execution_id, kind, target, body, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (execution_id, str(kind), target, text, utc_timestamp()),
                )
            except sqlite3.IntegrityError:
                row = connection.execute(
                    f"SELECT {_COLUMNS} FROM requests WHERE execution_id = ? AND target = ?"
                    " AND kind = 'answer' AND (outcome IS NULL OR outcome = 'applied')",
                    (execution_id, target),
                ).fetchone()
                raise already_answered(_decode(row)) from None
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE request_id = ?", (cursor.lastrowid,)
            ).fetchone()
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return _decode(row)

    def pending(self, execution_ids: Collection[str], after: int) -> list[ControlRequest]:
        """The unsettled requests of these executions with id > `after`, in id order."""
        wanted = list(execution_ids)
        found: list[ControlRequest] = []
        # SQLite limits the parameters of one statement: ask in chunks.
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self._connection.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE outcome IS NULL AND request_id > ?"
                f" AND execution_id IN ({marks})",
                (after, *chunk),
            ).fetchall()
            found.extend(_decode(row) for row in rows)
        return sorted(found, key=lambda request: request.request_id)

    def of_execution(self, execution_id: str) -> list[ControlRequest]:
        """Every request of the execution, in id order."""
        rows = self._connection.execute(
            f"SELECT {_COLUMNS} FROM requests WHERE execution_id = ? ORDER BY request_id",
            (execution_id,),
        ).fetchall()
        return [_decode(row) for row in rows]

    def settle(self, request_id: int, outcome: RequestOutcome, detail: str | None) -> None:
        """Settle a pending request; a settled one stays as it was."""
        self._connection.execute(
            "UPDATE requests SET outcome = ?, detail = ?, settled_at = ?"
            " WHERE request_id = ? AND outcome IS NULL",
            (str(outcome), detail, utc_timestamp(), request_id),
        )


@attrs.define
class MemoryRequests:
    """The requests of a memory journal: the same rules as the SQLite table, in a list."""

    has_execution: Any
    """Called with an execution id: whether the journal holds that execution."""
    rows: list[ControlRequest] = attrs.Factory(list)

    def close(self) -> None:
        """Drop every request."""
        self.rows.clear()

    def submit(
        self, execution_id: str, kind: RequestKind, body: dict[str, Any], target: str | None
    ) -> ControlRequest:
        """Record a request; see `Journal.submit_request`."""
        if not self.has_execution(execution_id):
            raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
        if kind is RequestKind.ANSWER:
            for existing in self.rows:
                if (
                    existing.kind is RequestKind.ANSWER
                    and existing.execution_id == execution_id
                    and existing.target == target
                    and existing.outcome in (None, RequestOutcome.APPLIED)
                ):
                    raise already_answered(existing)
        # A copy through JSON, as the SQLite table stores it: the caller may change its dict.
        request = ControlRequest(
            len(self.rows) + 1,
            execution_id,
            kind,
            target,
            json.loads(encode_json(body)),
            utc_timestamp(),
        )
        self.rows.append(request)
        return request

    def pending(self, execution_ids: Collection[str], after: int) -> list[ControlRequest]:
        """The unsettled requests of these executions with id > `after`, in id order."""
        wanted = set(execution_ids)
        return [
            request
            for request in self.rows[max(after, 0) :]
            if request.outcome is None and request.execution_id in wanted
        ]

    def of_execution(self, execution_id: str) -> list[ControlRequest]:
        """Every request of the execution, in id order."""
        return [request for request in self.rows if request.execution_id == execution_id]

    def settle(self, request_id: int, outcome: RequestOutcome, detail: str | None) -> None:
        """Settle a pending request; a settled one stays as it was."""
        index = request_id - 1
        if 0 <= index < len(self.rows) and self.rows[index].outcome is None:
            self.rows[index] = attrs.evolve(
                self.rows[index],
                outcome=str(outcome),
                detail=detail,
                settled_at=utc_timestamp(),
            )
