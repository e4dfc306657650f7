"""Resilience: one call under a policy: deadline, retry, circuit breaker, bulkhead, rate limit.

Holds `_pipeline` (the layers fused into one loop), `_retry` (backoff and what is retryable),
`_breaker` and `_limits`. The layer order and its rules are in `docs/resilience.md`.
May import: `_workflow` (policies), `_observability`, `_json`, `_errors`.
"""
