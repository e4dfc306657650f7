"""Engine benchmarks: per-step overhead, a wide fan-out, and CLI start-up, each beside a baseline.

Prints JSON lines. Every figure is measured beside a raw-trio (or bare-Python) baseline in the same
run, so the numbers say what orchestr8 adds rather than how fast this machine is.

    python benchmarks/engine.py            # everything (a 100,000-step fan-out included)
    python benchmarks/engine.py --quick    # smaller sizes, for a smoke run
    python benchmarks/engine.py --case fan_out --size 100000 --repeats 1   # one case

`map` runs a 100,000-item map (`for_each`) of the echo agent: wall time and peak RSS.
`map_vs_fan_out` runs a map and a static fan-out of equal size in one process (best of the
repeats each) and reports the per-item cost beside the per-step cost, and their ratio.

`template_render` times rendering a typical step input (four references) beside building the
same value by hand; it replaces a unit test that asserted the time.

Each case runs in a fresh subprocess, so peak RSS belongs to that case alone.
`sequential_memory_traced` runs the same workflow with the OpenTelemetry SDK recording every span
and metric (a no-op exporter) beside the untraced run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent


def sequential_workflow(steps: int) -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "name": f"sequential-{steps}",
        "strategy": "sequential",
        "defaults": {"policy": {"circuit_breaker": None}},
        "steps": [{"id": f"s{i}", "agent": "echo", "input": i} for i in range(steps)],
    }


def fan_out_workflow(steps: int) -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "name": f"fan-out-{steps}",
        "strategy": "parallel",
        "defaults": {"policy": {"circuit_breaker": None}},
        "steps": [{"id": f"s{i}", "agent": "echo", "input": i} for i in range(steps)],
    }


def map_workflow(items: int) -> dict[str, Any]:
    """One map step running the echo agent over `inputs.items` (`items` of them)."""
    return {
        "schema_version": "1.1",
        "name": f"map-{items}",
        "defaults": {"policy": {"circuit_breaker": None}},
        "steps": [{"id": "each", "agent": "echo", "for_each": "inputs.items", "input": "${item}"}],
    }


async def _echo(value: Any) -> Any:
    await trio.lowlevel.checkpoint()
    return value


async def baseline_sequential(steps: int) -> float:
    """Raw trio: one task spawned and joined per step, in order; returns seconds."""
    started = time.perf_counter()
    for index in range(steps):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_echo, index)
    return time.perf_counter() - started


async def orchestr8_run(
    workflow: dict[str, Any], journal: str | None, inputs: dict[str, Any] | None = None
) -> float:
    """Run the workflow in a fresh runtime; returns seconds for start-to-result (load excluded)."""
    from orchestr8 import ExecutionStatus, open_runtime

    async with open_runtime(journal=journal) as runtime:
        loaded = runtime.load(workflow)
        started = time.perf_counter()
        handle = await runtime.start(loaded, inputs)
        result = await handle.wait()
        elapsed = time.perf_counter() - started
        await runtime.journal.flush()
        flushed = time.perf_counter() - started
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    return flushed if journal else elapsed


async def baseline_fan_out(steps: int) -> float:
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for index in range(steps):
            nursery.start_soon(_echo, index)
    return time.perf_counter() - started


TEMPLATE_INPUTS: dict[str, Any] = {"topic": "cats", "tags": ["a", "b"]}
TEMPLATE_OUTPUTS: dict[str, Any] = {
    "search": {"items": [{"url": "u1"}, {"url": "u2"}], "q": "cats"},
}


def template_render(renders: int) -> tuple[float, float]:
    """Seconds per render of a typical step input with four references, and by hand."""
    from orchestr8._workflow._expressions import compile_template

    template = compile_template(
        {
            "prompt": "Summarise ${steps.search.output.q} for ${inputs.topic}",
            "n": 3,
            "options": {"tags": "${inputs.tags}", "first": "${steps.search.output.items[0].url}"},
        }
    )
    inputs, outputs = TEMPLATE_INPUTS, TEMPLATE_OUTPUTS
    started = time.perf_counter()
    for _ in range(renders):
        template.render(inputs, outputs)
    rendered = (time.perf_counter() - started) / renders
    started = time.perf_counter()
    for _ in range(renders):
        search = outputs["search"]
        {
            "prompt": f"Summarise {search['q']} for {inputs['topic']}",
            "n": 3,
            "options": {"tags": inputs["tags"], "first": search["items"][0]["url"]},
        }
    by_hand = (time.perf_counter() - started) / renders
    return rendered, by_hand


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: str, size: int, repeats: int) -> dict[str, Any]:
    """Run one case in this process and return its figures, tuned as `orchestr8 run` is."""
    from orchestr8._execution._runtime import tune_garbage_collection

    tune_garbage_collection()
    if case == "sequential_memory" or case == "sequential_sqlite":
        workflow = sequential_workflow(size)
        runs, baselines = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as directory:
                journal = None if case == "sequential_memory" else f"{directory}/journal.db"
                runs.append(trio.run(orchestr8_run, workflow, journal))
            baselines.append(trio.run(baseline_sequential, size))
        per_step = statistics.median(runs) / size * 1e6
        baseline = statistics.median(baselines) / size * 1e6
        return {
            "bench": case,
            "steps": size,
            "per_step_us": round(per_step, 1),
            "baseline_per_step_us": round(baseline, 1),
            "added_per_step_us": round(per_step - baseline, 1),
            "target_per_step_us": 50 if case == "sequential_memory" else 150,
        }
    if case == "sequential_memory_traced":
        # Tracing on: the OpenTelemetry SDK records every span (a no-op exporter behind a simple
        # processor) and every metric (an in-memory reader), beside the same run untraced.
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        from orchestr8._observability._telemetry import use_providers

        class NoOpExporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(NoOpExporter()))
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        workflow = sequential_workflow(size)
        # Providers are installed once, as a process does (installing them remakes the engine's
        # instruments): every untraced run, then every traced run, one warm-up run each.
        use_providers(None, None)
        untraced = [trio.run(orchestr8_run, workflow, None) for _ in range(repeats + 1)][1:]
        use_providers(tracer_provider, meter_provider)
        traced = [trio.run(orchestr8_run, workflow, None) for _ in range(repeats + 1)][1:]
        use_providers(None, None)
        on = statistics.median(traced) / size * 1e6
        off = statistics.median(untraced) / size * 1e6
        return {
            "bench": case,
            "steps": size,
            "traced_per_step_us": round(on, 1),
            "untraced_per_step_us": round(off, 1),
            "ratio": round(on / off, 2),
            "target_ratio": 2.0,
        }
    if case == "fan_out":
        baseline_rss_before = peak_rss_mb()
        baseline = trio.run(baseline_fan_out, size)
        wall = trio.run(orchestr8_run, fan_out_workflow(size), None)
        return {
            "bench": "fan_out",
            "steps": size,
            "wall_s": round(wall, 3),
            "baseline_wall_s": round(baseline, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "interpreter_rss_mb": round(baseline_rss_before, 1),
            # Issue 14's targets for 100,000 steps; the 10,000-step ones from before.
            "target_wall_s": 10.0 if size >= 100_000 else 2.0,
            "target_rss_mb": 500 if size >= 100_000 else 300,
        }
    if case == "map":
        before = peak_rss_mb()
        wall = trio.run(orchestr8_run, map_workflow(size), None, {"items": list(range(size))})
        return {
            "bench": "map",
            "items": size,
            "wall_s": round(wall, 3),
            "per_item_us": round(wall / size * 1e6, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "interpreter_rss_mb": round(before, 1),
            "target_wall_s": 10.0,
            "target_rss_mb": 500,
        }
    if case == "map_vs_fan_out":
        inputs = {"items": list(range(size))}
        mapped = min(
            trio.run(orchestr8_run, map_workflow(size), None, inputs) for _ in range(repeats)
        )
        static = min(trio.run(orchestr8_run, fan_out_workflow(size), None) for _ in range(repeats))
        return {
            "bench": case,
            "items": size,
            "map_per_item_us": round(mapped / size * 1e6, 1),
            "fan_out_per_step_us": round(static / size * 1e6, 1),
            "ratio": round(mapped / static, 2),
            "target_ratio": 1.2,
        }
    if case == "template_render":
        timings = [template_render(size) for _ in range(repeats)]
        rendered = statistics.median(rendered for rendered, _ in timings) * 1e6
        by_hand = statistics.median(by_hand for _, by_hand in timings) * 1e6
        return {
            "bench": case,
            "renders": size,
            "per_render_us": round(rendered, 2),
            "baseline_by_hand_us": round(by_hand, 2),
            "target_per_render_us": 50,
        }
    raise SystemExit(f"unknown case {case!r}")


def startup(repeats: int) -> dict[str, Any]:
    """Time `orchestr8 run examples/hello.json` beside `python -c pass` and `import trio`."""

    def timed(command: list[str]) -> float:
        samples = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as directory:
                started = time.perf_counter()
                subprocess.run(
                    command,
                    check=True,
                    capture_output=True,
                    cwd=directory,
                    env={"ORCHESTR8_JOURNAL": f"{directory}/journal.db", "PATH": ""},
                )
                samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    orchestr8_bin = str(Path(sys.executable).with_name("orchestr8"))
    run = timed([orchestr8_bin, "run", str(ROOT / "examples" / "hello.json")])
    bare = timed([sys.executable, "-c", "pass"])
    with_trio = timed([sys.executable, "-c", "import trio"])
    return {
        "bench": "cli_run_hello",
        "wall_s": round(run, 3),
        "baseline_python_s": round(bare, 3),
        "baseline_import_trio_s": round(with_trio, 3),
        "target_wall_s": 0.5,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.case:
        print(json.dumps(run_case(arguments.case, arguments.size, arguments.repeats)))
        return
    sequential = 200 if arguments.quick else 1000
    fan_out = 1000 if arguments.quick else 10_000
    repeats = 1 if arguments.quick else 3
    for case, size in (
        ("sequential_memory", sequential),
        ("sequential_sqlite", sequential),
        ("sequential_memory_traced", sequential),
        ("fan_out", fan_out),
        *((("fan_out", 100_000),) if not arguments.quick else ()),
        ("map", 10_000 if arguments.quick else 100_000),
        ("map_vs_fan_out", fan_out),
        ("template_render", 2000 if arguments.quick else 20_000),
    ):
        completed = subprocess.run(
            [
                sys.executable,
                __file__,
                "--case",
                case,
                "--size",
                str(size),
                "--repeats",
                str(repeats),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        print(completed.stdout.strip(), flush=True)
    print(json.dumps(startup(3 if arguments.quick else 7)), flush=True)


if __name__ == "__main__":
    main()
