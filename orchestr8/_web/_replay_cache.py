"""The few executions the dashboard read last, replayed once for all the panels that ask.

Opening an execution page asks three routes at once — the graph, the timeline and the journal —
and the graph and the timeline each read every event and replay them: for a 10,000-step run that
is 40,000 events read and folded twice, one after the other on the server's one thread, before
the page is whole. `ReplayCache` keeps the events and the replayed state of the last few
executions read, keyed on the execution's last seq: the journal only ever appends, so the same
last seq means the same events, and a newer one (a running or resumed execution) reads them
again. Requests for the same execution that arrive together (the panels' first reads) wait for
one another, so the events are read and replayed once, not once each. The last seq is asked of
the journal on every read, so a pruned execution is not served from the cache: the journal says
it is gone (`ExecutionNotFoundError`, a 404) as it would have. Bounded by entries and by events
held, so a huge run does not keep memory it no longer uses.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

import attrs
import trio

from .._journal._events import Event
from .._journal._journal import Journal
from .._journal._replay import ExecutionState, replay

__all__ = ["REPLAY_CACHE_ENTRIES", "REPLAY_CACHE_EVENTS", "ReplayCache", "Replayed"]

REPLAY_CACHE_ENTRIES: Final = 4
"""How many executions the cache keeps at most."""
REPLAY_CACHE_EVENTS: Final = 200_000
"""How many events the cache keeps at most, over all its executions (the newest always stays)."""


@attrs.frozen
class Replayed:
    """One execution's events (in seq order) and the state they replay to, read at `last_seq`."""

    last_seq: int
    events: Sequence[Event]
    state: ExecutionState


class ReplayCache:
    """The events and replayed state of the executions read last, reused while unchanged."""

    def __init__(
        self,
        journal: Callable[[], Journal],
        *,
        entries: int = REPLAY_CACHE_ENTRIES,
        events: int = REPLAY_CACHE_EVENTS,
    ) -> None:
        """Cache reads of the journal `journal()` gives, at most `entries` runs and `events` events.

        The journal is asked for at each read, not here: the app's routes are built before a
        runtime need exist (the OpenAPI check builds the app over none).
        """
        self.journal = journal
        self.entries = entries
        self.events = events
        self._cached: OrderedDict[str, Replayed] = OrderedDict()
        self._locks: dict[str, trio.Lock] = {}
        self.hits = 0
        self.misses = 0

    async def read(self, execution_id: str) -> Replayed:
        """The execution's events and replayed state, from the cache if no event came since.

        Raises:
            ExecutionNotFoundError: no execution has that id (never recorded, or pruned).
        """
        lock = self._locks.setdefault(execution_id, trio.Lock())
        try:
            async with lock:
                return await self._read(execution_id)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(execution_id, None)

    async def _read(self, execution_id: str) -> Replayed:
        """`read` without the lock: the cached entry if current, else the journal replayed."""
        journal = self.journal()
        last_seq = await journal.last_seq(execution_id)
        cached = self._cached.get(execution_id)
        if cached is not None and cached.last_seq == last_seq:
            self.hits += 1
            self._cached.move_to_end(execution_id)
            return cached
        self.misses += 1
        events = tuple(await journal.events(execution_id))
        replayed = Replayed(events[-1].seq if events else 0, events, replay(events))
        self._keep(execution_id, replayed)
        return replayed

    def _keep(self, execution_id: str, replayed: Replayed) -> None:
        """Put `replayed` first, then drop the least recently read until within the bounds."""
        self._cached[execution_id] = replayed
        self._cached.move_to_end(execution_id)
        held = sum(len(entry.events) for entry in self._cached.values())
        while len(self._cached) > 1 and (len(self._cached) > self.entries or held > self.events):
            _, dropped = self._cached.popitem(last=False)
            held -= len(dropped.events)
