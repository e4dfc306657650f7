"""Admission limits: a bulkhead bounds concurrent calls, a rate limiter how often calls start.

Both admit a call at once when they can and otherwise let the caller wait up to `max_wait`
seconds (0: never wait). A caller that cannot be admitted in time gets a rejection
(`BulkheadFullError`, `RateLimitedError`) and its callable is not called. Waiting is fair: the
bulkhead hands a freed slot to the longest waiter, and the rate limiter reserves tokens in
arrival order. A cancelled waiter takes nothing: it leaves the queue, and a reserved token is
given back. Both read only the trio clock.

Admission without waiting is deliberately not a checkpoint: these layers sit on the hot path of
every agent call, and the call they admit is where the task yields.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar, TypeVarTuple

import attrs
import trio

from .._errors import BulkheadFullError, RateLimitedError
from .._workflow._policy import (
    BulkheadPolicy,
    RateLimitPolicy,
    _at_least_one,
    _not_negative,
    _positive,
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: Token counts within this much of a whole token count as whole: `(0.3 - 0.2) * 10` is not 1.0.
_TOKEN_TOLERANCE = 1e-9


@attrs.frozen
class BulkheadStatistics:
    """A snapshot of a bulkhead: slots in use, callers waiting, and calls admitted and rejected."""

    name: str
    max_concurrent: int
    in_use: int
    waiting: int
    admitted: int
    rejected: int


# NO_OP: attrs would otherwise run a Python `__setattr__` on every counter update (~0.4 µs each).
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class Bulkhead:
    """At most `max_concurrent` calls run at once; a caller waits up to `max_wait` s for a slot.

    Wrap a call with `await bulkhead.call(fn, *args)`, or pair `await acquire()` with `release()`.
    """

    max_concurrent: int = attrs.field(validator=_at_least_one)
    max_wait: float = attrs.field(default=0.0, validator=_not_negative)
    name: str = ""
    _in_use: int = attrs.field(default=0, init=False)
    _waiters: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot, init=False)
    _admitted: int = attrs.field(default=0, init=False)
    _rejected: int = attrs.field(default=0, init=False)

    @classmethod
    def from_policy(cls, policy: BulkheadPolicy, *, name: str = "", **fields: Any) -> Self:
        """Build a bulkhead from the `bulkhead` part of a step policy (`fields`: a subclass's)."""
        return cls(
            max_concurrent=policy.max_concurrent, max_wait=policy.max_wait, name=name, **fields
        )

    async def call(self, fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
        """Call `await fn(*args)` in a slot of the bulkhead, waiting up to `max_wait` for one.

        Raises:
            BulkheadFullError: no slot was free within `max_wait`; `fn` was not called.
        """
        await self.acquire()
        try:
            return await fn(*args)
        finally:
            self.release()

    async def acquire(self, max_wait: float | None = None) -> None:
        """Take a slot, waiting up to `max_wait` seconds (default: the bulkhead's own).

        Raises:
            BulkheadFullError: no slot was free in time.
        """
        # Tasks park only while every slot is taken, and `release` hands a slot to a parked task
        # without freeing it, so a free slot means nobody is waiting: no barging past waiters.
        if self._in_use < self.max_concurrent:
            self._in_use += 1
            self._admitted += 1
            return
        wait = self.max_wait if max_wait is None else max_wait
        if wait > 0:
            with trio.move_on_after(wait):
                await self._waiters.park()
                self._admitted += 1
                return
        self._rejected += 1
        raise BulkheadFullError(
            f"bulkhead {self.name!r} is full: {self.max_concurrent} calls running"
            f" and no slot freed within {wait} s"
        )

    def release(self) -> None:
        """Give back a slot taken by `acquire`, handing it to the longest waiter if there is one."""
        if self._in_use <= 0:
            raise RuntimeError(f"bulkhead {self.name!r} released more often than acquired")
        if self._waiters:
            self._waiters.unpark()
        else:
            self._in_use -= 1

    def statistics(self) -> BulkheadStatistics:
        """A snapshot of the slots and the counters."""
        return BulkheadStatistics(
            name=self.name,
            max_concurrent=self.max_concurrent,
            in_use=self._in_use,
            waiting=len(self._waiters),
            admitted=self._admitted,
            rejected=self._rejected,
        )


@attrs.frozen
class RateLimiterStatistics:
    """A snapshot of a rate limiter: tokens available (negative: reserved ahead) and counters."""

    name: str
    rate: float
    burst: int
    tokens: float
    waiting: int
    admitted: int
    rejected: int


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class RateLimiter:
    """A token bucket: `rate` tokens a second, at most `burst` stored, full at the start.

    Each call takes one token. A caller that would wait longer than `max_wait` for its token is
    rejected at once with `RateLimitedError(retry_after=the wait it would have needed)`; otherwise
    it reserves the token and sleeps until it is due.
    """

    rate: float = attrs.field(validator=_positive)
    burst: int = attrs.field(validator=_at_least_one)
    max_wait: float = attrs.field(default=0.0, validator=_not_negative)
    name: str = ""
    _tokens: float = attrs.field(init=False)
    # None until the first acquire: a limiter may be built before trio runs, so no clock yet.
    _updated_at: float | None = attrs.field(default=None, init=False)
    _waiting: int = attrs.field(default=0, init=False)
    _admitted: int = attrs.field(default=0, init=False)
    _rejected: int = attrs.field(default=0, init=False)

    @_tokens.default
    def _full_bucket(self) -> float:
        return float(self.burst)

    @classmethod
    def from_policy(cls, policy: RateLimitPolicy, *, name: str = "", **fields: Any) -> Self:
        """Build a rate limiter from a step policy's `rate_limit` (`fields`: a subclass's own)."""
        return cls(
            rate=policy.rate, burst=policy.burst, max_wait=policy.max_wait, name=name, **fields
        )

    async def call(self, fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
        """Call `await fn(*args)` once a token is available, waiting up to `max_wait` for it.

        Raises:
            RateLimitedError: the token would come later than `max_wait`; `fn` was not called.
        """
        await self.acquire()
        return await fn(*args)

    async def acquire(self, max_wait: float | None = None) -> None:
        """Take a token, waiting up to `max_wait` seconds (default: the limiter's own) for it.

        Raises:
            RateLimitedError: the token would come too late; nothing was taken or waited for.
        """
        now = trio.current_time()
        tokens = self._refill(now)
        if tokens >= 1 - _TOKEN_TOLERANCE:
            self._tokens = tokens - 1
            self._admitted += 1
            return
        wait = (1 - tokens) / self.rate
        limit = self.max_wait if max_wait is None else max_wait
        if wait > limit:
            self._rejected += 1
            raise RateLimitedError(
                f"rate limiter {self.name!r} has no token for {wait:.3f} s"
                f" ({self.rate}/s, burst {self.burst}, max wait {limit} s)",
                retry_after=wait,
            )
        self._tokens = tokens - 1
        self._waiting += 1
        try:
            await trio.sleep_until(now + wait)
        except BaseException:
            self._tokens += 1
            raise
        finally:
            self._waiting -= 1
        self._admitted += 1

    def statistics(self) -> RateLimiterStatistics:
        """A snapshot of the bucket (refilled up to now) and the counters; call it inside trio."""
        tokens = self._refill(trio.current_time())
        return RateLimiterStatistics(
            name=self.name,
            rate=self.rate,
            burst=self.burst,
            tokens=tokens,
            waiting=self._waiting,
            admitted=self._admitted,
            rejected=self._rejected,
        )

    def _refill(self, now: float) -> float:
        updated_at = self._updated_at
        self._updated_at = now
        if updated_at is None:
            return self._tokens
        tokens = self._tokens + (now - updated_at) * self.rate
        burst = self.burst
        tokens = burst if tokens > burst else tokens
        self._tokens = tokens
        return tokens
