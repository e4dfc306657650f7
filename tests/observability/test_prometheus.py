"""Tests of `prometheus`: the exposition `GET /metrics` serves, checked by promtool."""

from __future__ import annotations

import shutil
import subprocess
from functools import partial

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestr8 import open_runtime
from orchestr8._observability._prometheus import (
    BREAKER_STATE,
    DURATION_BUCKETS,
    EXECUTIONS_IN_FLIGHT,
    STEP_DURATION,
    STEP_SUCCEEDED,
    Histogram,
    PrometheusRegistry,
)
from orchestr8._observability._redaction import Redactor
from orchestr8._web._serve import serve

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install -y prometheus)",
)

SCRAPED = {
    "schema_version": "1.0",
    "name": "scraped",
    "strategy": "parallel",
    "fail_fast": False,
    "steps": [
        {"id": "ok", "agent": "echo", "input": 1},
        {
            "id": "flaky",
            "agent": {"id": "fail", "config": {"times": 1}},
            "input": 2,
            "policy": {"retry": {"max_attempts": 2, "initial_delay": 0, "jitter": "none"}},
        },
        {
            "id": "broken",
            "agent": "fail",
            "input": 3,
            "policy": {
                "key": "scraped-breaker",
                "retry": {"max_attempts": 1},
                "circuit_breaker": {
                    "failure_threshold": 1,
                    "reset_timeout": 60.0,
                    "half_open_requests": 1,
                },
            },
        },
    ],
}


def promtool_check(exposition: str) -> subprocess.CompletedProcess[str]:
    """Run `promtool check metrics` on `exposition` (stdin); its lint problems are on stderr."""
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_promtool
async def test_metrics_served_by_a_live_server_pass_promtool_check() -> None:
    """`GET /metrics` of a real server, after successes, retries, failures and an open breaker."""
    stop = trio.Event()
    async with open_runtime() as runtime, trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            partial(serve, runtime, port=0, shutdown_trigger=stop.wait)
        )
        async with httpx.AsyncClient(base_url=urls[0]) as http:
            accepted = await http.post("/workflows/execute", json={"workflow": SCRAPED})
            assert accepted.status_code == 202, accepted.text
            with trio.fail_after(10):
                await runtime.get(accepted.json()["execution_id"]).wait()
            response = await http.get("/metrics")
        stop.set()
    assert response.status_code == 200
    text = response.text
    for series in (
        'orchestr8_step_duration_seconds_bucket{workflow_name="scraped",step_id="ok"',
        'orchestr8_step_retries_total{workflow_name="scraped",step_id="flaky"',
        'orchestr8_step_failed_total{workflow_name="scraped",step_id="broken"',
        'orchestr8_breaker_state{breaker_key="scraped-breaker"} 2',
    ):
        assert series in text
    checked = await trio.to_thread.run_sync(promtool_check, text)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


@needs_promtool
def test_promtool_rejects_what_it_should() -> None:
    """The check can fail: promtool refuses a duration in milliseconds, as it once was."""
    checked = promtool_check(
        "# HELP orchestr8_step_duration_milliseconds Steps.\n"
        "# TYPE orchestr8_step_duration_milliseconds histogram\n"
        'orchestr8_step_duration_milliseconds_bucket{le="+Inf"} 1\n'
        "orchestr8_step_duration_milliseconds_sum 5\n"
        "orchestr8_step_duration_milliseconds_count 1\n"
    )
    assert checked.returncode != 0
    assert 'use base unit "seconds"' in checked.stderr


label_values = st.text(min_size=1, max_size=12)


@needs_promtool
@settings(max_examples=25, deadline=None)
@given(
    series=st.lists(
        st.tuples(label_values, label_values, st.floats(0, 1e6, allow_nan=False)),
        min_size=1,
        max_size=4,
    )
)
def test_any_label_values_render_valid_exposition(series: list[tuple[str, str, float]]) -> None:
    """Quotes, backslashes, newlines or any other text in labels still pass promtool."""
    registry = PrometheusRegistry()
    for workflow, step, seconds in series:
        labels = (("workflow_name", workflow), ("step_id", step), ("agent_id", "echo"))
        registry.add(STEP_SUCCEEDED, labels)
        registry.observe(STEP_DURATION, (*labels, ("step_status", "succeeded")), seconds)
    checked = promtool_check(registry.render())
    assert (checked.returncode, checked.stderr) == (0, "")


@given(st.lists(st.floats(0, 1e5, allow_nan=False), max_size=50))
def test_histogram_buckets_are_cumulative_and_end_at_the_count(values: list[float]) -> None:
    """Each `le` bucket counts the observations at or below its bound; `+Inf` is the count."""
    registry = PrometheusRegistry()
    histogram = registry.histogram(STEP_DURATION, (("step_id", "s"),))
    for value in values:
        registry.observe_into(histogram, value)
    assert isinstance(histogram, Histogram)
    lines = [line for line in registry.render().splitlines() if line.startswith(STEP_DURATION)]
    counts = [int(line.rsplit(" ", 1)[1]) for line in lines if "_bucket{" in line]
    assert len(counts) == len(DURATION_BUCKETS) + 1
    for bound, count in zip(DURATION_BUCKETS, counts, strict=False):
        assert count == sum(1 for value in values if value <= bound)
    assert counts[-1] == len(values)
    assert f'{STEP_DURATION}_count{{step_id="s"}} {len(values)}' in lines


def test_observe_and_add_records_a_duration_and_counts_one_step() -> None:
    """A step's end records its duration and adds one to its counter, as the two calls would."""
    registry = PrometheusRegistry()
    labels = (("step_id", "s"),)
    histogram = registry.histogram(STEP_DURATION, labels)
    registry.observe_and_add(histogram, 0.2, STEP_SUCCEEDED, labels)
    registry.observe_and_add(histogram, 3.0, STEP_SUCCEEDED, labels)
    exposition = registry.render()
    assert f'{STEP_DURATION}_count{{step_id="s"}} 2' in exposition
    assert f'{STEP_DURATION}_sum{{step_id="s"}} 3.2' in exposition
    assert f'{STEP_SUCCEEDED}{{step_id="s"}} 2' in exposition


def test_label_values_are_redacted_when_rendered() -> None:
    """A workflow named with a known secret is exposed as `***`, never verbatim."""
    secret = "tok-s3cr3t-value"
    registry = PrometheusRegistry()
    registry.add(EXECUTIONS_IN_FLIGHT, (("workflow_name", f"deploy-{secret}"),))
    registry.observe(STEP_DURATION, (("workflow_name", secret), ("step", "a")), 0.2)
    exposition = registry.render(Redactor(secret_values=[secret]))
    assert secret not in exposition
    assert f'{EXECUTIONS_IN_FLIGHT}{{workflow_name="deploy-***"}} 1' in exposition
    assert f'{STEP_DURATION}_count{{workflow_name="***",step="a"}} 1' in exposition


def test_series_equal_once_redacted_are_merged() -> None:
    """Names that redact alike give one series: counts add up, a breaker shows its worst."""
    first, second = "first-secret-value", "second-secret-value"
    registry = PrometheusRegistry()
    for name, state in ((first, 2.0), (second, 0.0)):
        registry.add(EXECUTIONS_IN_FLIGHT, (("workflow_name", name),))
        registry.set(BREAKER_STATE, (("breaker", name),), state)
        registry.observe(STEP_DURATION, (("workflow_name", name),), 0.2)
    lines = registry.render(Redactor(secret_values=[first, second])).splitlines()
    assert f'{EXECUTIONS_IN_FLIGHT}{{workflow_name="***"}} 2' in lines
    assert f'{BREAKER_STATE}{{breaker="***"}} 2' in lines
    assert f'{STEP_DURATION}_count{{workflow_name="***"}} 2' in lines
    samples = [line.rsplit(" ", 1)[0] for line in lines if not line.startswith("#")]
    assert len(samples) == len(set(samples))
