"""A circuit breaker whose open and close transitions are shared with other processes.

The rules of `CircuitBreaker` hold in each process (failures are counted per process); on top:

- when this breaker opens (`failure_threshold`, `probe_failed`), it publishes its open time, and
  when it closes it publishes that too (`SharedResilience.breaker_opened`, `breaker_closed`);
- while the shared snapshot shows the key open by any process, calls are rejected
  (`CircuitOpenError`, `retry_after` the time left), without this breaker changing state;
- once that time is over, a call asks for the half-open token (`want_probe`) and is rejected
  with `retry_after` 0; the process that wins it moves its breaker to `half_open` on its next
  call and probes, the others keep rejecting until the winner's probes settle;
- a breaker open here that the snapshot shows closed was closed by another process's probes:
  it closes too (reason `closed_elsewhere`);
- while the database cannot be reached (`connected` is false), a breaker whose open time is over
  probes on its own, as one process's breaker does: no process is blocked waiting for a token
  nobody can hand out.

Manual states (`force_open`, `disable`) stay local to the process. The registry builds these
breakers only when the runtime shares state (a PostgreSQL journal): otherwise nothing here runs.
"""

from __future__ import annotations

from typing import Final

import attrs
import trio

from ._breaker import BreakerState, CircuitBreaker
from ._shared_state import SharedResilience

__all__ = ["CLOSED_ELSEWHERE", "SharedCircuitBreaker"]

#: The `reason` of a transition to closed because another process's probes closed the breaker.
CLOSED_ELSEWHERE: Final = "closed_elsewhere"

_CLOSED: Final = BreakerState.CLOSED
_OPEN: Final = BreakerState.OPEN
_HALF_OPEN: Final = BreakerState.HALF_OPEN
_PUBLISHED_OPENINGS: Final = frozenset({"failure_threshold", "probe_failed"})


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class SharedCircuitBreaker(CircuitBreaker):
    """A `CircuitBreaker` that also obeys, and publishes to, the state shared across processes."""

    shared: SharedResilience = attrs.field(kw_only=True)

    def admit(self) -> int:
        """Admit one call as `CircuitBreaker.admit` does, unless the shared state says otherwise.

        Raises:
            CircuitOpenError: open here or in another process, or waiting for the half-open
                token (see the module docstring).
        """
        state = self._state
        if state is not _CLOSED and state is not _OPEN and state is not _HALF_OPEN:
            return super().admit()
        view = self.shared.open_breakers().get(self.name)
        if view is None:
            if state is not _CLOSED:
                self._transition(_CLOSED, trio.current_time(), CLOSED_ELSEWHERE)
            return super().admit()
        now = trio.current_time()
        if view.mine and view.until > now:
            if state is not _HALF_OPEN:
                self._transition(_HALF_OPEN, now, "reset_timeout")
            return super().admit()
        if view.until > now:
            self._reject(
                f"circuit {self.name!r} is {_words(view.state)} (shared by every process)",
                view.until - now,
            )
        if not self.shared.connected:
            # The database is away: probe here, as the breaker of one process would.
            if state is not _HALF_OPEN:
                self._transition(_HALF_OPEN, now, "reset_timeout")
            return super().admit()
        self.shared.want_probe(self.name)
        self._reject(
            f"circuit {self.name!r} is open and one process's probe is being arranged", 0.0
        )

    def _transition(self, new: BreakerState, now: float, reason: str) -> None:
        super()._transition(new, now, reason)
        if new is _OPEN and reason in _PUBLISHED_OPENINGS:
            self.shared.breaker_opened(self.name, self.reset_timeout, reason)
        elif new is _CLOSED and reason != CLOSED_ELSEWHERE:
            self.shared.breaker_closed(self.name, reason)


def _words(state: str) -> str:
    """A shared state as a message says it."""
    return "half open (another process probes it)" if state == "half_open" else "open"
