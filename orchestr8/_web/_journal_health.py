"""Whether a shared journal's database answers, for `/health`, asked at most once per second.

A server on a PostgreSQL journal may write nothing for a long time (workers run the executions),
so a database that went away shows in no batch: `/health` asks the database itself, a trivial
query on the journal's reader with a short timeout. The answer is kept for `CHECK_EVERY`
seconds, so a load balancer polling `/health` often costs the database one query a second.
"""

from __future__ import annotations

import math
from typing import Final

import attrs
import trio

from .._journal._journal import Journal

__all__ = ["CHECK_EVERY", "CHECK_WITHIN", "JournalHealth"]

CHECK_EVERY: Final = 1.0
"""Seconds an answer of the database is reused by later `/health` requests."""

CHECK_WITHIN: Final = 2.0
"""Seconds the database has to answer before `/health` calls it unreachable."""


@attrs.define(eq=False)
class JournalHealth:
    """The last answer of the journal's database to `/health`'s query, and when it came."""

    checked_at: float = -math.inf
    trouble: str | None = None
    _lock: trio.Lock = attrs.Factory(trio.Lock)

    async def unreachable(self, journal: Journal) -> str | None:
        """Why the journal's database does not answer, or None; asked at most once a second."""
        async with self._lock:
            if trio.current_time() - self.checked_at >= CHECK_EVERY:
                self.trouble = await journal.unreachable(CHECK_WITHIN)
                self.checked_at = trio.current_time()
            return self.trouble
