"""The step's side of resilience: shared breakers and limits, and their events in the journal.

`SharedResilience` is what a runtime shares across executions (circuit breakers, bulkheads, rate
limiters, keyed by the policy's `key` or the agent id); on a PostgreSQL journal,
`open_shared_state` adds what it shares with other processes (`_resilience/_shared_state.py`).
`StepListener` turns the pipeline's callbacks into a step's journal events, metrics and log
lines; breaker transitions are recorded in the execution whose call caused them, found through
`current_step`.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import socket
import uuid
import weakref
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from .._errors import CallStoppedError, CircuitOpenError, Problem, WorkflowValidationError
from .._journal._events import EventType, describe_error
from .._journal._journal import Journal
from .._journal._postgres_resilience import PostgresResilienceStore
from .._observability._metrics import engine_metrics
from .._observability._telemetry import record_breaker_transition, record_rejection
from .._resilience._breaker import (
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
    CircuitBreakerRegistry,
)
from .._resilience._global_limits import GlobalBulkhead, GlobalRateLimiter
from .._resilience._limits import Bulkhead, RateLimiter
from .._resilience._pipeline import Rejection
from .._resilience._shared_state import SharedResilience as SharedAcrossProcesses
from .._resilience._shared_state import SharedState
from .._workflow._document import Workflow
from .._workflow._policy import BulkheadPolicy, Policy, RateLimitPolicy
from .._workflow._scopes import GLOBAL_SCOPE_FIX, global_scope_problems
from ._emitter import Emitter

_logger = logging.getLogger("orchestr8.engine")

current_step: contextvars.ContextVar[tuple[StepListener, int] | None] = contextvars.ContextVar(
    "orchestr8current_step", default=None
)
"""The step (its listener) and attempt whose call runs in this task, for breaker transitions."""

BREAKER_EVENTS: Mapping[BreakerState, str] = {
    BreakerState.OPEN: EventType.BREAKER_OPENED,
    BreakerState.FORCED_OPEN: EventType.BREAKER_OPENED,
    BreakerState.HALF_OPEN: EventType.BREAKER_HALF_OPENED,
    BreakerState.CLOSED: EventType.BREAKER_CLOSED,
}


@attrs.define
class SharedResilience:
    """The resilience state a runtime shares across executions: breakers, bulkheads, limiters.

    Keyed by the policy's `key` or else the agent id; the first policy seen for a key wins.
    Breaker transitions are recorded as events of the execution whose call caused them. With
    `across_processes` state (a PostgreSQL journal), breakers share their transitions with the
    other processes, and `scope: "global"` bulkheads and rate limits count across them.
    """

    breakers: CircuitBreakerRegistry = attrs.Factory(CircuitBreakerRegistry)
    bulkheads: dict[str, Bulkhead] = attrs.Factory(dict)
    rate_limiters: dict[str, RateLimiter] = attrs.Factory(dict)
    across_processes: SharedAcrossProcesses | None = None
    _scopes_checked: dict[int, weakref.ref[Workflow]] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        """Route breaker transitions to the execution whose call caused them."""
        self.breakers.add_listener(record_transition)
        if self.across_processes is not None:
            self.breakers.shared = self.across_processes

    def layers(
        self, key: str, policy: Policy
    ) -> tuple[CircuitBreaker | None, Bulkhead | None, RateLimiter | None]:
        """The breaker, bulkhead and rate limiter for `key`, created from `policy` if new."""
        breaker: CircuitBreaker | None = None
        if policy.circuit_breaker is not None:
            breaker = self.breakers.get(key, policy.circuit_breaker)
        bulkhead = None
        if policy.bulkhead is not None:
            bulkhead = self.bulkheads.get(key)
            if bulkhead is None:
                bulkhead = self.bulkheads[key] = self._bulkhead(key, policy.bulkhead)
        rate_limiter = None
        if policy.rate_limit is not None:
            rate_limiter = self.rate_limiters.get(key)
            if rate_limiter is None:
                rate_limiter = self._rate_limiter(key, policy.rate_limit)
                self.rate_limiters[key] = rate_limiter
        return breaker, bulkhead, rate_limiter

    def _bulkhead(self, key: str, policy: BulkheadPolicy) -> Bulkhead:
        """A new bulkhead for `key`: global when its policy says so (checked at load)."""
        if policy.scope == "process":
            return Bulkhead.from_policy(policy, name=key)
        return GlobalBulkhead.from_policy(policy, shared=self._global(key), name=key)

    def _rate_limiter(self, key: str, policy: RateLimitPolicy) -> RateLimiter:
        """A new rate limiter for `key`: global when its policy says so (checked at load)."""
        if policy.scope == "process":
            return RateLimiter.from_policy(policy, name=key)
        return GlobalRateLimiter.from_policy(policy, shared=self._global(key), name=key)

    def _global(self, key: str) -> SharedAcrossProcesses:
        """The state shared across processes, which a `scope: "global"` limit of `key` needs."""
        if self.across_processes is None:
            raise WorkflowValidationError([Problem("$", f"key {key!r}: {GLOBAL_SCOPE_FIX}")])
        return self.across_processes

    def check_scopes(self, workflow: Workflow) -> None:
        """Refuse a workflow asking for `scope: "global"` when nothing is shared (no PostgreSQL).

        Raises:
            WorkflowValidationError: a problem at each place that asks for it, naming the fix.
        """
        if self.across_processes is not None:
            return
        key = id(workflow)
        checked = self._scopes_checked.get(key)
        if checked is not None and checked() is workflow:
            return
        problems = global_scope_problems(workflow)
        if problems:
            raise WorkflowValidationError(problems)
        # Checked once per workflow object: starting it again costs one lookup.
        self._scopes_checked[key] = weakref.ref(workflow)
        weakref.finalize(workflow, self._scopes_checked.pop, key, None)


async def open_shared_state(
    journal: Journal, stack: AsyncExitStack, nursery: trio.Nursery
) -> SharedState | None:
    """The state this runtime shares with the other processes on `journal`'s database, running.

    None for a journal with no database (SQLite, memory): nothing is shared and nothing runs.
    The state's connection is its own; it closes with `stack`.

    Raises:
        JournalError: the database cannot be reached.
    """
    url = journal.database_url
    if url is None:
        return None
    store = await PostgresResilienceStore.open(url)
    stack.push_async_callback(store.aclose)
    holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    state = SharedState(store, holder)
    await nursery.start(state.run)
    return state


def record_transition(transition: BreakerTransition) -> None:
    current = current_step.get()
    event_type = BREAKER_EVENTS.get(transition.new)
    if current is None or event_type is None:
        return
    listener, attempt = current
    if listener.silenced:
        return
    emitter, step_id = listener.emitter, listener.step_id
    data: dict[str, Any] = {
        "key": transition.name,
        "from": str(transition.old),
        "to": str(transition.new),
        "reason": transition.reason,
    }
    if transition.retry_after is not None:
        data["retry_after"] = finite(transition.retry_after)
    emitter.emit_nowait(event_type, step_id=step_id, attempt=attempt, data=data)
    record_breaker_transition(None, transition)
    engine_metrics().breaker_transition(transition)


def finite(seconds: float) -> float | None:
    """A wait as JSON can carry it: None for "until someone closes it" (a forced-open breaker)."""
    return None if math.isinf(seconds) else seconds


@attrs.define(eq=False)
class StepListener:
    """Turns the pipeline's callbacks into the step's journal events, until it is silenced.

    The engine silences the listener of a step it gave up on (its agent ignored a forced cancel):
    the execution has ended without it, so nothing that step does later reaches the journal.
    """

    emitter: Emitter
    step_id: str
    workflow_name: str = ""
    agent_id: str = ""
    metric_step_id: str = ""
    """The step id its metrics carry (the step's, or `ALL_STEPS`); empty for `step_id`."""
    attempts: int = 0
    silenced: bool = False
    stop: trio.Event | None = None
    """The execution's stop signal: an attempt that ends in `CallStoppedError` once it is set
    (a sub-workflow cancelled with its parent) was stopped, not failed, and records no failure."""

    def attempt_started(self, attempt: int) -> None:
        self.attempts = attempt
        current_step.set((self, attempt))
        if self.silenced:
            return
        self.emitter.emit_nowait(EventType.ATTEMPT_STARTED, step_id=self.step_id, attempt=attempt)

    def attempt_failed(self, attempt: int, error: Exception) -> None:
        if self.silenced or (self._stopped() and isinstance(error, CallStoppedError)):
            return
        self.emitter.emit_nowait(
            EventType.ATTEMPT_FAILED,
            step_id=self.step_id,
            attempt=attempt,
            data={"error": describe_error(error)},
        )

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def retry_scheduled(self, attempt: int, delay: float) -> None:
        if self.silenced:
            return
        engine_metrics().retry_scheduled(
            self.workflow_name, self.metric_step_id or self.step_id, self.agent_id
        )
        _logger.info(
            "attempt %d of step %s failed; retrying in %.2f s", attempt, self.step_id, delay
        )
        self.emitter.emit_nowait(
            EventType.RETRY_SCHEDULED,
            step_id=self.step_id,
            attempt=attempt,
            data={"delay": delay, "next_attempt": attempt + 1},
        )
        current_step.set((self, attempt + 1))

    def rejected(self, attempt: int, error: Rejection) -> None:
        self.attempts = attempt
        if self.silenced:
            return
        event_type = (
            EventType.BREAKER_REJECTED
            if isinstance(error, CircuitOpenError)
            else EventType.ATTEMPT_REJECTED
        )
        self.emitter.emit_nowait(
            event_type,
            step_id=self.step_id,
            attempt=attempt,
            data={
                "error": describe_error(error),
                "retry_after": finite(getattr(error, "retry_after", 0.0)),
            },
        )
        record_rejection(
            event_type, error, step_id=self.step_id, agent_id=self.agent_id, attempt=attempt
        )
