"""Tests of `telemetry`: spans, parentage across trio tasks, errors, metrics, setup."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import Attributes, AttributeValue

from orchestr8 import AgentContext, open_runtime, run_workflow
from orchestr8._observability._logging import current_log_context, log_context
from orchestr8._observability._prometheus import DURATION_BUCKETS
from orchestr8._observability._redaction import Redactor, set_default_redactor
from orchestr8._observability._telemetry import (
    BREAKER_STATE,
    EXECUTIONS_IN_FLIGHT,
    STEP_DURATION,
    STEP_FAILED,
    STEP_RETRIES,
    STEP_SUCCEEDED,
    EngineMetrics,
    attempt_span,
    configure_from_environment,
    engine_metrics,
    execution_span,
    meter,
    record_breaker_transition,
    record_error,
    record_execution_result,
    retry_span,
    tracer,
    tracing_enabled,
    use_providers,
)
from orchestr8._resilience._breaker import BreakerState, BreakerTransition

SECRET = "sk-test-0123456789abcdef"


@attrs.define
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def metrics(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            metric
            for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
        ]

    def points(self, name: str) -> list[Any]:
        return [point for metric in self.metrics(name) for point in metric.data.data_points]


@pytest.fixture
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    use_providers(tracer_provider, meter_provider)
    try:
        yield Otel(exporter, reader)
    finally:
        use_providers(None, None)
        tracer_provider.shutdown()
        meter_provider.shutdown()


@pytest.fixture
def redactor() -> Iterator[Redactor]:
    redactor = Redactor(secret_values=[SECRET])
    previous = set_default_redactor(redactor)
    try:
        yield redactor
    finally:
        set_default_redactor(previous)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


# -- without an SDK ---------------------------------------------------------------------------


def test_nothing_records_without_a_provider() -> None:
    assert not tracing_enabled()
    with execution_span("wf", "e1") as span:
        assert not span.is_recording()
        assert current_log_context() == {
            "workflow_name": "wf",
            "execution_id": "e1",
            "correlation_id": "e1",
        }
        with attempt_span("s", "echo", 2) as inner:
            assert not inner.is_recording()
            assert current_log_context()["attempt"] == 2
        record_breaker_transition(
            None, BreakerTransition("k", BreakerState.CLOSED, BreakerState.OPEN, 1.0, "x")
        )
    assert current_log_context() == {}
    # The scope's tracer and meter are then the API's own, which record nothing.
    assert not tracer().start_span("probe").is_recording()
    assert type(meter()).__module__.startswith("opentelemetry.metrics")


def test_importing_orchestr8_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, orchestr8, orchestr8._observability._telemetry, "
        "orchestr8._observability._logging, orchestr8._observability._redaction, "
        "orchestr8._journal._timeline\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- spans -------------------------------------------------------------------------------------


async def test_attempts_in_child_tasks_are_children_of_the_execution(otel: Otel) -> None:
    async def step(step_id: str, attempts: int) -> None:
        for number in range(1, attempts + 1):
            with attempt_span(step_id, "echo", number):
                await trio.lowlevel.checkpoint()

    with execution_span("research", "e1", "req-7") as root:
        assert root.is_recording()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(step, "a", 1)
            nursery.start_soon(step, "b", 2)
    [execution] = otel.named("orchestrator.execute")
    attempts = otel.named("agent.run")
    assert len(attempts) == 3
    assert execution.parent is None
    assert execution.attributes == {
        "workflow.name": "research",
        "execution.id": "e1",
        "correlation.id": "req-7",
    }
    for span in attempts:
        assert parent_id(span) == execution.context.span_id
        assert span.context.trace_id == execution.context.trace_id
        assert span.attributes is not None
        assert span.attributes["workflow.name"] == "research"
        assert span.attributes["execution.id"] == "e1"
        assert span.attributes["correlation.id"] == "req-7"
        assert span.attributes["agent.id"] == "echo"
        assert span.attributes["attempt.outcome"] == "succeeded"
    assert sorted(
        (s.attributes["step.id"], s.attributes["attempt"])  # type: ignore[index]
        for s in attempts
    ) == [("a", 1), ("b", 1), ("b", 2)]


async def test_context_flows_through_the_engine_into_agents(otel: Otel) -> None:
    """The engine's spans nest: each attempt's agent.run under the execution's span."""
    seen: list[str] = []

    async def traced(input: Any, context: AgentContext) -> Any:
        span = trace.get_current_span()
        assert span.is_recording()
        seen.append(span.name)  # type: ignore[attr-defined]
        return input

    workflow = {
        "schema_version": "1.0",
        "name": "flow",
        "strategy": "parallel",
        "steps": [
            {"id": "one", "agent": "traced", "input": 1},
            {"id": "two", "agent": "traced", "input": 2},
        ],
    }
    result = await run_workflow(workflow, agents={"traced": traced})
    assert result.succeeded
    assert seen == ["agent.run", "agent.run"]
    [execution] = otel.named("orchestrator.execute")
    assert execution.attributes is not None
    assert execution.attributes["execution.id"] == result.execution_id
    assert execution.attributes["workflow.name"] == "flow"
    assert execution.attributes["execution.status"] == "succeeded"
    attempts = otel.named("agent.run")
    assert {span.attributes["step.id"] for span in attempts} == {"one", "two"}  # type: ignore[index]
    assert all(parent_id(span) == execution.context.span_id for span in attempts)


async def test_a_failed_attempt_records_the_redacted_error(otel: Otel, redactor: Redactor) -> None:
    with (
        execution_span("wf", "e1"),
        pytest.raises(ValueError, match="bad key"),
        attempt_span("s", "llm", 1),
    ):
        raise ValueError(f"bad key {SECRET}")
    [span] = otel.named("agent.run")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: bad key ***"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ValueError"
    assert span.attributes["attempt.outcome"] == "failed"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "bad key ***"
    assert SECRET not in str(event.attributes["exception.stacktrace"])
    assert "ValueError: bad key ***" in str(event.attributes["exception.stacktrace"])


async def test_a_deadline_is_a_timeout_and_a_cancel_is_not(
    otel: Otel, autojump_clock: trio.testing.MockClock
) -> None:
    deadline = trio.current_time() + 1.0
    with trio.move_on_at(deadline):
        with attempt_span("slow", "sleep", 1, deadline=deadline):
            await trio.sleep(5)
    with (
        trio.CancelScope() as scope,
        attempt_span("slow", "sleep", 2, deadline=trio.current_time() + 10),
    ):
        scope.cancel()
        await trio.sleep(5)
    timed_out, cancelled = otel.named("agent.run")
    assert timed_out.attributes is not None
    assert cancelled.attributes is not None
    assert timed_out.attributes["attempt.outcome"] == "timed_out"
    assert timed_out.status.status_code is StatusCode.ERROR
    assert timed_out.attributes["error.type"] == "timeout"
    assert cancelled.attributes["attempt.outcome"] == "cancelled"
    assert cancelled.status.status_code is StatusCode.UNSET
    assert [event.name for event in cancelled.events] == ["cancelled"]
    assert cancelled.events[0].attributes == {"exception.type": "trio.Cancelled"}


async def test_retry_span_takes_the_step_ids_from_the_log_context(
    otel: Otel, autojump_clock: trio.testing.MockClock
) -> None:
    with (
        execution_span("wf", "e1"),
        log_context(step_id="fetch", agent_id="http"),
        retry_span(2.5, attempt=1),
    ):
        await trio.sleep(2.5)
    [execution] = otel.named("orchestrator.execute")
    [retry] = otel.named("resilience.retry")
    assert parent_id(retry) == execution.context.span_id
    assert retry.attributes == {
        "workflow.name": "wf",
        "execution.id": "e1",
        "correlation.id": "e1",
        "step.id": "fetch",
        "agent.id": "http",
        "attempt": 1,
        "retry.delay": 2.5,
        "retry.next_attempt": 2,
    }
    assert retry.end_time is not None
    assert retry.start_time is not None


def test_an_explicit_parent_wins(otel: Otel) -> None:
    with execution_span("wf", "e1") as root:
        pass
    with attempt_span("s", "a", 1, parent=root):
        pass
    [execution] = otel.named("orchestrator.execute")
    [attempt] = otel.named("agent.run")
    assert parent_id(attempt) == execution.context.span_id


def test_breaker_transitions_are_span_events(otel: Otel) -> None:
    opened = BreakerTransition(
        "llm", BreakerState.CLOSED, BreakerState.OPEN, 3.0, "failure_threshold", retry_after=60.0
    )
    half = BreakerTransition(
        "llm", BreakerState.OPEN, BreakerState.HALF_OPEN, 63.0, "reset_timeout"
    )
    with execution_span("wf", "e1") as root:
        record_breaker_transition(None, opened)
    record_breaker_transition(root, half)  # ended: ignored by the SDK
    with execution_span("wf", "e2") as second:
        pass
    record_breaker_transition(second, half)
    first = otel.named("orchestrator.execute")[0]
    [event] = first.events
    assert event.name == "breaker.opened"
    assert event.attributes == {
        "breaker.key": "llm",
        "breaker.from": "closed",
        "breaker.to": "open",
        "breaker.reason": "failure_threshold",
        "breaker.retry_after": 60.0,
    }


def test_execution_result(otel: Otel, redactor: Redactor) -> None:
    with execution_span("wf", "ok", resumed=True) as span:
        record_execution_result(span, "succeeded")
    with execution_span("wf", "bad") as span:
        record_execution_result(
            span, "failed", {"type": "AgentError", "message": f"token {SECRET}", "step_id": "s"}
        )
    ok, bad = otel.named("orchestrator.execute")
    assert ok.attributes is not None
    assert bad.attributes is not None
    assert ok.attributes["execution.status"] == "succeeded"
    assert ok.attributes["execution.resumed"] is True
    assert ok.status.status_code is StatusCode.UNSET
    assert bad.attributes["execution.status"] == "failed"
    assert bad.status.description == "AgentError: token ***"


class QuotaExceededError(Exception):
    """An agent's own error, defined outside orchestr8, to check fully qualified types."""


async def over_quota(input: Any, context: AgentContext) -> Any:
    """An agent whose every call fails with its own error, carrying a secret in the message."""
    raise QuotaExceededError(f"quota used up for {SECRET}")


def exception_event(span: ReadableSpan) -> dict[str, Any]:
    """The attributes of the span's one `exception` event."""
    [event] = [event for event in span.events if event.name == "exception"]
    return dict(event.attributes or {})


async def test_a_failed_execution_records_its_step_error_with_type_and_stacktrace(
    otel: Otel, redactor: Redactor
) -> None:
    """The execution span's exception event has the agent error's qualified type and stacktrace."""
    workflow = {
        "schema_version": "1.0",
        "name": "quota",
        "steps": [
            {"id": "call", "agent": "quota", "input": 1, "policy": {"retry": {"max_attempts": 1}}}
        ],
    }
    result = await run_workflow(workflow, agents={"quota": over_quota})
    assert result.status == "failed"
    [execution] = otel.named("orchestrator.execute")
    qualified = f"{QuotaExceededError.__module__}.QuotaExceededError"
    event = exception_event(execution)
    assert event["exception.type"] == qualified
    assert execution.attributes is not None
    assert execution.attributes["error.type"] == qualified
    assert event["exception.message"] == "quota used up for ***"
    stack = str(event["exception.stacktrace"])
    assert stack.startswith("Traceback (most recent call last):")
    assert "in over_quota" in stack
    assert stack.rstrip().endswith(f"{qualified}: quota used up for ***")
    assert SECRET not in stack
    assert execution.status.description == f"{qualified}: quota used up for ***"


async def test_a_finished_execution_lets_go_of_the_exceptions_it_recorded(otel: Otel) -> None:
    """Once the span has the step's error, the run holds neither it nor its traceback's frames."""
    raised: list[weakref.ref[BaseException]] = []

    async def failing(input: Any, context: AgentContext) -> Any:
        error = QuotaExceededError("no quota")
        raised.append(weakref.ref(error))
        raise error

    workflow = {
        "schema_version": "1.0",
        "name": "quota",
        "steps": [
            {"id": "call", "agent": "quota", "input": 1, "policy": {"retry": {"max_attempts": 1}}}
        ],
    }
    async with open_runtime(agents={"quota": failing}) as runtime:
        handle = await runtime.start(workflow)
        result = await handle.wait()
        assert result.status == "failed"
        gc.collect()
        [error] = raised
        assert error() is None
    assert exception_event(otel.named("orchestrator.execute")[0])["exception.message"] == "no quota"


async def test_a_timed_out_execution_records_the_timeout_error(
    otel: Otel, autojump_clock: trio.testing.MockClock
) -> None:
    """An execution past its timeout records `orchestr8._errors.ExecutionTimeoutError`."""
    workflow = {
        "schema_version": "1.0",
        "name": "slow",
        "timeout": 1.0,
        "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 5}}],
    }
    result = await run_workflow(workflow)
    assert result.status == "failed"
    [execution] = otel.named("orchestrator.execute")
    event = exception_event(execution)
    assert event["exception.type"] == "orchestr8._errors.ExecutionTimeoutError"
    assert execution.attributes is not None
    assert execution.attributes["error.type"] == event["exception.type"]
    assert "ExecutionTimeoutError: the execution ran past its timeout of 1.0 s" in str(
        event["exception.stacktrace"]
    )


async def test_error_type_is_the_exception_type_on_every_failed_span(
    otel: Otel, redactor: Redactor
) -> None:
    """`error.type` equals the exception event's `exception.type`, qualified or builtin."""
    with execution_span("wf", "e1") as root:
        with pytest.raises(QuotaExceededError), attempt_span("s", "quota", 1):
            raise QuotaExceededError("no")
        record_error(root, KeyError("k"))
    with execution_span("wf", "e2") as second:
        record_execution_result(second, "failed", {"type": "AgentError", "message": "m"})
    spans = otel.named("agent.run") + otel.named("orchestrator.execute")
    types = []
    for span in spans:
        assert span.attributes is not None
        events = [event for event in span.events if event.name == "exception"]
        assert events
        assert all(event.attributes is not None for event in events)
        assert span.attributes["error.type"] == events[-1].attributes["exception.type"]  # type: ignore[index]
        types.append(span.attributes["error.type"])
    assert types == [
        f"{QuotaExceededError.__module__}.QuotaExceededError",
        "KeyError",
        "AgentError",
    ]


async def test_rejected_attempts_are_events_on_the_execution_span(
    otel: Otel, autojump_clock: trio.testing.MockClock
) -> None:
    """Attempts refused by a breaker, a bulkhead or a rate limiter are named span events."""
    once = {"retry": {"max_attempts": 1}}
    pool = {**once, "key": "pool", "bulkhead": {"max_concurrent": 1, "max_wait": 0}}
    quota = {**once, "key": "quota", "rate_limit": {"rate": 1.0, "burst": 1, "max_wait": 0}}
    workflow = {
        "schema_version": "1.0",
        "name": "guarded",
        "strategy": "parallel",
        "fail_fast": False,
        "steps": [
            {
                "id": "tripped",
                "agent": "fail",
                "input": 1,
                "policy": {
                    "retry": {"max_attempts": 2, "initial_delay": 1.0, "jitter": "none"},
                    "circuit_breaker": {
                        "failure_threshold": 1,
                        "reset_timeout": 60.0,
                        "half_open_requests": 1,
                    },
                },
            },
            {"id": "holder", "agent": "sleep", "input": {"seconds": 5}, "policy": pool},
            {"id": "crowded", "agent": "sleep", "input": {"seconds": 5}, "policy": pool},
            {"id": "first", "agent": "echo", "input": 1, "policy": quota},
            {"id": "second", "agent": "echo", "input": 2, "policy": quota},
        ],
    }
    result = await run_workflow(workflow)
    assert result.status == "failed"
    [execution] = otel.named("orchestrator.execute")
    rejected = {
        str(event.attributes["rejection.by"]): (event.name, dict(event.attributes))
        for event in execution.events
        if event.attributes is not None and "rejection.by" in event.attributes
    }
    assert set(rejected) == {"circuit_breaker", "bulkhead", "rate_limiter"}
    name, breaker = rejected["circuit_breaker"]
    assert name == "breaker.rejected"
    assert breaker["step.id"] == "tripped"
    assert breaker["agent.id"] == "fail"
    assert breaker["attempt"] == 2
    assert breaker["error.type"] == "orchestr8._errors.CircuitOpenError"
    assert breaker["rejection.retry_after"] == pytest.approx(59.0)
    assert "open" in str(breaker["rejection.message"])
    name, bulkhead = rejected["bulkhead"]
    assert name == "attempt.rejected"
    assert bulkhead["step.id"] in {"holder", "crowded"}
    assert bulkhead["attempt"] == 1
    assert bulkhead["error.type"] == "orchestr8._errors.BulkheadFullError"
    assert "rejection.retry_after" not in bulkhead
    name, limited = rejected["rate_limiter"]
    assert name == "attempt.rejected"
    assert limited["step.id"] in {"first", "second"}
    assert limited["error.type"] == "orchestr8._errors.RateLimitedError"
    assert limited["rejection.retry_after"] == pytest.approx(1.0)
    journaled = {step.error["type"] for step in result.steps.values() if step.error}
    assert journaled == {"CircuitOpenError", "BulkheadFullError", "RateLimitedError"}


async def test_rejections_cost_nothing_when_nothing_traces(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without a provider a rejected attempt is journaled as before, and records no span event."""
    assert not tracing_enabled()
    policy = {"retry": {"max_attempts": 1}, "bulkhead": {"max_concurrent": 1, "max_wait": 0}}
    workflow = {
        "schema_version": "1.0",
        "name": "untraced",
        "strategy": "parallel",
        "fail_fast": False,
        "steps": [
            {"id": name, "agent": "sleep", "input": {"seconds": 1}, "policy": policy}
            for name in ("a", "b")
        ],
    }
    result = await run_workflow(workflow)
    statuses = sorted(str(step.status) for step in result.steps.values())
    assert statuses == ["failed", "succeeded"]


class WatchedSpan(trace.NonRecordingSpan):
    """A span that records nothing and notes every write made to it anyway."""

    def __init__(self) -> None:
        super().__init__(trace.INVALID_SPAN_CONTEXT)
        self.writes: list[str] = []

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.writes.append(f"attribute {key}")

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        self.writes.append(f"event {name}")

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self.writes.append("status")


def test_record_error_on_a_non_recording_span_is_harmless() -> None:
    """Errors and results given to a span that does not record are not even written to it."""
    span = WatchedSpan()
    record_error(span, ValueError("x"))
    record_error(span, {"type": "AgentError", "message": "x"})
    record_execution_result(span, "failed", ValueError("x"))
    assert span.writes == []


# -- metrics -----------------------------------------------------------------------------------


def test_engine_metrics(otel: Otel) -> None:
    metrics = engine_metrics()
    assert engine_metrics() is metrics
    metrics.execution_started("wf")
    metrics.execution_started("wf")
    metrics.execution_finished("wf")
    metrics.step_finished("wf", "a", "echo", "succeeded", 0.25)
    metrics.step_finished("wf", "a", "echo", "succeeded", 0.75)
    metrics.step_finished("wf", "b", "llm", "failed", 2.0)
    metrics.step_finished("wf", "c", "llm", "cancelled", 0.5)
    metrics.retry_scheduled("wf", "b", "llm")
    metrics.retry_scheduled("wf", "b", "llm")
    metrics.breaker_transition(
        BreakerTransition("llm", BreakerState.CLOSED, BreakerState.OPEN, 1.0, "failure_threshold")
    )
    metrics.breaker_transition(
        BreakerTransition("http", BreakerState.OPEN, BreakerState.HALF_OPEN, 1.0, "reset_timeout")
    )
    labels_a = {"workflow.name": "wf", "step.id": "a", "agent.id": "echo"}
    labels_b = {"workflow.name": "wf", "step.id": "b", "agent.id": "llm"}
    [in_flight] = otel.points(EXECUTIONS_IN_FLIGHT)
    assert (dict(in_flight.attributes), in_flight.value) == ({"workflow.name": "wf"}, 1)
    [succeeded] = otel.points(STEP_SUCCEEDED)
    assert (dict(succeeded.attributes), succeeded.value) == (labels_a, 2)
    [failed] = otel.points(STEP_FAILED)
    assert (dict(failed.attributes), failed.value) == (labels_b, 1)
    [retries] = otel.points(STEP_RETRIES)
    assert (dict(retries.attributes), retries.value) == (labels_b, 2)
    durations = {
        (point.attributes["step.id"], point.attributes["step.status"]): (point.count, point.sum)
        for point in otel.points(STEP_DURATION)
    }
    assert durations == {
        ("a", "succeeded"): (2, 1.0),
        ("b", "failed"): (1, 2.0),
        ("c", "cancelled"): (1, 0.5),
    }
    breakers = {
        point.attributes["breaker.key"]: point.value for point in otel.points(BREAKER_STATE)
    }
    assert breakers == {"llm": 2, "http": 1}


def test_step_durations_are_seconds_in_the_buckets_of_the_metrics_endpoint(otel: Otel) -> None:
    """`orchestr8.step.duration` has unit `s` and the explicit buckets `/metrics` uses."""
    engine_metrics().step_finished("wf", "long", "sleep", "succeeded", 45.0)
    [metric] = otel.metrics(STEP_DURATION)
    assert metric.unit == "s"
    [point] = metric.data.data_points
    assert point.sum == 45.0
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    # 45 s falls between the 30 s and 60 s bounds: the SDK's default buckets stop at 10 s.
    assert point.bucket_counts[DURATION_BUCKETS.index(60.0)] == 1
    assert sum(point.bucket_counts) == 1


def test_metrics_are_no_ops_without_a_provider() -> None:
    """Instruments made while no provider is set record nothing, even once one is set."""
    metrics = EngineMetrics(meter())
    metrics.execution_started("wf")
    metrics.step_finished("wf", "a", "echo", "succeeded", 0.1)
    metrics.retry_scheduled("wf", "a", "echo")
    metrics.execution_finished("wf")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    use_providers(None, provider)
    try:
        metrics.step_finished("wf", "b", "echo", "failed", 0.1)
        data = reader.get_metrics_data()
        assert data is None or not data.resource_metrics
        EngineMetrics(meter()).step_finished("wf", "c", "echo", "failed", 0.1)
        data = reader.get_metrics_data()
        assert data is not None
        [scope] = data.resource_metrics[0].scope_metrics
        assert STEP_FAILED in {metric.name for metric in scope.metrics}
    finally:
        use_providers(None, None)
        provider.shutdown()


# -- configure_from_environment ----------------------------------------------------------------


def test_no_exporter_without_otel_variables() -> None:
    setup = configure_from_environment({"PATH": "/bin"})
    assert not setup.exporting
    assert setup.problems == ()
    assert (
        configure_from_environment(
            {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}
        ).problems
        == ()
    )
    assert not configure_from_environment(
        {
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x",
        }
    ).exporting


def test_a_missing_otlp_exporter_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="orchestr8.telemetry"):
        setup = configure_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"})
    assert not setup.exporting
    assert len(setup.problems) == 2
    assert all("pip install 'orchestr8[otel]'" in problem for problem in setup.problems)
    assert "opentelemetry-exporter-otlp-proto-http" in setup.problems[0]
    assert len(caplog.records) == 2
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"


def test_unsupported_exporters_and_protocols_are_reported() -> None:
    setup = configure_from_environment({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert setup.problems == (
        "traces: exporter 'zipkin' is not supported: use one of otlp, console",
    )
    setup = configure_from_environment(
        {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    )
    assert setup.problems == (
        "metrics: OTLP protocol 'http/json' is not supported: use http/protobuf or grpc",
    )


def test_console_exporter_end_to_end() -> None:
    code = """
import trio
from orchestr8._observability._telemetry import (
    attempt_span, configure_from_environment, execution_span, shutdown_telemetry, engine_metrics)
setup = configure_from_environment()
print(setup.traces, setup.metrics, setup.problems)
async def main():
    with execution_span("wf", "e1"):
        with attempt_span("s", "echo", 1):
            await trio.sleep(0)
    engine_metrics().step_finished("wf", "s", "echo", "succeeded", 0.01)
trio.run(main)
shutdown_telemetry()
"""
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "demo",
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "('console',) ('console',) ()"
    decoder = json.JSONDecoder()
    documents, text = [], out.stderr
    while text.strip():
        document, end = decoder.raw_decode(text.lstrip())
        documents.append(document)
        text = text.lstrip()[end:]
    names = [document.get("name") for document in documents]
    assert "orchestrator.execute" in names
    assert "agent.run" in names
    [span] = [document for document in documents if document.get("name") == "agent.run"]
    assert span["resource"]["attributes"]["service.name"] == "demo"
    # Through the global meter provider too, the histogram is in seconds and the same buckets.
    [duration] = [
        metric
        for document in documents
        for resource in document.get("resource_metrics", ())
        for scope in resource["scope_metrics"]
        for metric in scope["metrics"]
        if metric["name"] == "orchestr8.step.duration"
    ]
    assert duration["unit"] == "s"
    [point] = duration["data"]["data_points"]
    assert tuple(point["explicit_bounds"]) == DURATION_BUCKETS
    assert point["sum"] == 0.01


# -- the engine, end to end -------------------------------------------------------------------


async def test_engine_run_with_failures_and_retries_traces_and_counts_them(
    otel: Otel, autojump_clock: trio.testing.MockClock
) -> None:
    """Parallel steps, retries and a failure: span tree, retry spans, counters and histogram."""
    workflow = {
        "schema_version": "1.0",
        "name": "known",
        "fail_fast": False,
        "steps": [
            {
                "id": "flaky",
                "agent": {"id": "fail", "config": {"times": 2}},
                "input": 1,
                "policy": {"retry": {"max_attempts": 3, "initial_delay": 1.0, "jitter": "none"}},
            },
            {
                "id": "broken",
                "agent": "fail",
                "input": 2,
                "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.5, "jitter": "none"}},
            },
            {"id": "fine", "agent": "echo", "input": 3},
        ],
    }
    result = await run_workflow(workflow)
    assert result.status == "failed"
    [execution] = otel.named("orchestrator.execute")
    assert execution.attributes is not None
    assert execution.attributes["execution.status"] == "failed"
    assert execution.status.status_code is StatusCode.ERROR
    attempts = otel.named("agent.run")
    by_step: dict[str, list[ReadableSpan]] = {}
    for span in attempts:
        assert span.attributes is not None
        by_step.setdefault(str(span.attributes["step.id"]), []).append(span)
    assert {step: len(spans) for step, spans in by_step.items()} == {
        "flaky": 3,
        "broken": 2,
        "fine": 1,
    }
    assert all(parent_id(span) == execution.context.span_id for span in attempts)
    outcomes = sorted(
        str(span.attributes["attempt.outcome"])  # type: ignore[index]
        for span in by_step["flaky"]
    )
    assert outcomes == ["failed", "failed", "succeeded"]
    retries = otel.named("resilience.retry")
    assert sorted(
        (span.attributes["step.id"], span.attributes["retry.delay"])  # type: ignore[index]
        for span in retries
    ) == [("broken", 0.5), ("flaky", 1.0), ("flaky", 2.0)]
    assert all(parent_id(span) == execution.context.span_id for span in retries)
    labels = {"workflow.name": "known"}
    succeeded = {p.attributes["step.id"]: p.value for p in otel.points(STEP_SUCCEEDED)}
    failed = {p.attributes["step.id"]: p.value for p in otel.points(STEP_FAILED)}
    retried = {p.attributes["step.id"]: p.value for p in otel.points(STEP_RETRIES)}
    assert succeeded == {"flaky": 1, "fine": 1}
    assert failed == {"broken": 1}
    assert retried == {"flaky": 2, "broken": 1}
    durations = {p.attributes["step.id"]: p for p in otel.points(STEP_DURATION)}
    assert durations["flaky"].sum == pytest.approx(3.0)
    assert durations["broken"].sum == pytest.approx(0.5)
    in_flight = [p for p in otel.points(EXECUTIONS_IN_FLIGHT) if p.attributes == labels]
    assert [p.value for p in in_flight] == [0]


# -- model calls ------------------------------------------------------------------------------


async def test_each_model_call_is_a_chat_span_with_gen_ai_attributes(otel: Otel) -> None:
    """An llm step's API call is a `chat MODEL` span under its attempt, with `gen_ai.*` set."""
    from orchestr8.testing import FakeAnthropic, use_fake_anthropic

    fake = FakeAnthropic()
    fake.reply_text("hi", input_tokens=12, output_tokens=5, model="claude-x-2026")
    document = {
        "schema_version": "1.1",
        "name": "traced-llm",
        "steps": [
            {"id": "ask", "agent": {"id": "llm", "config": {"model": "claude-x"}}, "input": "hi"}
        ],
    }
    with fake, use_fake_anthropic(fake):
        async with open_runtime() as runtime:
            result = await (await runtime.start(document)).wait()
    assert result.status == "succeeded", result.error
    (chat,) = otel.named("chat claude-x")
    (attempt,) = otel.named("agent.run")
    assert parent_id(chat) == attempt.context.span_id
    attributes = dict(chat.attributes or {})
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-x",
        "orchestr8.llm.provider": "anthropic",
        "gen_ai.response.model": "claude-x-2026",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "orchestr8.llm.outcome": "succeeded",
    }
    assert {name: attributes.get(name) for name in expected} == expected


def test_a_failed_model_call_span_records_the_error_and_its_usage(otel: Otel) -> None:
    """A call that fails is a failed span; usage the provider still reported is on it."""
    from orchestr8._observability._telemetry import llm_call_span, record_llm_response

    def fail_after_usage() -> None:
        with llm_call_span("local", "openai", "m") as span:
            record_llm_response(span, None, 3, 0)
            raise RuntimeError("boom")

    with execution_span("w", "e-1"), attempt_span("s", "llm", 1), pytest.raises(RuntimeError):
        fail_after_usage()
    (chat,) = otel.named("chat m")
    attributes = dict(chat.attributes or {})
    assert attributes["orchestr8.llm.outcome"] == "failed"
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert "gen_ai.response.model" not in attributes
    assert chat.status.status_code == StatusCode.ERROR


def test_in_an_untraced_execution_a_model_call_records_nothing() -> None:
    """In an execution that traces nothing, the call span is a no-op that binds no ids."""
    from orchestr8._observability._telemetry import LogScope, llm_call_span

    with execution_span("w", "e-1"):
        scope = llm_call_span("anthropic", "anthropic", "m")
        assert isinstance(scope, LogScope)
        with scope as span:
            assert not span.is_recording()
