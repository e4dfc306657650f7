"""The control requests of a PostgreSQL journal: the `requests` table on a connection of its own.

The same rules as the SQLite table (`_requests`): a request is its own small transaction, never
part of a batch of events; only the first answer to a gate is recorded (the unique index
`one_answer_per_gate`), a second is refused with `GateAlreadyAnsweredError` naming the first; a
settled request stays as it was. Ids come from an identity column, so they grow in commit order
per session (as SQLite's AUTOINCREMENT does), and pending requests are read in id order.

A lost connection is replaced once per call: a read or a settle is simply asked again; a submit
is asked again only when its COMMIT was certainly not sent, so a request is never recorded twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any, Final, TypeVar

import psycopg
import psycopg.errors

from .._errors import ExecutionNotFoundError, JournalError
from .._json import encode_json
from ._events import utc_timestamp
from ._postgres_schema import connect
from ._postgres_store import lost
from ._requests import ControlRequest, RequestKind, RequestOutcome, already_answered

__all__ = ["PostgresRequests"]

_Result = TypeVar("_Result")

_COLUMNS: Final = (
    "request_id, execution_id, kind, target, body, created_at, outcome, detail, settled_at"
)
_NUL: Final = "\x00"


def _decode(row: tuple[Any, ...]) -> ControlRequest:
    """A stored `requests` row as a `ControlRequest`."""
    return ControlRequest(row[0], row[1], RequestKind(row[2]), row[3], json.loads(row[4]), *row[5:])


class _NotSent(Exception):
    """The connection broke before COMMIT: the call can be asked again on a fresh connection."""


class PostgresRequests:
    """The `requests` table of a PostgreSQL journal, on its own connection (one thread at once)."""

    def __init__(self, url: str) -> None:
        """Connect to the journal database at `url` (the journal checked its schema already)."""
        self._url = url
        self._connection = connect(url, purpose="orchestr8 control", autocommit=False)

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def _run(self, call: Callable[[psycopg.Connection[Any]], _Result], *, again: bool) -> _Result:
        """Run `call`; if the connection was lost, reconnect and, when `again`, ask once more.

        Raises:
            JournalError: the connection was lost and the call cannot be asked again.
        """
        try:
            return call(self._connection)
        except _NotSent as error:
            cause = error.__cause__
        except psycopg.Error as error:
            if not lost(self._connection, error):
                self._rollback()
                raise
            if not again:
                self._reconnect()
                raise JournalError(
                    f"lost the connection to the journal database: {error}; whether the request "
                    "was recorded is unknown (list the execution's requests to see)"
                ) from error
            cause = error
        self._reconnect()
        try:
            return call(self._connection)
        except _NotSent as error:
            raise JournalError(f"lost the connection to the journal database: {cause}") from error

    def _rollback(self) -> None:
        """End a failed transaction, so the connection takes the next call."""
        if not self._connection.closed:
            self._connection.rollback()

    def _reconnect(self) -> None:
        """Replace a lost connection by a fresh one."""
        self._connection.close()
        self._connection = connect(self._url, purpose="orchestr8 control", autocommit=False)

    def submit(
        self, execution_id: str, kind: RequestKind, body: dict[str, Any], target: str | None
    ) -> ControlRequest:
        """Record a request in its own transaction; see `Journal.submit_request`."""
        text = encode_json(body)
        if _NUL in execution_id:
            raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
        if target is not None and _NUL in target:
            raise ValueError(f"a gate id cannot hold a NUL character: {target!r}")

        def submit(connection: psycopg.Connection[Any]) -> ControlRequest:
            try:
                exists = connection.execute(
                    "SELECT 1 FROM executions WHERE execution_id = %s", (execution_id,)
                ).fetchone()
                if exists is None:
                    raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
                try:
                    with connection.transaction():  # a savepoint: the refusal keeps the rest
                        row = connection.execute(
                            "INSERT INTO requests (execution_id, kind, target, body, created_at)"
                            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                            (execution_id, str(kind), target, text, utc_timestamp()),
                        ).fetchone()
                except psycopg.errors.UniqueViolation:
                    found = connection.execute(
                        f"SELECT {_COLUMNS} FROM requests WHERE execution_id = %s AND target = %s"
                        " AND kind = 'answer' AND (outcome IS NULL OR outcome = 'applied')",
                        (execution_id, target),
                    ).fetchone()
                    assert found is not None
                    raise already_answered(_decode(found)) from None
            except psycopg.Error as error:
                if lost(connection, error):
                    raise _NotSent() from error
                raise
            except BaseException:
                self._rollback()
                raise
            assert row is not None
            connection.commit()
            return _decode(row)

        return self._run(submit, again=False)

    def pending(self, execution_ids: Collection[str], after: int) -> list[ControlRequest]:
        """The unsettled requests of these executions with id > `after`, in id order."""
        wanted = [execution_id for execution_id in execution_ids if _NUL not in execution_id]

        def pending(connection: psycopg.Connection[Any]) -> list[ControlRequest]:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE outcome IS NULL AND request_id > %s"
                " AND execution_id = ANY(%s) ORDER BY request_id",
                (after, wanted),
            ).fetchall()
            connection.rollback()
            return [_decode(row) for row in rows]

        return self._run(pending, again=True)

    def of_execution(self, execution_id: str) -> list[ControlRequest]:
        """Every request of the execution, in id order."""
        if _NUL in execution_id:
            return []

        def of_execution(connection: psycopg.Connection[Any]) -> list[ControlRequest]:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE execution_id = %s ORDER BY request_id",
                (execution_id,),
            ).fetchall()
            connection.rollback()
            return [_decode(row) for row in rows]

        return self._run(of_execution, again=True)

    def settle(self, request_id: int, outcome: RequestOutcome, detail: str | None) -> None:
        """Settle a pending request; a settled one stays as it was."""
        if detail is not None and _NUL in detail:
            detail = detail.replace(_NUL, "\\x00")

        def settle(connection: psycopg.Connection[Any]) -> None:
            connection.execute(
                "UPDATE requests SET outcome = %s, detail = %s, settled_at = %s"
                " WHERE request_id = %s AND outcome IS NULL",
                (str(outcome), detail, utc_timestamp(), request_id),
            )
            connection.commit()

        self._run(settle, again=True)
