"""Tests for the tracing machinery: which tracer records, and span scopes around one block."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
import trio.testing
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from orchestr8._observability._logging import current_log_context
from orchestr8._observability._tracing import (
    LogScope,
    SpanScope,
    active_tracer,
    qualified_name,
    tracing_enabled,
    use_providers,
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_providers(provider, None)
    try:
        yield exporter
    finally:
        use_providers(None, None)
        provider.shutdown()


def test_use_providers_turns_tracing_on_and_off() -> None:
    """Tracing is on exactly while a real provider is in use."""
    assert not tracing_enabled()
    provider = TracerProvider(shutdown_on_exit=False)
    use_providers(provider, None)
    try:
        assert tracing_enabled()
    finally:
        use_providers(None, None)
        provider.shutdown()
    assert not tracing_enabled()


def test_a_log_scope_binds_ids_and_returns_a_span_that_records_nothing() -> None:
    """A log scope binds its ids for the block only, and its span is the no-op one."""
    with LogScope({"step_id": "s"}) as span:
        assert current_log_context() == {"step_id": "s"}
        assert not span.is_recording()
    assert current_log_context() == {}


def test_a_deciding_scope_fixes_the_tracer_for_its_block(spans: InMemorySpanExporter) -> None:
    """A scope that decides records its choice for the block and forgets it afterwards."""
    with SpanScope("outer", {"execution_id": "e1"}, decides=True) as span:
        assert span.is_recording()
        decided = active_tracer.get()
        assert decided is not None
    assert active_tracer.get() is not decided
    (finished,) = spans.get_finished_spans()
    assert finished.name == "outer"
    assert finished.attributes == {"execution.id": "e1"}


def test_an_error_leaving_a_scope_fails_its_span(spans: InMemorySpanExporter) -> None:
    """An exception leaving the block marks the span failed with the exception's full type."""
    with pytest.raises(KeyError), SpanScope("work", {}, outcome="work.outcome"):
        raise KeyError("x")
    (finished,) = spans.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.attributes is not None
    assert finished.attributes["error.type"] == "KeyError"
    assert finished.attributes["work.outcome"] == "failed"


def test_a_cancellation_past_the_deadline_is_a_timeout(spans: InMemorySpanExporter) -> None:
    """Cancelled at or after its deadline, a scope records a timeout, not a cancellation."""

    async def main() -> None:
        with trio.move_on_after(1.0):
            deadline = trio.current_time() + 1.0
            with SpanScope("work", {}, deadline=deadline, outcome="work.outcome"):
                await trio.sleep_forever()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    (finished,) = spans.get_finished_spans()
    assert finished.attributes is not None
    assert finished.attributes["work.outcome"] == "timed_out"


def test_qualified_names_keep_builtins_bare() -> None:
    """Builtin exception types keep their bare name; others get their module."""
    assert qualified_name(ValueError) == "ValueError"
    assert qualified_name(SpanScope) == "orchestr8._observability._tracing.SpanScope"
