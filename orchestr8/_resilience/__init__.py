"""Resilience: one call under a policy: deadline, retry, circuit breaker, bulkhead, rate limit.

Holds `_pipeline` (the layers fused into one loop), `_retry` (backoff and what is retryable),
`_breaker` and `_limits`; on a PostgreSQL journal, the state shared with other processes
(`_shared_state`), the breaker that obeys it (`_shared_breaker`) and the `scope: "global"`
bulkhead and rate limiter (`_global_limits`). The layer order and its rules are in
`docs/resilience.md`.
May import: `_workflow` (policies), `_observability`, `_json`, `_errors`.
"""
