"""The SQL of the resilience state shared through a PostgreSQL journal's database.

Three tables of the journal schema (`_postgres_schema`), each keyed like the process-local
objects (a policy's `key`, else the agent id; `llm-provider:NAME` for a provider):

- `breakers`: one row per breaker that ever opened. `open` rows carry `open_until` (database
  time); `claim_probe` turns an expired one `half_open` for one holder with a single conditional
  UPDATE, so exactly one process wins the probe; `closed` rows are kept for operators.
- `limit_slots`: one row per global bulkhead slot taken, with its holder and lease expiry. A
  take is one transaction under a per-key advisory lock: expired slots go, and a row is added
  only while fewer than the limit remain, so two processes never both take the last slot.
- `rate_buckets`: one token bucket per key. A take locks the row, lets the caller's arithmetic
  decide from the tokens and the database time elapsed, then writes the new count and moves
  `updated_at` on by exactly the time it credited: concurrent takes never credit time twice.

`PostgresResilienceStore` runs them on its own connection, on worker threads under its own
`trio.CapacityLimiter(1)` (never trio's default limiter, which agents share). A broken connection
is replaced on the next call, and no statement runs longer than `STATEMENT_TIMEOUT`, so a hung
database fails a call instead of holding it (and the runtime's shutdown) forever. It implements
the `_resilience` stage's `SharedStateStore` (structurally: the journal never imports the
resilience stage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import trio

from .._errors import JournalError
from ._postgres_schema import connect, import_psycopg

if TYPE_CHECKING:
    import psycopg

__all__ = ["BreakerRecord", "PostgresResilienceStore"]

T = TypeVar("T")

#: The name of the store's connection in `pg_stat_activity`.
PURPOSE = "orchestr8 resilience"

STATEMENT_TIMEOUT: Final = 5.0
"""Seconds one statement may take (a lock wait included): a hung database fails the call."""


@attrs.frozen
class BreakerRecord:
    """A breaker row that is not closed: `remaining` seconds until its `open_until`."""

    key: str
    state: str
    holder: str | None
    remaining: float


class PostgresResilienceStore:
    """The shared resilience state's SQL on one connection of its own; see the module docstring."""

    def __init__(self, url: str) -> None:
        """Use the database at `url` (connected on first use: `open` connects at once).

        Raises:
            JournalError: psycopg is not installed.
        """
        self.errors: tuple[type[BaseException], ...] = (import_psycopg().Error, JournalError)
        """What a call may raise when the database cannot be used."""
        self._url = url
        self._connection: psycopg.Connection[Any] | None = None
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    async def open(cls, url: str) -> PostgresResilienceStore:
        """A store connected to `url`.

        Raises:
            JournalError: the URL is malformed, or the database cannot be reached.
        """
        store = cls(url)
        await store._run(lambda connection: None)
        return store

    async def aclose(self) -> None:
        """Close the connection (a later call opens a new one)."""
        await self._run_without_connecting(self._close)

    async def publish_open(self, key: str, holder: str, seconds: float, reason: str) -> None:
        """Record that `holder` opened breaker `key` until `seconds` from now (database time)."""

        def write(connection: psycopg.Connection[Any]) -> None:
            connection.execute(
                "INSERT INTO breakers (key, state, opened_by, reason, open_until, updated_at)"
                " VALUES (%s, 'open', %s, %s, now() + make_interval(secs => %s), now())"
                " ON CONFLICT (key) DO UPDATE SET state = 'open',"
                " opened_by = EXCLUDED.opened_by, reason = EXCLUDED.reason,"
                " open_until = EXCLUDED.open_until, updated_at = now()",
                (key, holder, reason, seconds),
            )

        await self._run(write)

    async def publish_closed(self, key: str, holder: str, reason: str) -> None:
        """Record that `holder` closed breaker `key` (a breaker never opened has no row)."""

        def write(connection: psycopg.Connection[Any]) -> None:
            connection.execute(
                "UPDATE breakers SET state = 'closed', opened_by = %s, reason = %s,"
                " open_until = NULL, updated_at = now() WHERE key = %s AND state <> 'closed'",
                (holder, reason, key),
            )

        await self._run(write)

    async def breakers(self) -> Sequence[BreakerRecord]:
        """Every breaker that is not closed, with the seconds left until its `open_until`."""

        def read(connection: psycopg.Connection[Any]) -> list[BreakerRecord]:
            rows = connection.execute(
                "SELECT key, state, opened_by,"
                " EXTRACT(EPOCH FROM open_until - now())::float8"
                " FROM breakers WHERE state <> 'closed'"
            ).fetchall()
            return [
                BreakerRecord(key, state, holder, float(left)) for key, state, holder, left in rows
            ]

        return await self._run(read)

    async def claim_probe(self, key: str, holder: str, lease: float) -> bool:
        """Make breaker `key` half open for `holder` for `lease` s, if its time is over.

        True only for the one caller whose UPDATE found the row open (or half open) past its
        `open_until`: every other process sees it half open under another holder.
        """

        def claim(connection: psycopg.Connection[Any]) -> bool:
            row = connection.execute(
                "UPDATE breakers SET state = 'half_open', opened_by = %s,"
                " open_until = now() + make_interval(secs => %s), updated_at = now()"
                " WHERE key = %s AND state <> 'closed' AND open_until <= now() RETURNING key",
                (holder, lease, key),
            ).fetchone()
            return row is not None

        return await self._run(claim)

    async def acquire_slot(self, key: str, limit: int, holder: str, lease: float) -> int | None:
        """Take one of `limit` slots of `key` for `lease` s; its id, or None when all are taken."""

        def take(connection: psycopg.Connection[Any]) -> int | None:
            with connection.transaction():
                connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    ("orchestr8 limit_slots " + key,),
                )
                connection.execute(
                    "DELETE FROM limit_slots WHERE key = %s AND expires_at <= clock_timestamp()",
                    (key,),
                )
                row = connection.execute(
                    "INSERT INTO limit_slots (key, holder, expires_at)"
                    " SELECT %s, %s, clock_timestamp() + make_interval(secs => %s)"
                    " WHERE (SELECT count(*) FROM limit_slots WHERE key = %s) < %s"
                    " RETURNING slot",
                    (key, holder, lease, key, limit),
                ).fetchone()
            return None if row is None else int(row[0])

        return await self._run(take)

    async def release_slots(self, slots: Sequence[int]) -> None:
        """Give back slots taken by `acquire_slot` (ones already expired and gone are ignored)."""

        def release(connection: psycopg.Connection[Any]) -> None:
            connection.execute("DELETE FROM limit_slots WHERE slot = ANY(%s)", (list(slots),))

        await self._run(release)

    async def renew_slots(self, slots: Sequence[int], lease: float) -> None:
        """Extend the given slots' leases to `lease` s from now."""

        def renew(connection: psycopg.Connection[Any]) -> None:
            connection.execute(
                "UPDATE limit_slots SET expires_at = clock_timestamp() + make_interval(secs => %s)"
                " WHERE slot = ANY(%s)",
                (lease, list(slots)),
            )

        await self._run(renew)

    async def take_token(
        self, key: str, burst: int, decide: Callable[[float, float], tuple[float, T]]
    ) -> T:
        """Take from bucket `key` (created holding `burst`) as `decide` says, atomically.

        `decide(tokens, elapsed)` gets the stored tokens and the database seconds since the
        bucket was last written, and returns the tokens to store and the caller's result.
        """

        def take(connection: psycopg.Connection[Any]) -> T:
            with connection.transaction():
                row = _locked_bucket(connection, key)
                if row is None:
                    connection.execute(
                        "INSERT INTO rate_buckets (key, tokens, updated_at)"
                        " VALUES (%s, %s, clock_timestamp()) ON CONFLICT (key) DO NOTHING",
                        (key, float(burst)),
                    )
                    row = _locked_bucket(connection, key)
                    assert row is not None
                tokens, elapsed = float(row[0]), max(0.0, float(row[1]))
                stored, result = decide(tokens, elapsed)
                connection.execute(
                    "UPDATE rate_buckets SET tokens = %s,"
                    " updated_at = updated_at + make_interval(secs => %s) WHERE key = %s",
                    (stored, elapsed, key),
                )
            return result

        return await self._run(take)

    async def _run(self, operation: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `operation` on the connection (opened or replaced as needed), on its thread."""
        return await trio.to_thread.run_sync(self._call, operation, limiter=self._limiter)

    async def _run_without_connecting(self, operation: Callable[[], None]) -> None:
        await trio.to_thread.run_sync(operation, limiter=self._limiter)

    def _call(self, operation: Callable[[psycopg.Connection[Any]], T]) -> T:
        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            if connection is not None:
                connection.close()
            connection = self._connection = connect(self._url, purpose=PURPOSE)
            connection.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT * 1000)}")
        try:
            return operation(connection)
        except BaseException:
            if connection.broken:
                self._close()
            raise

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _locked_bucket(connection: psycopg.Connection[Any], key: str) -> tuple[Any, ...] | None:
    """The bucket's tokens and the database seconds since it was written, its row locked."""
    row: tuple[Any, ...] | None = connection.execute(
        "SELECT tokens, EXTRACT(EPOCH FROM clock_timestamp() - updated_at)::float8"
        " FROM rate_buckets WHERE key = %s FOR UPDATE",
        (key,),
    ).fetchone()
    return row
