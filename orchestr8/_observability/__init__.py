"""Observability: logs, redaction of secrets, OpenTelemetry traces and metrics, Prometheus text.

Holds `_logging`, `_redaction` (with `_secret_values` and `_workflow_redaction`), `_tracing`
(which tracer records, span scopes), `_telemetry` (the spans and span events the engine records),
`_export` (SDK set-up from the environment), `_metrics` and `_prometheus`. Every stage above uses
it, so it imports nothing of theirs.
May import: `_json`, `_errors`.
"""
