"""`MemoryJournal`: the journal without a file, for tests and embedding programs.

It runs the very store `SQLiteJournal` uses, on an in-memory SQLite database and inline on the trio
thread (no worker threads), so every observable behaviour (seq checks, status rows, JSON round
trips, paging order, group commit) is the same by construction. Its contents vanish when it closes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

from ._events import Event
from ._journal import BatchOutcome, CreateRequest, Journal
from ._journal_sqlite import Store

_Result = TypeVar("_Result")


class MemoryJournal(Journal):
    """The journal in memory: the SQLite store on an in-memory database, run on the trio thread."""

    def __init__(self, *, queue_size: int = 1024, close_timeout: float = 5.0) -> None:
        super().__init__(queue_size=queue_size, close_timeout=close_timeout)
        self._store = Store.open_memory()

    @property
    def path(self) -> None:
        """Always None: a memory journal has no file."""
        return None

    async def _write(self, items: list[Event | CreateRequest]) -> BatchOutcome:
        """Write one batch inline; an in-memory database never waits on a disk."""
        await trio.lowlevel.checkpoint()
        return self._store.write_batch(items)

    async def _read(self, query: Callable[[Store], _Result]) -> _Result:
        """Run a query inline; batches are written inline too, so it sees whole batches only."""
        await trio.lowlevel.checkpoint()
        return query(self._store)

    async def _close_storage(self) -> None:
        """Drop the in-memory database."""
        self._store.close()
        await trio.lowlevel.checkpoint()
