"""Exporters chosen by the standard `OTEL_*` variables, installed only when they ask for one.

No telemetry leaves the machine unless the user asks: `configure_from_environment` does nothing
unless an exporter is requested, which takes one of

- `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` set to `otlp` or `console` (comma-separated
  lists work; `none` turns a signal off even when an endpoint is set), or
- an OTLP endpoint: `OTEL_EXPORTER_OTLP_ENDPOINT`, or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
  `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` for one signal (meaning `otlp` for it).

Everything else (endpoint, headers, timeouts, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
the metric export interval) is read by the OpenTelemetry SDK itself. The SDK and the OTLP exporter
come with the `otel` extra; without them the problem is reported, and nothing is installed.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from .._version import __version__

__all__ = ["TelemetrySetup", "configure_from_environment", "shutdown_telemetry"]

INSTALL_HINT: Final = "pip install 'orchestr8[otel]'"
EXPORTERS: Final = ("otlp", "console")
_SIGNALS: Final = {
    "traces": "trace_exporter.OTLPSpanExporter",
    "metrics": "metric_exporter.OTLPMetricExporter",
}
_PROTOCOL_PACKAGES: Final = {"http/protobuf": "http", "grpc": "grpc"}
_logger = logging.getLogger("orchestr8.telemetry")
_installed: list[Any] = []


class TelemetrySetup(NamedTuple):
    """What `configure_from_environment` installed, per signal, and what it could not do.

    A named tuple rather than an attrs class: the CLI reads it at start-up, and importing attrs
    there would cost ~20 ms on every command.
    """

    traces: tuple[str, ...] = ()
    """The trace exporters installed (`otlp`, `console`); empty when none."""
    metrics: tuple[str, ...] = ()
    """The metric exporters installed."""
    problems: tuple[str, ...] = ()
    """Why a requested exporter was not installed, one sentence each (also logged as warnings)."""

    @property
    def exporting(self) -> bool:
        """Whether any telemetry will be exported."""
        return bool(self.traces or self.metrics)


def is_api_default(provider: object) -> bool:
    """Whether `provider` is one of the API's own (no-op or proxy) providers: it records nothing."""
    return type(provider).__module__.startswith(("opentelemetry.trace", "opentelemetry.metrics"))


def requested_exporters(environ: Mapping[str, str], signal: str) -> tuple[tuple[str, ...], str]:
    """The exporters the environment asks for one signal (`traces`/`metrics`), and why."""
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    chosen = environ.get(variable, "").strip().lower()
    if chosen:
        names = [name.strip() for name in chosen.split(",")]
        return tuple(name for name in names if name and name != "none"), f"{variable}={chosen}"
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    for endpoint in endpoints:
        if environ.get(endpoint, "").strip():
            return ("otlp",), endpoint
    return (), ""


def _otlp_exporter(environ: Mapping[str, str], signal: str) -> Any:
    """Build the OTLP exporter of `signal` for the configured protocol, or raise `LookupError`."""
    protocol = (
        (
            environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        .strip()
        .lower()
    )
    flavour = _PROTOCOL_PACKAGES.get(protocol)
    if flavour is None:
        raise LookupError(f"OTLP protocol {protocol!r} is not supported: use http/protobuf or grpc")
    module_name, _, class_name = _SIGNALS[signal].partition(".")
    package = f"opentelemetry-exporter-otlp-proto-{flavour}"
    try:
        module = importlib.import_module(
            f"opentelemetry.exporter.otlp.proto.{flavour}.{module_name}"
        )
    except ImportError:
        hint = INSTALL_HINT if flavour == "http" else f"pip install {package}"
        raise LookupError(f"the OTLP exporter ({package}) is not installed: {hint}") from None
    return getattr(module, class_name)()


def _exporter(environ: Mapping[str, str], signal: str, name: str) -> Any:
    """Build one exporter by name, or raise `LookupError` saying why not."""
    if name == "otlp":
        return _otlp_exporter(environ, signal)
    if name == "console":
        # Console output goes to stderr: stdout carries the CLI's results.
        if signal == "traces":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter(out=sys.stderr)
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stderr)
    raise LookupError(f"exporter {name!r} is not supported: use one of {', '.join(EXPORTERS)}")


def _resource(environ: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, Any] = {"service.version": __version__}
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:
        attributes["service.name"] = "orchestr8"
    return Resource.create(attributes)


def configure_from_environment(environ: Mapping[str, str] | None = None) -> TelemetrySetup:
    """Install SDK providers with the exporters the `OTEL_*` variables ask for; else do nothing.

    A provider the embedding program installed already is left in place. Problems (the SDK or
    the OTLP exporter missing, an unsupported exporter) are logged as warnings and returned;
    they never raise, so telemetry trouble does not stop a run.
    """
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TelemetrySetup()
    wanted = {signal: requested_exporters(environ, signal) for signal in ("traces", "metrics")}
    if not any(names for names, _ in wanted.values()):
        return TelemetrySetup()
    problems: list[str] = []
    installed: dict[str, tuple[str, ...]] = {"traces": (), "metrics": ()}
    try:
        importlib.import_module("opentelemetry.sdk.trace")
    except ImportError:
        reason = next(why for names, why in wanted.values() if names)
        problems.append(
            f"{reason} asks for telemetry export, but opentelemetry-sdk is not installed: "
            f"{INSTALL_HINT}"
        )
        return _report(TelemetrySetup(problems=tuple(problems)))
    resource = _resource(environ)
    for signal, (names, _) in wanted.items():
        exporters: list[tuple[str, Any]] = []
        for name in dict.fromkeys(names):
            try:
                exporters.append((name, _exporter(environ, signal, name)))
            except LookupError as error:
                problems.append(f"{signal}: {error}")
        if exporters:
            problem = _install(signal, [exporter for _, exporter in exporters], resource)
            if problem is None:
                installed[signal] = tuple(name for name, _ in exporters)
            else:
                problems.append(problem)
    return _report(TelemetrySetup(installed["traces"], installed["metrics"], tuple(problems)))


def _install(signal: str, exporters: list[Any], resource: Any) -> str | None:
    """Install a provider for `signal` feeding `exporters`; return a problem instead if taken."""
    from opentelemetry import metrics, trace

    if signal == "traces":
        if not is_api_default(trace.get_tracer_provider()):
            return "traces: a tracer provider is installed already; it is left in place"
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider(resource=resource)
        for exporter in exporters:
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        _installed.append(tracer_provider)
        return None
    if not is_api_default(metrics.get_meter_provider()):
        return "metrics: a meter provider is installed already; it is left in place"
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    readers = [PeriodicExportingMetricReader(exporter) for exporter in exporters]
    meter_provider = MeterProvider(metric_readers=readers, resource=resource)
    metrics.set_meter_provider(meter_provider)
    _installed.append(meter_provider)
    return None


def _report(setup: TelemetrySetup) -> TelemetrySetup:
    for problem in setup.problems:
        _logger.warning("telemetry: %s", problem)
    return setup


def shutdown_telemetry() -> None:
    """Flush and shut down the providers `configure_from_environment` installed (at exit)."""
    while _installed:
        _installed.pop().shutdown()
