"""OpenTelemetry for orchestr8: the spans and metrics the engine records, through the API only.

Spans (names, attributes and parentage are documented in `docs/observability.md`):

- `orchestrator.execute`, one per execution (`execution_span`);
- `agent.run`, one per attempt, a child of the execution (`attempt_span`);
- `resilience.retry`, the backoff wait between two attempts (`retry_span`);
- `chat MODEL`, one per model API call of the `llm` agent, with the OpenTelemetry `gen_ai.*`
  attributes (`llm_call_span`, `record_llm_response`);
- breaker transitions and refused attempts as span events (`record_breaker_transition`,
  `record_rejection`).

Metrics: `EngineMetrics`, from `engine_metrics()` (defined in `_metrics`, re-exported here). The
tracing machinery (`tracer`, `use_providers`, `SpanScope`, `record_error`) is in `_tracing`, also
re-exported here beside the span helpers built on it.

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

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ._export import TelemetrySetup as TelemetrySetup
from ._export import configure_from_environment as configure_from_environment
from ._export import shutdown_telemetry as shutdown_telemetry
from ._metrics import BREAKER_STATE as BREAKER_STATE
from ._metrics import BREAKER_STATE_VALUES as BREAKER_STATE_VALUES
from ._metrics import EXECUTIONS_IN_FLIGHT as EXECUTIONS_IN_FLIGHT
from ._metrics import STEP_DURATION as STEP_DURATION
from ._metrics import STEP_FAILED as STEP_FAILED
from ._metrics import STEP_RETRIES as STEP_RETRIES
from ._metrics import STEP_SUCCEEDED as STEP_SUCCEEDED
from ._metrics import EngineMetrics as EngineMetrics
from ._metrics import engine_metrics as engine_metrics
from ._metrics import meter as meter
from ._redaction import default_redactor
from ._tracing import LogScope as LogScope
from ._tracing import SpanScope as SpanScope
from ._tracing import active_tracer, current_tracer, qualified_name
from ._tracing import record_error as record_error
from ._tracing import tracer as tracer
from ._tracing import tracing_enabled as tracing_enabled
from ._tracing import use_providers as use_providers

if TYPE_CHECKING:
    from opentelemetry.trace import Span

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
    "llm_call_span",
    "meter",
    "record_breaker_transition",
    "record_error",
    "record_execution_result",
    "record_llm_response",
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
    if parent is None and active_tracer.get() is None:
        return LogScope(ids)
    return SpanScope(ATTEMPT_SPAN, ids, parent=parent, deadline=deadline, outcome="attempt.outcome")


def llm_call_span(provider: str, system: str, model: str) -> SpanScope | LogScope:
    """The `chat MODEL` span around one model API call; a child of the current (attempt) span.

    Attributes (OpenTelemetry's `gen_ai` conventions): `gen_ai.operation.name` `chat`,
    `gen_ai.system` (the provider's kind: `anthropic`, `openai`), `gen_ai.request.model`, and
    `orchestr8.llm.provider` (the catalog's name: `local`). `record_llm_response` adds what
    the answer said. In an execution that decided not to trace, it is a `LogScope` binding no
    ids: nothing is recorded.
    """
    if active_tracer.get() is None:
        return LogScope(_NO_IDS)
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": system,
        "gen_ai.request.model": model,
        "orchestr8.llm.provider": provider,
    }
    return SpanScope(f"chat {model}", _NO_IDS, attributes, outcome="orchestr8.llm.outcome")


def record_llm_response(
    span: Span, response_model: str | None, input_tokens: int, output_tokens: int
) -> None:
    """Add a call's answer to its `llm_call_span`: `gen_ai.response.model` and token usage.

    `gen_ai.usage.input_tokens` and `gen_ai.usage.output_tokens`; a failed call that still
    reported usage records it too (without a response model).
    """
    if not span.is_recording():
        return
    if response_model:
        span.set_attribute("gen_ai.response.model", response_model)
    span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", output_tokens)


_NO_IDS: Final[Mapping[str, Any]] = {}


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
        if current_tracer() is None:
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
    if current_tracer() is None:
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
        "error.type": qualified_name(type(error)),
        "rejection.message": default_redactor().redact_text(message_of(error)),
    }
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, (int, float)) and math.isfinite(retry_after):
        attributes["rejection.retry_after"] = float(retry_after)
    span.add_event(str(name), attributes)
