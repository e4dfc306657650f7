"""Tracing machinery: which tracer records, and span scopes that bind ids and record how blocks end.

`use_providers` and the installed providers decide the tracer; while only the API's no-op
provider is there, nothing is traced and no span is started. An execution decides once whether it
is traced (`active_tracer`), so its attempts skip the lookup. A `SpanScope` makes a span current
for one block, with the log context's ids as attributes, and records an exception, a timeout or a
cancellation when the block ends that way (`record_error`); a `LogScope` only binds the ids.
orchestr8's own spans and span events, built on these, are in `_telemetry`.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from .._version import __version__
from ._export import is_api_default
from ._logging import bind_log_context, current_log_context, reset_log_context
from ._metrics import SCOPE_NAME, use_meter_provider
from ._redaction import Redactor, default_redactor

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

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
#: The tracer an execution decided on (None: not tracing), so its attempts skip the lookup.
active_tracer: contextvars.ContextVar[Any] = contextvars.ContextVar(
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


def current_tracer() -> Tracer | None:
    """The tracer the current execution decided on, else the one resolved now (None: off)."""
    found = active_tracer.get()
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
            self._tracer_token = active_tracer.set(found)
        else:
            found = current_tracer()
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
                active_tracer.reset(self._tracer_token)
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
        span.add_event("cancelled", {"exception.type": qualified_name(type(error))})
        return "cancelled"


class LogScope:
    """Binds ids to the log context for one block: what a span scope does when nothing traces."""

    __slots__ = ("_ids", "_token")

    def __init__(self, ids: Mapping[str, Any]) -> None:
        """Bind `ids` when the block is entered."""
        self._ids = ids
        self._token: contextvars.Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> Span:
        """Bind the ids; return the no-op span, as a span scope does when nothing traces."""
        # Bound directly, not through a `LogContext`: every attempt of every step enters one.
        self._token = bind_log_context(self._ids)
        return _invalid_span()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Unbind the ids."""
        if self._token is not None:
            reset_log_context(self._token)
            self._token = None


def _now() -> float:
    import trio

    return trio.current_time()


def qualified_name(kind: type) -> str:
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
        name = qualified_name(type(error))
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
