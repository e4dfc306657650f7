"""The circuit breaker: stop calling an agent that keeps failing, then probe it carefully.

States and rules (drawn in `docs/resilience.md`, "Circuit breaker"):

- `closed`: calls pass. Consecutive failures are counted; a success resets the count; when the
  count reaches `failure_threshold` the breaker opens.
- `open`: calls are rejected with `CircuitOpenError` without being made. The first call at
  `now >= opened_at + reset_timeout` (trio clock) moves it to half-open and becomes a probe.
- `half_open`: at most `half_open_requests` probes run at once; other calls are rejected. Any
  probe failure re-opens the breaker with a new `opened_at`; `half_open_requests` probe successes
  close it.
- `forced_open` and `disabled` are manual: the first rejects everything until `close()`, the
  second lets everything through and records nothing.

What counts: an `Exception` is a failure unless it is a `BreakerNeutral` (a budget refused the
call, a prompt could not be built: nothing about the health of what was called) or its type is
in `exclude`; those are neutral.
`trio.Cancelled` and other `BaseException`s are neutral: a cancelled probe frees its permit and
counts for nothing. Each admitted call holds a ticket, the breaker's generation at admission; every
transition starts a new generation, so results of calls admitted before a transition (say, slow
calls that were running when the breaker opened) change nothing and emit nothing. Exactly one
`BreakerTransition` is delivered to the listeners per real state change.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final, NoReturn, Self, TypeVar, TypeVarTuple

import attrs
import trio

from .._errors import BreakerNeutral, CircuitOpenError
from .._workflow._policy import CircuitBreakerPolicy, _at_least_one, _not_negative
from ._shared_state import SharedResilience

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class BreakerState(enum.StrEnum):
    """The state of a circuit breaker; the values are the names used in events and JSON."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


# Module constants: reading an enum member through its class costs ~0.1 µs on Python 3.11.
_CLOSED: Final = BreakerState.CLOSED
_OPEN: Final = BreakerState.OPEN
_HALF_OPEN: Final = BreakerState.HALF_OPEN
_FORCED_OPEN: Final = BreakerState.FORCED_OPEN
_DISABLED: Final = BreakerState.DISABLED


@attrs.frozen
class BreakerTransition:
    """One real state change of a breaker, delivered to listeners so they can record an event.

    `at` is the trio time of the change; `retry_after` is the wait until a probe is admitted (set
    only when the new state is `open`); `reason` is one of `failure_threshold`, `reset_timeout`,
    `probe_failed`, `probes_succeeded` or `manual`.
    """

    name: str
    old: BreakerState
    new: BreakerState
    at: float
    reason: str
    retry_after: float | None = None


@attrs.frozen
class BreakerStatistics:
    """A snapshot of a breaker for views and tests (`trio`-style `statistics()`)."""

    name: str
    state: BreakerState
    consecutive_failures: int
    opened_at: float | None
    probes_in_flight: int
    probe_successes: int
    admitted: int
    rejected: int
    successes: int
    failures: int


#: A synchronous callback told about every transition; it must not raise or block.
BreakerListener = Callable[[BreakerTransition], None]


def _exception_types(value: Iterable[type[BaseException]]) -> tuple[type[BaseException], ...]:
    return tuple(value)


# NO_OP: attrs would otherwise run a Python `__setattr__` on every state update (~0.4 µs each).
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class CircuitBreaker:
    """A circuit breaker shared by every call to one agent; see the module docstring for the rules.

    Wrap a call with `await breaker.call(fn, *args)`. Layers that cannot wrap a callable use the
    ticket protocol instead: `ticket = breaker.admit()`, then exactly one of `record_success`,
    `record_failure` or `record_neutral` with that ticket.
    """

    failure_threshold: int = attrs.field(default=5, validator=_at_least_one)
    reset_timeout: float = attrs.field(default=60.0, validator=_not_negative)
    half_open_requests: int = attrs.field(default=3, validator=_at_least_one)
    exclude: tuple[type[BaseException], ...] = attrs.field(default=(), converter=_exception_types)
    name: str = ""
    _state: BreakerState = attrs.field(default=_CLOSED, init=False)
    _generation: int = attrs.field(default=0, init=False)
    _consecutive_failures: int = attrs.field(default=0, init=False)
    _opened_at: float | None = attrs.field(default=None, init=False)
    _probes: int = attrs.field(default=0, init=False)
    _probe_successes: int = attrs.field(default=0, init=False)
    _listeners: list[BreakerListener] = attrs.field(factory=list, init=False)
    _admitted: int = attrs.field(default=0, init=False)
    _rejected: int = attrs.field(default=0, init=False)
    _succeeded: int = attrs.field(default=0, init=False)
    _failed: int = attrs.field(default=0, init=False)

    @classmethod
    def from_policy(
        cls,
        policy: CircuitBreakerPolicy,
        *,
        name: str = "",
        exclude: tuple[type[BaseException], ...] = (),
        **fields: Any,
    ) -> Self:
        """Build a breaker from a step policy's `circuit_breaker` (`fields`: a subclass's own)."""
        return cls(
            failure_threshold=policy.failure_threshold,
            reset_timeout=policy.reset_timeout,
            half_open_requests=policy.half_open_requests,
            exclude=exclude,
            name=name,
            **fields,
        )

    @property
    def state(self) -> BreakerState:
        """The current state; `open` turns `half_open` only when a call comes after the timeout."""
        return self._state

    def add_listener(self, listener: BreakerListener) -> None:
        """Call `listener` (synchronously) with every future transition of this breaker."""
        self._listeners.append(listener)

    def remove_listener(self, listener: BreakerListener) -> None:
        """Stop calling `listener`; raises ValueError if it was not added."""
        self._listeners.remove(listener)

    async def call(self, fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
        """Call `await fn(*args)` if the breaker admits it, recording how it ended.

        Raises:
            CircuitOpenError: the breaker rejected the call; `fn` was not called.
        """
        ticket = self.admit()
        try:
            result = await fn(*args)
        except Exception as error:
            self.record_failure(ticket, error)
            raise
        except BaseException:
            self.record_neutral(ticket)
            raise
        self.record_success(ticket)
        return result

    def admit(self) -> int:
        """Admit one call or reject it; returns the ticket to pass to exactly one `record_*` method.

        Raises:
            CircuitOpenError: open (with the wait until a probe is admitted), forced open
                (`retry_after` is infinite), or half open with every probe permit taken
                (`retry_after` 0: a permit may free at any moment).
        """
        state = self._state
        if state is _CLOSED or state is _DISABLED:
            self._admitted += 1
            return self._generation
        if state is _OPEN:
            assert self._opened_at is not None
            now = trio.current_time()
            probe_at = self._opened_at + self.reset_timeout
            if now < probe_at:
                self._reject(f"circuit {self.name!r} is open", probe_at - now)
            self._transition(_HALF_OPEN, now, "reset_timeout")
            state = _HALF_OPEN
        if state is _HALF_OPEN:
            if self._probes >= self.half_open_requests:
                message = f"circuit {self.name!r} is half open and every probe slot is taken"
                self._reject(message, 0.0)
            self._probes += 1
            self._admitted += 1
            return self._generation
        self._reject(f"circuit {self.name!r} is forced open", math.inf)

    def record_success(self, ticket: int) -> None:
        """Record that the call admitted with `ticket` succeeded."""
        self._succeeded += 1
        if ticket != self._generation:
            return
        state = self._state
        if state is _CLOSED:
            self._consecutive_failures = 0
        elif state is _HALF_OPEN:
            self._probes -= 1
            self._probe_successes += 1
            if self._probe_successes >= self.half_open_requests:
                self._transition(_CLOSED, trio.current_time(), "probes_succeeded")

    def record_failure(self, ticket: int, error: BaseException) -> None:
        """Record that the call admitted with `ticket` raised `error`.

        Neutral instead when `error` is a `BreakerNeutral` (it says nothing about the health of
        what was called: a budget refused the call, its prompt could not be built) or an
        `exclude`d type.
        """
        if isinstance(error, (BreakerNeutral, self.exclude)):
            self.record_neutral(ticket)
            return
        self._failed += 1
        if ticket != self._generation:
            return
        state = self._state
        if state is _CLOSED:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.failure_threshold:
                self._transition(_OPEN, trio.current_time(), "failure_threshold")
        elif state is _HALF_OPEN:
            self._probes -= 1
            self._transition(_OPEN, trio.current_time(), "probe_failed")

    def record_neutral(self, ticket: int) -> None:
        """Record that the call admitted with `ticket` ended without a verdict (e.g. cancelled)."""
        if ticket == self._generation and self._state is _HALF_OPEN:
            self._probes -= 1

    def force_open(self) -> None:
        """Reject every call, without probing, until `close()` (or `disable()`) is called."""
        if self._state is not _FORCED_OPEN:
            self._transition(_FORCED_OPEN, trio.current_time(), "manual")

    def close(self) -> None:
        """Close the breaker now, forgetting the failures counted so far."""
        if self._state is _CLOSED:
            self._consecutive_failures = 0
        else:
            self._transition(_CLOSED, trio.current_time(), "manual")

    def disable(self) -> None:
        """Let every call through and record nothing, until `close()` (or `force_open()`)."""
        if self._state is not _DISABLED:
            self._transition(_DISABLED, trio.current_time(), "manual")

    def statistics(self) -> BreakerStatistics:
        """A snapshot of the state and the counters."""
        return BreakerStatistics(
            name=self.name,
            state=self._state,
            consecutive_failures=self._consecutive_failures,
            opened_at=self._opened_at,
            probes_in_flight=self._probes,
            probe_successes=self._probe_successes,
            admitted=self._admitted,
            rejected=self._rejected,
            successes=self._succeeded,
            failures=self._failed,
        )

    def _reject(self, message: str, retry_after: float) -> NoReturn:
        self._rejected += 1
        raise CircuitOpenError(message, retry_after=retry_after)

    def _transition(self, new: BreakerState, now: float, reason: str) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        self._consecutive_failures = 0
        self._probes = 0
        self._probe_successes = 0
        self._opened_at = now if new is _OPEN else None
        retry_after = self.reset_timeout if new is _OPEN else None
        if self._listeners:
            transition = BreakerTransition(self.name, old, new, now, reason, retry_after)
            for listener in tuple(self._listeners):
                listener(transition)


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class CircuitBreakerRegistry:
    """The breakers of one runtime, created on first use by key and shared by every execution.

    `get(key, policy)` returns the breaker for `key`, creating it from `policy` (or the registry's
    `default_policy`) the first time; later calls return the same breaker whatever policy they
    pass, so the first policy for a key wins. Transitions of every breaker reach the registry's
    listeners. With `shared` state, every breaker is a `SharedCircuitBreaker`: its open and close
    transitions are shared with the other processes on the database.
    """

    default_policy: CircuitBreakerPolicy = attrs.field(factory=CircuitBreakerPolicy)
    exclude: tuple[type[BaseException], ...] = attrs.field(default=(), converter=_exception_types)
    shared: SharedResilience | None = None
    """The state shared with other processes (a PostgreSQL journal); None: process-local."""
    _breakers: dict[str, CircuitBreaker] = attrs.field(factory=dict, init=False)
    _listeners: list[BreakerListener] = attrs.field(factory=list, init=False)

    def get(self, key: str, policy: CircuitBreakerPolicy | None = None) -> CircuitBreaker:
        """The breaker for `key`, created from `policy` (default: `default_policy`) if new."""
        breaker = self._breakers.get(key)
        if breaker is None:
            chosen = self.default_policy if policy is None else policy
            if self.shared is None:
                breaker = CircuitBreaker.from_policy(chosen, name=key, exclude=self.exclude)
            else:
                breaker = _shared_breaker(chosen, key, self.exclude, self.shared)
            breaker.add_listener(self._forward)
            self._breakers[key] = breaker
        return breaker

    def find(self, key: str) -> CircuitBreaker | None:
        """The breaker for `key` if one was created, without creating one."""
        return self._breakers.get(key)

    def add_listener(self, listener: BreakerListener) -> None:
        """Call `listener` (synchronously) with every future transition of every breaker."""
        self._listeners.append(listener)

    def remove_listener(self, listener: BreakerListener) -> None:
        """Stop calling `listener`; raises ValueError if it was not added."""
        self._listeners.remove(listener)

    def statistics(self) -> tuple[BreakerStatistics, ...]:
        """A snapshot of every breaker, in creation order."""
        return tuple(breaker.statistics() for breaker in self._breakers.values())

    def __contains__(self, key: object) -> bool:
        """Whether a breaker exists for `key`."""
        return key in self._breakers

    def __iter__(self) -> Iterator[str]:
        """The keys of the breakers created so far, in creation order."""
        return iter(tuple(self._breakers))

    def __len__(self) -> int:
        """How many breakers exist."""
        return len(self._breakers)

    def _forward(self, transition: BreakerTransition) -> None:
        for listener in tuple(self._listeners):
            listener(transition)


def _shared_breaker(
    policy: CircuitBreakerPolicy,
    key: str,
    exclude: tuple[type[BaseException], ...],
    shared: SharedResilience,
) -> CircuitBreaker:
    """A breaker sharing its transitions through `shared` (imported here: it builds on this)."""
    from ._shared_breaker import SharedCircuitBreaker

    return SharedCircuitBreaker.from_policy(policy, shared=shared, name=key, exclude=exclude)
