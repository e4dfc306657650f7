"""Execution events: the envelope and the type and status vocabularies.

Everything that happens to an execution is an `Event`. The journal stores them, views show them, and
`replay` (`_replay`) folds them into an `ExecutionState`, so `inspect`, the REST API and `resume`
all read one truth. The envelope on the wire (see `docs/events.md`)::

    {"execution_id", "seq", "ts", "elapsed", "type", "step_id"?, "attempt"?, "data"}

`step_id` and `attempt` are left out of the JSON form when they are None.
"""

from __future__ import annotations

import datetime
import enum
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from .._errors import exception_leaves, message_of


class EventType(enum.StrEnum):
    """Every event type the runtime emits; types are only ever added, never renamed."""

    EXECUTION_STARTED = "execution.started"
    STEP_STARTED = "step.started"
    ATTEMPT_STARTED = "attempt.started"
    ATTEMPT_FAILED = "attempt.failed"
    RETRY_SCHEDULED = "retry.scheduled"
    ATTEMPT_REJECTED = "attempt.rejected"
    STEP_PROGRESS = "step.progress"
    STEP_USAGE = "step.usage"
    STEP_SUCCEEDED = "step.succeeded"
    STEP_FAILED = "step.failed"
    STEP_SKIPPED = "step.skipped"
    STEP_CANCELLED = "step.cancelled"
    BREAKER_OPENED = "breaker.opened"
    BREAKER_HALF_OPENED = "breaker.half_opened"
    BREAKER_CLOSED = "breaker.closed"
    BREAKER_REJECTED = "breaker.rejected"
    EXECUTION_SUCCEEDED = "execution.succeeded"
    EXECUTION_FAILED = "execution.failed"
    EXECUTION_CANCELLED = "execution.cancelled"
    EXECUTION_RESUMED = "execution.resumed"
    MAP_STARTED = "map.started"
    ITERATION_FINISHED = "iteration.finished"
    CHILD_STARTED = "child.started"
    PLAN_PROPOSED = "plan.proposed"
    PLAN_REJECTED = "plan.rejected"
    STEP_REPLANNED = "step.replanned"
    GATE_OPENED = "gate.opened"
    GATE_RESOLVED = "gate.resolved"
    EXECUTION_WAITING = "execution.waiting"
    LLM_CALLED = "llm.called"
    STEP_SCORED = "step.scored"
    BUDGET_RESERVED = "budget.reserved"
    BUDGET_SETTLED = "budget.settled"
    BUDGET_EXHAUSTED = "budget.exhausted"

    @property
    def is_terminal(self) -> bool:
        """Whether this type ends an execution (until a possible `execution.resumed`)."""
        return self in TERMINAL_EVENT_TYPES


TERMINAL_EVENT_TYPES: frozenset[str] = frozenset(
    {EventType.EXECUTION_SUCCEEDED, EventType.EXECUTION_FAILED, EventType.EXECUTION_CANCELLED}
)
"""The event types after which an execution is finished: live views close after one of them."""


class ExecutionStatus(enum.StrEnum):
    """Where an execution stands: `pending → running → succeeded | failed | cancelled`.

    `waiting` is a run that stopped while approval gates were open (`execution.waiting`): it is
    not finished, and `resume` (or a server on the journal) carries it on once they are answered.
    """

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the execution has finished (a crashed run stays `running` until resumed)."""
        return self in _FINISHED_STATUSES


_FINISHED_STATUSES = frozenset(
    {ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


class StepStatus(enum.StrEnum):
    """Where one step of an execution stands."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    """At an approval gate, waiting for an answer: started, but nothing runs."""
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


def utc_timestamp(moment: datetime.datetime | None = None) -> str:
    """Format a moment (default: now) as UTC ISO-8601 with milliseconds and `Z`, as events carry."""
    if moment is None:
        return _now_timestamp()
    text = moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


_second_prefix: tuple[int, str] = (-1, "")
_last_timestamp: tuple[int, str] = (-1, "")


def _now_timestamp() -> str:
    """`utc_timestamp()` for now, formatted once per millisecond (events come many to one)."""
    global _second_prefix, _last_timestamp
    millisecond = int(time.time() * 1000)
    if millisecond == _last_timestamp[0]:
        return _last_timestamp[1]
    second = millisecond // 1000
    if second != _second_prefix[0]:
        _second_prefix = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    text = f"{_second_prefix[1]}.{millisecond % 1000:03d}Z"
    _last_timestamp = (millisecond, text)
    return text


def describe_error(error: BaseException) -> dict[str, Any]:
    """Describe an exception as the `{type, message}` object that error-carrying events hold.

    The message is redacted: error messages are where secrets leak most often.
    """
    from .._observability._redaction import redact_text

    message = message_of(error)
    if isinstance(error, BaseExceptionGroup):
        # "(2 sub-exceptions)" says nothing: name what is inside, the first few at least.
        leaves = exception_leaves(error)
        inner = "; ".join(f"{type(leaf).__name__}: {message_of(leaf)}" for leaf in leaves[:3])
        more = f"; and {len(leaves) - 3} more" if len(leaves) > 3 else ""
        message = f"{message}: {inner}{more}"
    return {"type": type(error).__name__, "message": redact_text(message)}


_KNOWN_TYPES: Mapping[str, EventType] = {member.value: member for member in EventType}


def _known_type(name: str) -> str:
    """Return the `EventType` member named `name` when there is one, so reprs read the same."""
    return _KNOWN_TYPES.get(name, name)


@attrs.frozen
class Event:
    """One thing that happened to an execution, numbered gap-free from 1 by `seq`.

    `ts` is wall-clock UTC (for people); `elapsed` is seconds since the execution started, on the
    trio clock (for durations and MockClock tests). `data` must be JSON-serialisable.
    """

    execution_id: str
    seq: int
    ts: str
    elapsed: float
    type: str = attrs.field(converter=_known_type)
    step_id: str | None = None
    attempt: int | None = None
    data: dict[str, Any] = attrs.field(factory=dict)

    @property
    def is_terminal(self) -> bool:
        """Whether this event finishes its execution."""
        return self.type in TERMINAL_EVENT_TYPES

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form of the envelope, leaving out `step_id` and `attempt` when None."""
        document: dict[str, Any] = {
            "execution_id": self.execution_id,
            "seq": self.seq,
            "ts": self.ts,
            "elapsed": self.elapsed,
            "type": str(self.type),
        }
        if self.step_id is not None:
            document["step_id"] = self.step_id
        if self.attempt is not None:
            document["attempt"] = self.attempt
        document["data"] = self.data
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Event:
        """Build an event from its JSON form; unknown keys are ignored for forward compatibility.

        Raises:
            ValueError: a required key is missing or a value has the wrong type.
        """
        if not isinstance(document, Mapping):
            raise ValueError(f"an event must be a JSON object, got {type(document).__name__}")
        return cls(
            execution_id=_read(document, "execution_id", str),
            seq=_read(document, "seq", int),
            ts=_read(document, "ts", str),
            elapsed=float(_read(document, "elapsed", float)),
            type=_read(document, "type", str),
            step_id=_read(document, "step_id", str, optional=True),
            attempt=_read(document, "attempt", int, optional=True),
            data=dict(_read(document, "data", dict)),
        )


def _read(document: Mapping[str, Any], key: str, kind: type, *, optional: bool = False) -> Any:
    """Return `document[key]` after checking its JSON type (bools are not numbers here)."""
    value = document.get(key)
    if value is None:
        if optional:
            return None
        raise ValueError(f"event: missing required key {key!r}")
    accepted: tuple[type, ...] = (int, float) if kind is float else (kind,)
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ValueError(f"event: {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


@attrs.define
class EventFactory:
    """Stamps the events of one execution with gap-free `seq`, wall-clock `ts` and trio `elapsed`.

    For a resumed execution pass `next_seq` (last seq + 1) and `elapsed_offset` (the last recorded
    `elapsed`), so numbering and elapsed time carry on where the journal left off.
    """

    execution_id: str
    next_seq: int = 1
    elapsed_offset: float = 0.0
    started: float = attrs.field(factory=trio.current_time)
    # The run's clock, read directly: `trio.current_time` goes through two more calls, and every
    # step stamps three events.
    _now: Callable[[], float] = attrs.field(
        init=False, repr=False, eq=False, factory=lambda: trio.lowlevel.current_clock().current_time
    )

    def create(
        self,
        type: str,
        *,
        step_id: str | None = None,
        attempt: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """Return the next event of this execution, taking the next `seq`."""
        # Positional (the envelope's order): every step makes three of these.
        event = Event(
            self.execution_id,
            self.next_seq,
            _now_timestamp(),
            self.elapsed_offset + (self._now() - self.started),
            type,
            step_id,
            attempt,
            {} if data is None else data,
        )
        self.next_seq += 1
        return event
