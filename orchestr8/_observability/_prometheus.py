"""The engine's metrics in the Prometheus text format, for `GET /metrics`, with no SDK needed.

`EngineMetrics` records every measurement twice: on its OpenTelemetry instruments (which cost
nothing until an SDK is installed) and here, in plain counters, so that `orchestr8 serve` can be
scraped by Prometheus out of the box. The names follow Prometheus conventions (`_total`, the base
unit, seconds, in the name) and `promtool check metrics` accepts the output;
`docs/observability.md` lists them beside their OpenTelemetry names.

Label values (workflow, step and agent names) are redacted where the exposition is rendered, as
every other view of the engine is: a workflow named with a secret is exposed as `***`. Series
whose labels become equal once redacted are merged (counts and sums add up, a breaker's state is
the worst of them), so the exposition never repeats a series.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable
from typing import Final

from ._redaction import Redactor, default_redactor

DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Upper bounds of the step duration histogram's buckets, in seconds (OTLP uses them too)."""

STEP_DURATION: Final = "orchestr8_step_duration_seconds"
STEP_SUCCEEDED: Final = "orchestr8_step_succeeded_total"
STEP_FAILED: Final = "orchestr8_step_failed_total"
STEP_RETRIES: Final = "orchestr8_step_retries_total"
BREAKER_STATE: Final = "orchestr8_breaker_state"
EXECUTIONS_IN_FLIGHT: Final = "orchestr8_executions_in_flight"

_HELP: Final = {
    STEP_DURATION: ("histogram", "How long finished steps took, all attempts and waits."),
    STEP_SUCCEEDED: ("counter", "Steps that succeeded."),
    STEP_FAILED: ("counter", "Steps that failed for good."),
    STEP_RETRIES: ("counter", "Retries scheduled after a failed or rejected attempt."),
    BREAKER_STATE: (
        "gauge",
        "Circuit breaker state: 0 closed, 1 half_open, 2 open, 3 forced_open, 4 disabled.",
    ),
    EXECUTIONS_IN_FLIGHT: ("gauge", "Executions running now."),
}

Labels = tuple[tuple[str, str], ...]


class Histogram:
    """One histogram series: a count per duration bucket, the total count and the sum."""

    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        """Start empty."""
        self.buckets = [0] * len(DURATION_BUCKETS)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (the caller holds the registry's lock)."""
        index = bisect.bisect_left(DURATION_BUCKETS, value)
        if index < len(self.buckets):
            self.buckets[index] += 1
        self.count += 1
        self.sum += value

    def merged(self, other: Histogram) -> Histogram:
        """A new histogram counting both this one's observations and `other`'s."""
        total = Histogram()
        total.buckets = [
            mine + theirs for mine, theirs in zip(self.buckets, other.buckets, strict=True)
        ]
        total.count = self.count + other.count
        total.sum = self.sum + other.sum
        return total


class PrometheusRegistry:
    """Counters, gauges and histograms by label set, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        """Start with nothing recorded."""
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, dict[Labels, Histogram]] = {}

    def add(self, name: str, labels: Labels, amount: float = 1.0) -> None:
        """Add `amount` to the counter or gauge `name` for `labels`."""
        with self._lock:
            series = self._values.setdefault(name, {})
            series[labels] = series.get(labels, 0.0) + amount

    def set(self, name: str, labels: Labels, value: float) -> None:
        """Set the gauge `name` for `labels` to `value`."""
        with self._lock:
            self._values.setdefault(name, {})[labels] = value

    def observe(self, name: str, labels: Labels, value: float) -> None:
        """Record one observation of the histogram `name` for `labels`."""
        with self._lock:
            series = self._histograms.setdefault(name, {})
            histogram = series.get(labels)
            if histogram is None:
                histogram = series[labels] = Histogram()
            histogram.observe(value)

    def histogram(self, name: str, labels: Labels) -> Histogram:
        """The histogram `name` for `labels` (made if new), to feed with `observe_into`."""
        with self._lock:
            series = self._histograms.setdefault(name, {})
            histogram = series.get(labels)
            if histogram is None:
                histogram = series[labels] = Histogram()
            return histogram

    def observe_into(self, histogram: Histogram, value: float) -> None:
        """Record one observation in a histogram got from `histogram` (no lookup by labels)."""
        with self._lock:
            histogram.observe(value)

    def observe_and_add(
        self, histogram: Histogram, value: float, counter: str, labels: Labels
    ) -> None:
        """`observe_into`, then `add` one to `counter` for `labels`, under one lock."""
        with self._lock:
            histogram.observe(value)
            series = self._values.setdefault(counter, {})
            series[labels] = series.get(labels, 0.0) + 1.0

    def render(self, redactor: Redactor | None = None) -> str:
        """The text exposition format (version 0.0.4) of everything recorded, labels redacted.

        `redactor` (default: the process-wide one) redacts each label value; series that become
        equal are merged (see the module doc).
        """
        redactor = redactor if redactor is not None else default_redactor()
        lines: list[str] = []
        with self._lock:
            for name in sorted(_HELP):
                kind, text = _HELP[name]
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")
                merge = max if name == BREAKER_STATE else _add
                values: dict[Labels, float] = {}
                for labels, value in self._values.get(name, {}).items():
                    shown = _redacted(labels, redactor)
                    values[shown] = merge(values[shown], value) if shown in values else value
                for labels, value in sorted(values.items()):
                    lines.append(f"{name}{_labels(labels)} {_number(value)}")
                histograms: dict[Labels, Histogram] = {}
                for labels, histogram in self._histograms.get(name, {}).items():
                    shown = _redacted(labels, redactor)
                    total = histograms.get(shown)
                    histograms[shown] = histogram if total is None else total.merged(histogram)
                for labels, histogram in sorted(histograms.items()):
                    lines.extend(_histogram_lines(name, labels, histogram))
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, labels: Labels, histogram: Histogram) -> Iterable[str]:
    cumulative = 0
    for bound, count in zip(DURATION_BUCKETS, histogram.buckets, strict=True):
        cumulative += count
        yield f"{name}_bucket{_labels((*labels, ('le', _number(bound))))} {cumulative}"
    yield f"{name}_bucket{_labels((*labels, ('le', '+Inf')))} {histogram.count}"
    yield f"{name}_sum{_labels(labels)} {_number(histogram.sum)}"
    yield f"{name}_count{_labels(labels)} {histogram.count}"


def _add(first: float, second: float) -> float:
    return first + second


def _redacted(labels: Labels, redactor: Redactor) -> Labels:
    """`labels` with each value redacted (the same tuple when nothing changes)."""
    shown = tuple((key, redactor.redact_text(value)) for key, value in labels)
    return labels if shown == labels else shown


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


_registry = PrometheusRegistry()


def prometheus_registry() -> PrometheusRegistry:
    """The process's registry, fed by `EngineMetrics` and served by `GET /metrics`."""
    return _registry
