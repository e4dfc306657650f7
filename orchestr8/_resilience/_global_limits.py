"""Bulkheads and rate limiters with `scope: "global"`: one limit across every process.

`GlobalBulkhead` takes its slots from the database (`SharedResilience.acquire_slot`): at most
`max_concurrent` calls of its key run at once in all processes together. A caller that finds
every slot taken polls again with a growing pause (`FIRST_POLL` doubling to `LAST_POLL`), or at
once when a call of its own process gives a slot back, until `max_wait` runs out; then it gets
`BulkheadFullError` like a process-local bulkhead's caller. Slots are leased: a process renews
those it holds, so the slots of a process that died free themselves.

`GlobalRateLimiter` takes each token from one bucket in the database
(`SharedResilience.take_token`, the arithmetic of `take_token`): a token due within `max_wait`
is reserved there and slept for here; a later one is refused with `RateLimitedError` and its
`retry_after`. Waiting across processes is not first-come first-served, as it is within one.

A database that cannot be used refuses the call the same way (the message says why), so the
step's retry policy decides what happens next. Both are built by the runtime only for policies
that ask for global scope, and only when it shares state (a PostgreSQL journal).
"""

from __future__ import annotations

from typing import Final

import attrs
import trio

from .._errors import BulkheadFullError, RateLimitedError
from ._limits import Bulkhead, BulkheadStatistics, RateLimiter
from ._shared_state import SharedResilience

__all__ = ["FIRST_POLL", "LAST_POLL", "GlobalBulkhead", "GlobalRateLimiter"]

FIRST_POLL: Final = 0.01
"""Seconds before a waiting caller asks for a global slot again, the first time."""

LAST_POLL: Final = 0.5
"""The longest pause between two asks for a global slot (the pause doubles up to it)."""


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class GlobalBulkhead(Bulkhead):
    """A bulkhead whose `max_concurrent` slots are shared by every process on the database."""

    shared: SharedResilience = attrs.field(kw_only=True)
    _slots: list[int] = attrs.field(factory=list, init=False)
    _freed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _polling: int = attrs.field(default=0, init=False)

    async def acquire(self, max_wait: float | None = None) -> None:
        """Take a global slot, waiting up to `max_wait` seconds (default: the bulkhead's own).

        Raises:
            BulkheadFullError: no slot was free in time, or the database could not be used.
        """
        wait = self.max_wait if max_wait is None else max_wait
        give_up_at = trio.current_time() + wait
        pause = FIRST_POLL
        self._polling += 1
        try:
            while True:
                slot = await self._ask()
                if slot is not None:
                    self._slots.append(slot)
                    self._in_use += 1
                    self._admitted += 1
                    return
                left = give_up_at - trio.current_time()
                if left <= 0:
                    break
                with trio.move_on_after(min(pause, left)):
                    await self._freed.wait()
                pause = min(pause * 2, LAST_POLL)
        finally:
            self._polling -= 1
        self._rejected += 1
        raise BulkheadFullError(
            f"bulkhead {self.name!r} (global) is full: {self.max_concurrent} calls running"
            f" across every process and no slot freed within {wait} s"
        )

    async def _ask(self) -> int | None:
        """One ask for a slot; a database failure is a refusal naming it."""
        try:
            return await self.shared.acquire_slot(self.name, self.max_concurrent)
        except BulkheadFullError:
            self._rejected += 1
            raise

    def release(self) -> None:
        """Give back a slot taken by `acquire` (written in the background), waking local waiters."""
        if not self._slots:
            raise RuntimeError(f"bulkhead {self.name!r} released more often than acquired")
        self.shared.release_slot(self._slots.pop())
        self._in_use -= 1
        if self._polling:
            self._freed.set()
            self._freed = trio.Event()

    def statistics(self) -> BulkheadStatistics:
        """The slots and counters of this process (`waiting`: its callers asking for a slot)."""
        return attrs.evolve(super().statistics(), waiting=self._polling)


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class GlobalRateLimiter(RateLimiter):
    """A rate limiter whose bucket is shared by every process on the database."""

    shared: SharedResilience = attrs.field(kw_only=True)

    async def acquire(self, max_wait: float | None = None) -> None:
        """Take a token from the shared bucket, waiting up to `max_wait` s for it to be due.

        Raises:
            RateLimitedError: the token would come too late, or the database could not be used.
        """
        limit = self.max_wait if max_wait is None else max_wait
        try:
            take = await self.shared.take_token(self.name, self.rate, self.burst, limit)
        except RateLimitedError:
            self._rejected += 1
            raise
        if not take.taken:
            self._rejected += 1
            raise RateLimitedError(
                f"rate limiter {self.name!r} (global) has no token for {take.wait:.3f} s"
                f" ({self.rate}/s, burst {self.burst}, max wait {limit} s)",
                retry_after=take.wait,
            )
        if take.wait > 0:
            self._waiting += 1
            try:
                await trio.sleep(take.wait)
            finally:
                self._waiting -= 1
        self._admitted += 1
