"""Benchmarks of the telemetry layer: what tracing and metrics add per attempt and per step.

Prints one JSON object per line; every figure is a median over interleaved rounds, in µs.

- `attempt_overhead`: a bare loop awaiting an agent that returns at once (the baseline), and the
  same loop with `attempt_span` + `EngineMetrics.step_finished` around each call, (a) with only the
  OpenTelemetry API (no SDK: the default), inside and outside an `execution_span`, and (b) with
  the SDK recording every span (a no-op exporter behind a `SimpleSpanProcessor`) and metrics (an
  in-memory reader).
- `engine_step`: a real sequential workflow run by the engine, per step, plain and with the agent
  wrapped in `attempt_span` + metrics inside an `execution_span` (what the engine integration
  will do), with and without the SDK. The target is `sdk_ratio` < 2 (tracing on costs less than
  doubling a step) and near-zero `no_sdk_added_us`.

    python benchmarks/telemetry.py            # about 10 s on 2 cores
    python benchmarks/telemetry.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from orchestr8 import AgentContext, run_workflow
from orchestr8._observability._telemetry import (
    attempt_span,
    engine_metrics,
    execution_span,
    use_providers,
)


class NoOpExporter(SpanExporter):
    """Accepts every span and sends it nowhere: the SDK's own cost, without I/O."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def sdk_providers() -> tuple[TracerProvider, MeterProvider]:
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(NoOpExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    return tracer_provider, meter_provider


async def agent(attempt: int) -> int:
    return attempt


async def bare(count: int) -> None:
    for number in range(count):
        await agent(number)


async def instrumented(count: int) -> None:
    metrics = engine_metrics()
    for number in range(count):
        start = trio.current_time()
        with attempt_span("step", "echo", 1):
            await agent(number)
        metrics.step_finished("bench", "step", "echo", "succeeded", trio.current_time() - start)


async def instrumented_in_execution(count: int) -> None:
    with execution_span("bench", "e1"):
        await instrumented(count)


def timed(loop: Callable[[int], Awaitable[None]], count: int) -> float:
    began = time.perf_counter()
    trio.run(loop, count)
    return (time.perf_counter() - began) / count * 1e6


def median_rounds(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            samples[name].append(run())
    return {name: statistics.median(values) for name, values in samples.items()}


def with_providers(run: Callable[[], float], providers: tuple[Any, Any] | None) -> float:
    if providers is None:
        return run()
    use_providers(*providers)
    try:
        return run()
    finally:
        use_providers(None, None)


def attempt_overhead(count: int, rounds: int) -> dict[str, Any]:
    sdk = sdk_providers()
    figures = median_rounds(
        {
            "bare": lambda: timed(bare, count),
            "no_sdk": lambda: timed(instrumented_in_execution, count),
            "no_sdk_outside_execution": lambda: timed(instrumented, count),
            "sdk": lambda: with_providers(lambda: timed(instrumented_in_execution, count), sdk),
        },
        rounds,
    )
    base = figures["bare"]
    return {
        "bench": "attempt_overhead",
        "attempts": count,
        "baseline_bare_loop_us": round(base, 3),
        "no_sdk_added_us": round(figures["no_sdk"] - base, 3),
        "no_sdk_outside_execution_added_us": round(figures["no_sdk_outside_execution"] - base, 3),
        "sdk_added_us": round(figures["sdk"] - base, 3),
    }


def workflow(steps: int) -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "name": "telemetry-bench",
        "strategy": "sequential",
        "defaults": {"policy": {"circuit_breaker": None}},
        "steps": [{"id": f"s{index}", "agent": "work", "input": index} for index in range(steps)],
    }


async def plain_agent(input: Any, context: AgentContext) -> Any:
    return input


async def traced_agent(input: Any, context: AgentContext) -> Any:
    start = trio.current_time()
    with attempt_span(
        context.step_id, context.agent_id, context.attempt, deadline=context.deadline
    ):
        output = input
    engine_metrics().step_finished(
        context.workflow_name,
        context.step_id,
        context.agent_id,
        "succeeded",
        trio.current_time() - start,
    )
    return output


def engine_run(steps: int, traced: bool) -> float:
    document = workflow(steps)

    async def main() -> None:
        if not traced:
            await run_workflow(document, agents={"work": plain_agent})
            return
        with execution_span("telemetry-bench", "bench"):
            await run_workflow(document, agents={"work": traced_agent})

    began = time.perf_counter()
    trio.run(main)
    return (time.perf_counter() - began) / steps * 1e6


def engine_step(steps: int, rounds: int) -> dict[str, Any]:
    sdk = sdk_providers()
    figures = median_rounds(
        {
            "plain": lambda: engine_run(steps, False),
            "no_sdk": lambda: engine_run(steps, True),
            "sdk": lambda: with_providers(lambda: engine_run(steps, True), sdk),
        },
        rounds,
    )
    base = figures["plain"]
    return {
        "bench": "engine_step",
        "steps": steps,
        "baseline_per_step_us": round(base, 1),
        "no_sdk_added_us": round(figures["no_sdk"] - base, 1),
        "sdk_per_step_us": round(figures["sdk"], 1),
        "sdk_ratio": round(figures["sdk"] / base, 3),
        "target_sdk_ratio": 2.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    options = parser.parse_args()
    rounds = 3 if options.quick else 7
    print(json.dumps(attempt_overhead(2_000 if options.quick else 20_000, rounds)))
    print(json.dumps(engine_step(50 if options.quick else 300, rounds)))


if __name__ == "__main__":
    main()
