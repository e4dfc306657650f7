"""OpenTelemetry for orchestr8: the spans and metrics the engine records, through the API only.

Spans (names, attributes and parentage are documented in `docs/observability.md`):

- `orchestrator.execute`, one per execution (`execution_span`);
- `agent.run`, one per attempt, a child of the execution (`attempt_span`);
- `resilience.retry`, the backoff wait between two attempts (`retry_span`);
- breaker transitions and refused attempts as span events (`record_breaker_transition`,
  `record_rejection`).

Metrics: `EngineMetrics`, from `engine_metrics()` (defined in `_metrics`, re-exported here).

Nothing is exported unless an SDK provider is installed: by the embedding program, by
`use_providers` (tests), or by `configure_from_environment` when the standard `OTEL_*` variables
ask for an exporter. While only the API's no-op providers are there, the span helpers skip
OpenTelemetry entirely and just bind the ids to the log context.

`opentelemetry` is imported inside these functions, never when orchestr8 is imported, so
`orchestr8 --help` stays fast. The span helpers are context managers made for trio: use them as
``with attempt_span(...):`` around an ``await``; the span is current inside, so tasks spawned
inside (trio copies the context) and libraries (the anthropic SDK's `gen_ai` spans) nest under it.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from .._version import __version__
from ._export import TelemetrySetup as TelemetrySetup
from ._export import configure_from_environment as configure_from_environment
from ._export import is_api_default
from ._export import shutdown_telemetry as shutdown_telemetry
from ._logging import LogContext, bind_log_context, current_log_context, reset_log_context
from ._metrics import BREAKER_STATE as BREAKER_STATE
from ._metrics import BREAKER_STATE_VALUES as BREAKER_STATE_VALUES
from ._metrics import EXECUTIONS_IN_FLIGHT as EXECUTIONS_IN_FLIGHT
from ._metrics import SCOPE_NAME, use_meter_provider
from ._metrics import STEP_DURATION as STEP_DURATION
from ._metrics import STEP_FAILED as STEP_FAILED
from ._metrics import STEP_RETRIES as STEP_RETRIES
from ._metrics import STEP_SUCCEEDED as STEP_SUCCEEDED
from ._metrics import EngineMetrics as EngineMetrics
from ._metrics import engine_metrics as engine_metrics
from ._metrics import meter as meter
from ._redaction import Redactor, default_redactor

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .._resilience._breaker import BreakerTransition

__all__ = [
    "EngineMetrics",
    "LogScope",
    "SpanScope",
    "TelemetrySetup",
    "attempt_span",
    "configure_from_environment",
    "engine_metrics",
    "execution_span",
    "meter",
    "record_breaker_transition",
    "record_error",
    "record_execution_result",
    "record_rejection",
    "retry_span",
    "shutdown_telemetry",
    "tracer",
    "tracing_enabled",
    "use_providers",
]

EXECUTION_SPAN: Final = "orchestrator.execute"
ATTEMPT_SPAN: Final = "agent.run"
RETRY_SPAN: Final = "resilience.retry"

_BREAKER_EVENTS: Final[Mapping[str, str]] = {
    "open": "breaker.opened",
    "forced_open": "breaker.opened",
    "half_open": "breaker.half_opened",
    "closed": "breaker.closed",
    "disabled": "breaker.disabled",
}
# Log-context ids and the span attributes they become.
_INHERITED: Final = (
    ("workflow_name", "workflow.name"),
    ("execution_id", "execution.id"),
    ("correlation_id", "correlation.id"),
    ("step_id", "step.id"),
    ("agent_id", "agent.id"),
    ("attempt", "attempt"),
)


class _State:
    """The providers orchestr8 records to, and what was resolved from them."""

    def __init__(self) -> None:
        self.tracer_provider: TracerProvider | None = None
        self.tracer: Tracer | None = None
        self.invalid_span: Span | None = None
        self.lock = threading.Lock()


_state = _State()
_UNRESOLVED: Final[Any] = object()
# The tracer an execution decided on (None: not tracing), so its attempts skip the lookup.
_active_tracer: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "orchestr8_tracer", default=_UNRESOLVED
)


def use_providers(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Record orchestr8's spans and metrics to these providers (None: the global ones)."""
    with _state.lock:
        _state.tracer_provider = tracer_provider
        _state.tracer = None
    use_meter_provider(meter_provider)


def tracer() -> Tracer:
    """The tracer of the instrumentation scope `orchestr8` (a no-op one when nothing records)."""
    from opentelemetry import trace

    provider = _state.tracer_provider
    if provider is None:
        return trace.get_tracer(SCOPE_NAME, __version__)
    return provider.get_tracer(SCOPE_NAME, __version__)


def _resolve_tracer() -> Tracer | None:
    """The tracer to record with, or None while only the API's no-op provider is installed."""
    found = _state.tracer
    if found is not None:
        return found
    from opentelemetry import trace

    provider = _state.tracer_provider
    if provider is None:
        provider = trace.get_tracer_provider()
    if is_api_default(provider):
        return None
    # A global provider can be set only once, so a real one found stays the one.
    found = _state.tracer = provider.get_tracer(SCOPE_NAME, __version__)
    return found


def _current_tracer() -> Tracer | None:
    found = _active_tracer.get()
    return _resolve_tracer() if found is _UNRESOLVED else found


def tracing_enabled() -> bool:
    """Whether spans are recorded: a provider other than the API's no-op one is in use."""
    return _resolve_tracer() is not None


_ATTRIBUTE_TYPES: Final = frozenset({str, int, float, bool})
_otel: tuple[Any, Any] | None = None


def _otel_modules() -> tuple[Any, Any]:
    """`opentelemetry.context` and `opentelemetry.trace`, imported once (spans are a hot path)."""
    global _otel
    if _otel is None:
        from opentelemetry import context, trace

        _otel = (context, trace)
    return _otel


def _invalid_span() -> Span:
    span = _state.invalid_span
    if span is None:
        from opentelemetry.trace import INVALID_SPAN

        span = _state.invalid_span = INVALID_SPAN
    return span


class SpanScope:
    """A span current for one block, with ids bound to the log context (see `execution_span`).

    Exiting with an exception records it (`record_error`); a cancellation after `deadline` (trio
    clock) is recorded as a timeout, any other cancellation as an event `cancelled`.
    """

    __slots__ = (
        "_attributes",
        "_deadline",
        "_decides",
        "_log_ids",
        "_log_token",
        "_name",
        "_outcome",
        "_parent",
        "_span",
        "_token",
        "_tracer_token",
    )

    def __init__(
        self,
        name: str,
        log_ids: Mapping[str, Any],
        attributes: Mapping[str, Any] | None = None,
        *,
        parent: Span | None = None,
        deadline: float = math.inf,
        outcome: str | None = None,
        decides: bool = False,
    ) -> None:
        """Prepare the span `name`, with the log context's ids and `attributes` as attributes.

        `decides` makes this scope choose, once, whether its block is traced.
        """
        self._name = name
        self._attributes = attributes
        self._log_ids = log_ids
        self._parent = parent
        self._deadline = deadline
        self._outcome = outcome
        self._decides = decides
        self._span: Span | None = None
        self._token: contextvars.Token[Context] | None = None
        self._log_token: contextvars.Token[Mapping[str, Any]] | None = None
        self._tracer_token: contextvars.Token[Any] | None = None

    def __enter__(self) -> Span:
        """Bind the ids, start the span and make it current; return it (a no-op span if off)."""
        self._log_token = bind_log_context(self._log_ids)
        if self._decides:
            found = _resolve_tracer()
            self._tracer_token = _active_tracer.set(found)
        else:
            found = _current_tracer()
        if found is None:
            return _invalid_span()
        context, trace = _otel_modules()
        bound = current_log_context()
        attributes = {}
        for key, attribute in _INHERITED:
            if key in bound:
                value = bound[key]
                attributes[attribute] = value if type(value) in _ATTRIBUTE_TYPES else str(value)
        if self._attributes:
            attributes.update(self._attributes)
        parent = None if self._parent is None else trace.set_span_in_context(self._parent)
        span = self._span = found.start_span(self._name, context=parent, attributes=attributes)
        self._token = context.attach(trace.set_span_in_context(span, parent))
        return span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record how the block ended, end the span and unbind the ids."""
        span = self._span
        try:
            if span is not None:
                context = _otel_modules()[0]
                self._span = None
                outcome = "succeeded" if error is None else self._record_exit(span, error)
                if self._outcome is not None:
                    span.set_attribute(self._outcome, outcome)
                if self._token is not None:
                    context.detach(self._token)
                    self._token = None
                span.end()
        finally:
            if self._tracer_token is not None:
                _active_tracer.reset(self._tracer_token)
                self._tracer_token = None
            if self._log_token is not None:
                reset_log_context(self._log_token)
                self._log_token = None

    def _record_exit(self, span: Span, error: BaseException) -> str:
        if isinstance(error, Exception):
            record_error(span, error)
            return "failed"
        if self._deadline != math.inf and _now() >= self._deadline:
            record_error(span, {"type": "timeout", "message": f"{self._name} ran out of time"})
            return "timed_out"
        span.add_event("cancelled", {"exception.type": _qualified_name(type(error))})
        return "cancelled"


class LogScope:
    """Binds ids to the log context for one block: what a span scope does when nothing traces."""

    __slots__ = ("_context",)

    def __init__(self, ids: Mapping[str, Any]) -> None:
        """Bind `ids` when the block is entered."""
        self._context = LogContext(ids)

    def __enter__(self) -> Span:
        """Bind the ids; return the no-op span, as a span scope does when nothing traces."""
        self._context.__enter__()
        return _invalid_span()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Unbind the ids."""
        self._context.__exit__(kind, error, traceback)


def _now() -> float:
    import trio

    return trio.current_time()


def execution_span(
    workflow_name: str,
    execution_id: str,
    correlation_id: str | None = None,
    *,
    resumed: bool = False,
    parent: Span | None = None,
) -> SpanScope:
    """The `orchestrator.execute` span around one execution (or one resumed run of it).

    Also binds `workflow_name`, `execution_id` and `correlation_id` (default: the execution id)
    to the log context, and decides once whether the execution is traced, so its attempts pay
    nothing for tracing when nothing records.
    """
    ids = {
        "workflow_name": workflow_name,
        "execution_id": execution_id,
        "correlation_id": correlation_id or execution_id,
    }
    attributes = {"execution.resumed": True} if resumed else None
    return SpanScope(EXECUTION_SPAN, ids, attributes, parent=parent, decides=True)


def attempt_span(
    step_id: str,
    agent_id: str,
    attempt: int,
    *,
    deadline: float = math.inf,
    parent: Span | None = None,
) -> SpanScope | LogScope:
    """The `agent.run` span around one attempt; a child of the current (execution) span.

    `deadline` is the attempt's trio-clock deadline (`AgentContext.deadline`): a cancellation
    at or after it is recorded as a timeout. The execution's ids come from the log context; the
    step's ids are bound to it for the block. The span gets `attempt.outcome`: `succeeded`,
    `failed`, `timed_out` or `cancelled`. In an execution that decided not to trace, only the
    ids are bound (a `LogScope`): attempts are the hot path.
    """
    ids = {"step_id": step_id, "agent_id": agent_id, "attempt": attempt}
    if parent is None and _active_tracer.get() is None:
        return LogScope(ids)
    return SpanScope(ATTEMPT_SPAN, ids, parent=parent, deadline=deadline, outcome="attempt.outcome")


def retry_span(
    delay: float,
    *,
    attempt: int | None = None,
    step_id: str | None = None,
    agent_id: str | None = None,
    parent: Span | None = None,
) -> SpanScope:
    """The `resilience.retry` span around a backoff wait of `delay` s after attempt `attempt`.

    The step's ids default to those bound to the log context.
    """
    attributes: dict[str, Any] = {"retry.delay": float(delay)}
    ids: dict[str, Any] = {}
    for key, value in (("attempt", attempt), ("step_id", step_id), ("agent_id", agent_id)):
        if value is not None:
            ids[key] = value
    if attempt is not None:
        attributes["retry.next_attempt"] = attempt + 1
    return SpanScope(RETRY_SPAN, ids, attributes, parent=parent)


def _qualified_name(kind: type) -> str:
    """The fully qualified name of an exception class, as `exception.type` and `error.type` hold it.

    `mypkg.mod.MyError`, `orchestr8._errors.CircuitOpenError`; builtins keep their bare name
    (`ValueError`), as OpenTelemetry's semantic conventions show them.
    """
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def record_error(
    span: Span, error: BaseException | Mapping[str, Any], *, redactor: Redactor | None = None
) -> None:
    """Mark `span` failed: status ERROR, `error.type`, and an `exception` event, all redacted.

    `error` is an exception or an error object `{type, message}` as events carry it. An
    exception gives the event its fully qualified type and its stacktrace (with its causes);
    `error.type` is always the event's `exception.type`.
    """
    if not span.is_recording():
        return
    import traceback

    from opentelemetry.trace import Status, StatusCode

    from .._errors import message_of

    redactor = redactor or default_redactor()
    if isinstance(error, BaseException):
        name = _qualified_name(type(error))
        message = redactor.redact_text(message_of(error))
        stack = redactor.redact_text("".join(traceback.format_exception(error)))
        span.add_event(
            "exception",
            {
                "exception.type": name,
                "exception.message": message,
                "exception.stacktrace": stack,
            },
        )
    else:
        name = str(error.get("type") or "error")
        message = redactor.redact_text(str(error.get("message") or ""))
        span.add_event("exception", {"exception.type": name, "exception.message": message})
    span.set_attribute("error.type", name)
    span.set_status(Status(StatusCode.ERROR, f"{name}: {message}" if message else name))


def record_execution_result(
    span: Span, status: str, error: BaseException | Mapping[str, Any] | None = None
) -> None:
    """Set `execution.status` on the execution span; a failed execution also gets its error.

    Pass the exception that failed the execution when there is one (a failed step's last error,
    the timeout), so the span's `exception` event has its stacktrace and fully qualified type;
    the error object `{type, message}` of the result is the fallback.
    """
    if not span.is_recording():
        return
    span.set_attribute("execution.status", str(status))
    if str(status) == "failed" and error is not None:
        record_error(span, error)


def record_breaker_transition(span: Span | None, transition: BreakerTransition) -> None:
    """Add a breaker transition to `span` (None: the current span) as an event.

    The event is named like the journal's (`breaker.opened`, `breaker.half_opened`,
    `breaker.closed`) with `breaker.key`, `breaker.from`, `breaker.to`, `breaker.reason` and,
    when the breaker opened, `breaker.retry_after`.
    """
    if span is None:
        if _current_tracer() is None:
            return
        from opentelemetry import trace

        span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {
        "breaker.key": transition.name,
        "breaker.from": str(transition.old),
        "breaker.to": str(transition.new),
        "breaker.reason": transition.reason,
    }
    if transition.retry_after is not None:
        attributes["breaker.retry_after"] = transition.retry_after
    span.add_event(_BREAKER_EVENTS.get(transition.new, "breaker.transition"), attributes)


def record_rejection(
    name: str, error: Exception, *, step_id: str, agent_id: str, attempt: int
) -> None:
    """Add an attempt a breaker, bulkhead or rate limiter refused to the current span, as an event.

    A refused attempt never runs, so it has no `agent.run` span: the event goes on the span
    current while the step runs (the execution's). `name` is the journal's event type,
    `breaker.rejected` or `attempt.rejected`; the attributes are `step.id`, `agent.id`,
    `attempt`, `rejection.by` (`circuit_breaker`, `bulkhead`, `rate_limiter`), `error.type`
    (fully qualified), `rejection.message` (redacted) and, when the refusal says how long to
    wait, `rejection.retry_after` in seconds.
    """
    if _current_tracer() is None:
        return
    from opentelemetry import trace

    from .._errors import BulkheadFullError, CircuitOpenError, message_of

    span = trace.get_current_span()
    if not span.is_recording():
        return
    if isinstance(error, CircuitOpenError):
        by = "circuit_breaker"
    else:
        by = "bulkhead" if isinstance(error, BulkheadFullError) else "rate_limiter"
    attributes: dict[str, Any] = {
        "step.id": step_id,
        "agent.id": agent_id,
        "attempt": attempt,
        "rejection.by": by,
        "error.type": _qualified_name(type(error)),
        "rejection.message": default_redactor().redact_text(message_of(error)),
    }
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, (int, float)) and math.isfinite(retry_after):
        attributes["rejection.retry_after"] = float(retry_after)
    span.add_event(str(name), attributes)
