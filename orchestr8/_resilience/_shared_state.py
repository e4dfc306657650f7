"""Resilience state shared by every process on one database: breakers, global slots and tokens.

With a PostgreSQL journal, the processes (workers, servers) that run executions share three kinds
of state through the database (docs/resilience.md, "Shared across processes"):

- **Circuit breakers.** Failures are counted per process. When a process's breaker opens it
  publishes how long the breaker stays open (`breaker_opened`); every process's breaker of that
  key then rejects calls until then. After that, one process probes: the first whose call asks
  (`want_probe`) wins the half-open token with one conditional UPDATE, the others keep rejecting
  until it settles. Its probes' success publishes `breaker_closed`; a probe failure publishes a
  new opening. What every process reads is a snapshot (`open_breakers`) refreshed by a
  background task at most every `SHARED_STATE_TTL` seconds and changed at once by the process's
  own transitions: a breaker's admission never waits on the database.
- **Global bulkhead slots** (`scope: "global"`): leased rows, at most `limit` per key; a
  process renews the slots it holds with every refresh, so a killed holder's slots expire after
  `SLOT_LEASE` seconds and the others proceed.
- **Global rate-limit buckets** (`scope: "global"`): one token bucket per key in the database,
  refilled by elapsed database time; each take is one short transaction.

`SharedResilience` is what the breakers and limits call; `SharedState` implements it on a
`SharedStateStore`, the SQL (`_journal/_postgres_resilience.py`), which this stage never imports:
the runtime joins them. No shared state (SQLite, memory) means none of this runs at all.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Protocol

import attrs
import trio

from .._errors import BulkheadFullError, RateLimitedError

__all__ = [
    "PROBE_LEASE",
    "SHARED_STATE_TTL",
    "SLOT_LEASE",
    "BreakerRow",
    "SharedBreaker",
    "SharedResilience",
    "SharedState",
    "SharedStateStore",
    "TokenTake",
    "take_token",
]

_logger = logging.getLogger("orchestr8.resilience")

SHARED_STATE_TTL: Final = 1.0
"""Seconds between two refreshes of the shared breaker snapshot (and slot renewals)."""

SLOT_LEASE: Final = 5.0
"""Seconds a global bulkhead slot stays taken unless its holder renews it (a dead one does not)."""

PROBE_LEASE: Final = 10.0
"""Seconds the process that won a breaker's half-open token may take to settle its probes."""

#: Token counts within this much of a whole token count as whole (as in `_limits`).
_TOKEN_TOLERANCE: Final = 1e-9


@attrs.frozen
class SharedBreaker:
    """How a breaker stands in the database, as one process sees it.

    `state` is `open` or `half_open`; `until` is the trio time at which it ends (an open
    breaker's probe time, a half-open token's expiry); `mine` says this process holds the
    half-open token, so its calls are the probes.
    """

    state: str
    until: float
    mine: bool = False


class BreakerRow(Protocol):
    """One breaker as the store reads it: `remaining` s until its `open_until` (may be < 0)."""

    @property
    def key(self) -> str:
        """The breaker's key."""
        ...

    @property
    def state(self) -> str:
        """`open` or `half_open`."""
        ...

    @property
    def holder(self) -> str | None:
        """Who opened it, or who holds its half-open token."""
        ...

    @property
    def remaining(self) -> float:
        """Seconds until its `open_until`, by the database clock."""
        ...


@attrs.frozen
class TokenTake:
    """The outcome of one take from a rate-limit bucket.

    `taken`: a token was reserved; `wait` is then the time until it is due (0: now), and
    otherwise the wait a token would have needed (more than the caller's `max_wait`).
    `tokens` is what the bucket holds afterwards (negative: reserved ahead).
    """

    taken: bool
    wait: float
    tokens: float


def take_token(
    tokens: float, elapsed: float, *, rate: float, burst: int, max_wait: float
) -> TokenTake:
    """The token-bucket arithmetic of one take, the same in every process and the database.

    The bucket refills by `elapsed * rate` (elapsed below 0 counts as 0), at most to `burst`; a
    whole token is taken at once, a token due within `max_wait` is reserved ahead (the bucket
    goes negative), and a later one is not taken at all.
    """
    refilled = min(float(burst), tokens + max(0.0, elapsed) * rate)
    if refilled >= 1 - _TOKEN_TOLERANCE:
        return TokenTake(True, 0.0, refilled - 1)
    wait = (1 - refilled) / rate
    if wait > max_wait:
        return TokenTake(False, wait, refilled)
    return TokenTake(True, wait, refilled - 1)


def _decide(
    tokens: float, elapsed: float, *, rate: float, burst: int, max_wait: float
) -> tuple[float, TokenTake]:
    """`take_token` as the store asks it: the tokens to store, and the outcome."""
    take = take_token(tokens, elapsed, rate=rate, burst=burst, max_wait=max_wait)
    return take.tokens, take


class SharedStateStore(Protocol):
    """The database operations behind `SharedState` (`PostgresResilienceStore` implements them).

    Every method may raise one of `errors` when the database cannot be used.
    """

    errors: tuple[type[BaseException], ...]

    async def publish_open(self, key: str, holder: str, seconds: float, reason: str) -> None:
        """Record that `holder` opened breaker `key` for `seconds` (database time)."""
        ...

    async def publish_closed(self, key: str, holder: str, reason: str) -> None:
        """Record that breaker `key` closed."""
        ...

    async def breakers(self) -> Sequence[BreakerRow]:
        """Every breaker that is not closed."""
        ...

    async def claim_probe(self, key: str, holder: str, lease: float) -> bool:
        """Take breaker `key`'s half-open token if its open time (or last token) has expired."""
        ...

    async def acquire_slot(self, key: str, limit: int, holder: str, lease: float) -> int | None:
        """Take one of `limit` slots of `key` for `lease` s; its id, or None when all are taken."""
        ...

    async def release_slots(self, slots: Sequence[int]) -> None:
        """Give back slots taken by `acquire_slot`."""
        ...

    async def renew_slots(self, slots: Sequence[int], lease: float) -> None:
        """Extend the given slots' leases to `lease` s from now."""
        ...

    async def take_token(
        self, key: str, burst: int, decide: Callable[[float, float], tuple[float, TokenTake]]
    ) -> TokenTake:
        """Take from bucket `key` (created holding `burst`) as `decide(tokens, elapsed)` says."""
        ...

    async def aclose(self) -> None:
        """Close the store's connection."""
        ...


class SharedResilience(Protocol):
    """What breakers and global limits ask of the state shared with other processes."""

    holder: str
    """This process's name in the database (who opened a breaker, who holds a slot)."""

    connected: bool
    """Whether the database answered the last round; while not, breakers probe on their own."""

    def open_breakers(self) -> Mapping[str, SharedBreaker]:
        """The breakers that are not closed, by key: a snapshot, never a database read."""
        ...

    def breaker_opened(self, key: str, seconds: float, reason: str) -> None:
        """Tell the others (in background) that breaker `key` opened here for `seconds`."""
        ...

    def breaker_closed(self, key: str, reason: str) -> None:
        """Tell the others (in background) that breaker `key` closed here."""
        ...

    def want_probe(self, key: str) -> None:
        """A call found breaker `key`'s open time over: try to win its half-open token."""
        ...

    async def acquire_slot(self, key: str, limit: int) -> int | None:
        """Take one of `limit` global slots of `key`; None when every slot is taken."""
        ...

    def release_slot(self, slot: int) -> None:
        """Give back a slot (in background: a release never waits on the database)."""
        ...

    async def take_token(self, key: str, rate: float, burst: int, max_wait: float) -> TokenTake:
        """Take one token from global bucket `key`."""
        ...


@attrs.define(eq=False)
class _Publication:
    """A breaker transition of this process not yet written; `until`: an opening's trio end."""

    opened: bool
    until: float
    reason: str


class SharedState:
    """`SharedResilience` on a store: a cached breaker snapshot, kept fresh by `run`.

    `run` (a task in the runtime's nursery) writes this process's breaker transitions, gives back
    released slots, renews held ones, claims the half-open tokens calls asked for, and reads the
    breakers, every `ttl` seconds or at once when there is something to write. A database that
    cannot be reached is logged and tried again on the next round; the snapshot keeps its last
    state with this process's own transitions laid over it.
    """

    def __init__(
        self,
        store: SharedStateStore,
        holder: str,
        *,
        ttl: float = SHARED_STATE_TTL,
        slot_lease: float = SLOT_LEASE,
        probe_lease: float = PROBE_LEASE,
    ) -> None:
        """Share state through `store` as `holder`; `ttl` and the leases are in seconds."""
        if not (ttl > 0 and math.isfinite(ttl)):
            raise ValueError(f"ttl must be a finite number of seconds > 0: {ttl}")
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.slot_lease = slot_lease
        self.probe_lease = probe_lease
        self._snapshot: dict[str, SharedBreaker] = {}
        self._published: dict[str, _Publication] = {}
        self._wanted: set[str] = set()
        self._held: set[int] = set()
        self._released: list[int] = []
        self._wake = trio.Event()
        self._scope = trio.CancelScope()
        self._syncing = trio.Lock()
        self._running = False
        self._stopped = trio.Event()
        self.refreshed = trio.Event()
        """Set (and replaced) after every round: tests wait for the next refresh with it."""
        self.connected = True
        """Whether the last round reached the database (until the first: assumed so)."""

    def open_breakers(self) -> Mapping[str, SharedBreaker]:
        """The breakers that are not closed, by key, as of the last refresh and own transitions."""
        return self._snapshot

    def breaker_opened(self, key: str, seconds: float, reason: str) -> None:
        """Show breaker `key` open here at once; write it in the background."""
        until = trio.current_time() + seconds
        self._published[key] = _Publication(True, until, reason)
        self._snapshot = {**self._snapshot, key: SharedBreaker("open", until)}
        self._wake.set()

    def breaker_closed(self, key: str, reason: str) -> None:
        """Show breaker `key` closed here at once; write it in the background."""
        self._published[key] = _Publication(False, 0.0, reason)
        self._snapshot = {name: view for name, view in self._snapshot.items() if name != key}
        self._wake.set()

    def want_probe(self, key: str) -> None:
        """Ask the background task to claim breaker `key`'s half-open token now."""
        if key not in self._wanted:
            self._wanted.add(key)
            self._wake.set()

    async def acquire_slot(self, key: str, limit: int) -> int | None:
        """Take one of `limit` global slots of `key` for this process; None when all are taken.

        The slot is held (and renewed) from the moment the database grants it, even when the
        caller is cancelled on the way back: the caller gives it back with `release_slot`.

        Raises:
            BulkheadFullError: the database could not be used (nothing was taken).
        """
        try:
            slot = await self.store.acquire_slot(key, limit, self.holder, self.slot_lease)
        except self.store.errors as error:
            raise BulkheadFullError(
                f"bulkhead {key!r} (global) could not take a slot: the shared state"
                f" database failed: {_one_line(error)}"
            ) from error
        if slot is not None:
            self._held.add(slot)
        return slot

    def release_slot(self, slot: int) -> None:
        """Stop renewing `slot` and give it back in the background."""
        self._held.discard(slot)
        self._released.append(slot)
        self._wake.set()

    async def take_token(self, key: str, rate: float, burst: int, max_wait: float) -> TokenTake:
        """Take one token from global bucket `key` (one short transaction).

        Raises:
            RateLimitedError: the database could not be used (nothing was taken).
        """
        try:
            return await self.store.take_token(
                key, burst, functools.partial(_decide, rate=rate, burst=burst, max_wait=max_wait)
            )
        except self.store.errors as error:
            raise RateLimitedError(
                f"rate limiter {key!r} (global) could not take a token: the shared state"
                f" database failed: {_one_line(error)}",
                retry_after=self.ttl,
            ) from error

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the shared state in step with the database until `stop` (or cancelled)."""
        self._running = True
        try:
            with self._scope:
                await self.sync()
                task_status.started()
                while True:
                    with trio.move_on_after(self.ttl):
                        await self._wake.wait()
                    await self.sync()
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """End `run`, then write what is still unwritten (given-back slots, own transitions).

        The last write takes at most `ttl` seconds; a database that fails it is logged.
        """
        self._scope.cancel()
        if self._running:
            await self._stopped.wait()
        with trio.move_on_after(self.ttl):
            try:
                async with self._syncing:
                    await self._write()
            except self.store.errors as error:
                _logger.warning(
                    "the shared resilience state could not be written at shutdown: %s",
                    _one_line(error),
                )

    async def sync(self) -> None:
        """One round: write, give back, renew, claim, then read (errors are logged, not raised).

        Rounds take turns: a caller's round (tests force one) never interleaves with `run`'s.
        """
        async with self._syncing:
            self._wake = trio.Event()
            try:
                await self._write()
                await self._read()
            except self.store.errors as error:
                self.connected = False
                _logger.warning(
                    "the shared resilience state could not be synchronised: %s", _one_line(error)
                )
            else:
                self.connected = True
            refreshed, self.refreshed = self.refreshed, trio.Event()
            refreshed.set()

    async def _write(self) -> None:
        """Write own transitions and released slots, renew held slots, claim wanted tokens."""
        while self._published:
            key, publication = next(iter(self._published.items()))
            if publication.opened:
                # Written late (the database was away), it ends when it would have.
                left = max(0.0, publication.until - trio.current_time())
                await self.store.publish_open(key, self.holder, left, publication.reason)
            else:
                await self.store.publish_closed(key, self.holder, publication.reason)
            if self._published.get(key) is publication:
                del self._published[key]
        if self._released:
            released = list(self._released)
            await self.store.release_slots(released)
            del self._released[: len(released)]
        if self._held:
            await self.store.renew_slots(sorted(self._held), self.slot_lease)
        while self._wanted:
            key = next(iter(self._wanted))
            await self.store.claim_probe(key, self.holder, self.probe_lease)
            self._wanted.discard(key)

    async def _read(self) -> None:
        """Replace the snapshot by the database's breakers, own unwritten transitions over them."""
        rows = await self.store.breakers()
        now = trio.current_time()
        snapshot = {
            row.key: SharedBreaker(
                row.state,
                now + row.remaining,
                row.state == "half_open" and row.holder == self.holder,
            )
            for row in rows
        }
        for key, publication in self._published.items():
            if publication.opened:
                snapshot[key] = SharedBreaker("open", publication.until)
            else:
                snapshot.pop(key, None)
        self._snapshot = snapshot


def _one_line(error: BaseException) -> str:
    """An error's message on one line (database errors span several)."""
    return " ".join(str(error).split()) or type(error).__name__
