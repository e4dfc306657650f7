"""The engine's metrics, through the OpenTelemetry metrics API only.

`engine_metrics()` returns the process's `EngineMetrics`; its methods are what the engine calls as
executions and steps start and end. The instruments, their units and labels are documented in
`docs/observability.md`. Made on the global meter, they are the API's proxy instruments, which
cost ~0.1 µs a call while nothing records and start recording once an SDK provider is installed.
`opentelemetry` is imported on first use, not with this module.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Final

import attrs

from .._version import __version__
from . import _prometheus as prometheus

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

    from .._resilience._breaker import BreakerTransition

__all__ = [
    "ALL_STEPS",
    "STEP_ID_SERIES_LIMIT",
    "EngineMetrics",
    "engine_metrics",
    "meter",
    "use_meter_provider",
]

SCOPE_NAME: Final = "orchestr8"
STEP_DURATION: Final = "orchestr8.step.duration"
STEP_SUCCEEDED: Final = "orchestr8.step.succeeded"
STEP_FAILED: Final = "orchestr8.step.failed"
STEP_RETRIES: Final = "orchestr8.step.retries"
BREAKER_STATE: Final = "orchestr8.breaker.state"
EXECUTIONS_IN_FLIGHT: Final = "orchestr8.executions.in_flight"

# Keyed by `BreakerState` values (a StrEnum), so `_breaker` and trio need not be imported.
BREAKER_STATE_VALUES: Final[Mapping[str, int]] = {
    "closed": 0,
    "half_open": 1,
    "open": 2,
    "forced_open": 3,
    "disabled": 4,
}
"""The values of the `orchestr8.breaker.state` gauge."""

STEP_ID_SERIES_LIMIT: Final = 1_000
"""The most steps a workflow may have for its step metrics to keep a series per step id."""

ALL_STEPS: Final = "*"
"""The step id under which a workflow with more steps than `STEP_ID_SERIES_LIMIT` records them.

A series per step costs about 1 KB (a histogram and counters, in both forms) and is kept for the
process's life: a 100,000-step fan-out would hold 100,000 series, which no dashboard can show.
"""


class _State:
    """The meter provider orchestr8 records to, and the metrics made on it."""

    def __init__(self) -> None:
        self.meter_provider: MeterProvider | None = None
        self.metrics: EngineMetrics | None = None
        self.lock = threading.Lock()


_state = _State()


def meter() -> Meter:
    """The meter of the instrumentation scope `orchestr8` (a no-op one when nothing records)."""
    from opentelemetry import metrics

    provider = _state.meter_provider
    if provider is None:
        return metrics.get_meter(SCOPE_NAME, __version__)
    return provider.get_meter(SCOPE_NAME, __version__)


@attrs.frozen
class _StepSeries:
    """Everything one (workflow, step, agent, status) ending records into, found once."""

    status_labels: Mapping[str, str]
    histogram: prometheus.Histogram
    counter_name: str
    """The OpenTelemetry counter this ending adds one to (none for `cancelled`)."""
    prometheus_counter: str
    prometheus_labels: prometheus.Labels


class EngineMetrics:
    """The engine's instruments; the methods are what the engine calls as things happen.

    The step duration is a histogram recorded as each step ends. The step counters (succeeded,
    failed, retries) are OpenTelemetry *observable* counters: orchestr8 tallies them itself and
    reports the totals when a reader collects, so a step pays for one SDK measurement, not two.
    """

    def __init__(self, meter: Meter) -> None:
        """Create the instruments on `meter`."""
        # Seconds, as OpenTelemetry's conventions and Prometheus ask, in the buckets `/metrics`
        # uses: the SDK's default buckets are meant for milliseconds and would stop at 10 s.
        self._duration = meter.create_histogram(
            STEP_DURATION,
            unit="s",
            description="How long finished steps took, all attempts.",
            explicit_bucket_boundaries_advisory=prometheus.DURATION_BUCKETS,
        )
        # Totals per (workflow, step, agent), by counter name; read by the SDK's reader thread.
        self._counts: dict[str, dict[tuple[str, str, str], int]] = {
            STEP_SUCCEEDED: {},
            STEP_FAILED: {},
            STEP_RETRIES: {},
        }
        self._counts_lock = threading.Lock()
        for name, unit, description in (
            (STEP_SUCCEEDED, "{step}", "Steps that succeeded."),
            (STEP_FAILED, "{step}", "Steps that failed for good."),
            (STEP_RETRIES, "{retry}", "Retries scheduled after a failed attempt."),
        ):
            meter.create_observable_counter(
                name,
                callbacks=[partial(self._observe_counts, name)],
                unit=unit,
                description=description,
            )
        self._in_flight = meter.create_up_down_counter(
            EXECUTIONS_IN_FLIGHT, unit="{execution}", description="Executions running now."
        )
        self._breakers: dict[str, int] = {}
        meter.create_observable_gauge(
            BREAKER_STATE,
            callbacks=[self._observe_breakers],
            unit="1",
            description="Circuit breaker state: 0 closed, 1 half_open, 2 open, 3 forced_open, "
            "4 disabled.",
        )
        self._labels: dict[tuple[str, ...], Mapping[str, str]] = {}
        self._series: dict[tuple[str, ...], _StepSeries] = {}
        self._prometheus = prometheus.prometheus_registry()

    def _step_labels(self, workflow: str, step: str, agent: str, *extra: str) -> Mapping[str, str]:
        key = (workflow, step, agent, *extra)
        labels = self._labels.get(key)
        if labels is None:
            if len(self._labels) >= 10_000:
                self._labels.clear()
            labels = {"workflow.name": workflow, "step.id": step, "agent.id": agent}
            if extra:
                labels["step.status"] = extra[0]
            self._labels[key] = labels
        return labels

    def execution_started(self, workflow_name: str) -> None:
        """An execution (or a resumed run of one) started: one more in flight."""
        self._in_flight.add(1, {"workflow.name": workflow_name})
        self._prometheus.add(prometheus.EXECUTIONS_IN_FLIGHT, (("workflow_name", workflow_name),))

    def execution_finished(self, workflow_name: str) -> None:
        """An execution ended, however: one fewer in flight."""
        self._in_flight.add(-1, {"workflow.name": workflow_name})
        self._prometheus.add(
            prometheus.EXECUTIONS_IN_FLIGHT, (("workflow_name", workflow_name),), -1.0
        )

    def step_finished(
        self, workflow_name: str, step_id: str, agent_id: str, status: str, duration: float
    ) -> None:
        """A step ended with `status` after `duration` seconds (trio clock, all its attempts)."""
        series = self._series.get((workflow_name, step_id, agent_id, status))
        if series is None:
            series = self._new_series(workflow_name, step_id, agent_id, str(status))
        self._duration.record(duration, series.status_labels)
        if series.counter_name:
            self._count(series.counter_name, (workflow_name, step_id, agent_id))
            self._prometheus.observe_and_add(
                series.histogram, duration, series.prometheus_counter, series.prometheus_labels
            )
        else:
            self._prometheus.observe_into(series.histogram, duration)

    def _new_series(self, workflow: str, step: str, agent: str, status: str) -> _StepSeries:
        """Make (and keep) what recording one step ending with `status` needs, labels included."""
        if len(self._series) >= 10_000:
            self._series.clear()
        prometheus_labels = _prometheus_labels(workflow, step, agent)
        series = _StepSeries(
            status_labels=self._step_labels(workflow, step, agent, status),
            histogram=self._prometheus.histogram(
                prometheus.STEP_DURATION, (*prometheus_labels, ("step_status", status))
            ),
            counter_name={"succeeded": STEP_SUCCEEDED, "failed": STEP_FAILED}.get(status, ""),
            prometheus_counter={
                "succeeded": prometheus.STEP_SUCCEEDED,
                "failed": prometheus.STEP_FAILED,
            }.get(status, ""),
            prometheus_labels=prometheus_labels,
        )
        self._series[(workflow, step, agent, status)] = series
        return series

    def retry_scheduled(self, workflow_name: str, step_id: str, agent_id: str) -> None:
        """A failed attempt of the step will be retried."""
        self._count(STEP_RETRIES, (workflow_name, step_id, agent_id))
        self._prometheus.add(
            prometheus.STEP_RETRIES, _prometheus_labels(workflow_name, step_id, agent_id)
        )

    def _count(self, name: str, key: tuple[str, str, str]) -> None:
        """Add one to the observable counter `name` for (workflow, step, agent)."""
        with self._counts_lock:
            counts = self._counts[name]
            counts[key] = counts.get(key, 0) + 1

    def _observe_counts(self, name: str, options: CallbackOptions) -> Iterable[Observation]:
        """Report the totals of the counter `name` (called by the SDK when a reader collects)."""
        from opentelemetry.metrics import Observation

        with self._counts_lock:
            totals = list(self._counts[name].items())
        return [
            Observation(total, {"workflow.name": workflow, "step.id": step, "agent.id": agent})
            for (workflow, step, agent), total in totals
        ]

    def breaker_transition(self, transition: BreakerTransition) -> None:
        """A breaker changed state; the gauge reports the latest state of every breaker."""
        value = BREAKER_STATE_VALUES.get(transition.new, 0)
        self._breakers[transition.name] = value
        self._prometheus.set(prometheus.BREAKER_STATE, (("breaker_key", transition.name),), value)

    def _observe_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        return [
            Observation(value, {"breaker.key": name})
            for name, value in list(self._breakers.items())
        ]


def _prometheus_labels(workflow: str, step: str, agent: str) -> prometheus.Labels:
    return (("workflow_name", workflow), ("step_id", step), ("agent_id", agent))


def engine_metrics() -> EngineMetrics:
    """The process's `EngineMetrics` on the current meter (made on first use)."""
    found = _state.metrics
    if found is None:
        with _state.lock:
            found = _state.metrics
            if found is None:
                found = _state.metrics = EngineMetrics(meter())
    return found


def use_meter_provider(meter_provider: MeterProvider | None) -> None:
    """Record orchestr8's metrics to `meter_provider` (None: the global one)."""
    with _state.lock:
        _state.meter_provider = meter_provider
        _state.metrics = None
