"""Benchmarks of the resilience pipeline on a call that succeeds at once, beside the bare call.

Prints one JSON object per line. Every figure is the median over several rounds of the time per
call in microseconds; `baseline_bare_call_us` is `await fn(attempt)` measured in the same rounds,
and `added_us` is the difference: what the pipeline adds to each call. Rounds are interleaved so
that drift hits every variant alike. Two raw-trio references are printed too: the same call in a
`trio.fail_after` and in a bare `trio.CancelScope` with a deadline (~8 and ~5 us, see
docs/architecture.md, "Costs we design around").

    python benchmarks/resilience.py            # full size, about 15 s on 2 cores
    python benchmarks/resilience.py --quick    # a smoke run
    python benchmarks/resilience.py --bench pipeline_success
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Awaitable, Callable

import trio

from orchestr8._resilience._breaker import CircuitBreaker
from orchestr8._resilience._limits import Bulkhead, RateLimiter
from orchestr8._resilience._pipeline import call_with_policy
from orchestr8._workflow._policy import CircuitBreakerPolicy, Policy

Loop = Callable[[int], Awaitable[None]]


async def agent(attempt: int) -> int:
    """The callable under test: returns at once, without a checkpoint, like a cached answer."""
    return attempt


def variants() -> dict[str, Loop]:
    """Each variant runs `count` calls; layer objects are built once, as a runtime shares them."""
    default = Policy()  # timeout 30 s, 3 attempts, breaker 5/60 s/3
    no_timeout = Policy(timeout=None)
    with_deadline = Policy(deadline=300.0)
    breaker = CircuitBreaker.from_policy(CircuitBreakerPolicy(), name="agent")
    bulkhead = Bulkhead(max_concurrent=1_000_000)
    limiter = RateLimiter(rate=1e12, burst=1_000_000_000)

    async def bare(count: int) -> None:
        for _ in range(count):
            await agent(1)

    async def fail_after(count: int) -> None:
        for _ in range(count):
            with trio.fail_after(30.0):
                await agent(1)

    async def cancel_scope(count: int) -> None:
        for _ in range(count):
            with trio.CancelScope(deadline=trio.current_time() + 30.0):
                await agent(1)

    async def pipeline_success(count: int) -> None:
        for _ in range(count):
            await call_with_policy(agent, default, breaker=breaker)

    async def pipeline_no_timeout(count: int) -> None:
        for _ in range(count):
            await call_with_policy(agent, no_timeout, breaker=breaker)

    async def pipeline_deadline(count: int) -> None:
        for _ in range(count):
            await call_with_policy(agent, with_deadline, breaker=breaker)

    async def pipeline_bulkhead(count: int) -> None:
        for _ in range(count):
            await call_with_policy(agent, default, breaker=breaker, bulkhead=bulkhead)

    async def pipeline_rate_limiter(count: int) -> None:
        for _ in range(count):
            await call_with_policy(agent, default, breaker=breaker, rate_limiter=limiter)

    async def pipeline_everything(count: int) -> None:
        for _ in range(count):
            await call_with_policy(
                agent, with_deadline, breaker=breaker, bulkhead=bulkhead, rate_limiter=limiter
            )

    return {
        "bare": bare,
        "baseline_fail_after": fail_after,
        "baseline_cancel_scope": cancel_scope,
        "pipeline_success": pipeline_success,
        "pipeline_no_timeout": pipeline_no_timeout,
        "pipeline_deadline": pipeline_deadline,
        "pipeline_bulkhead": pipeline_bulkhead,
        "pipeline_rate_limiter": pipeline_rate_limiter,
        "pipeline_everything": pipeline_everything,
    }


DESCRIPTIONS = {
    "baseline_fail_after": "raw trio: the call inside trio.fail_after(30)",
    "baseline_cancel_scope": "raw trio: the call inside a CancelScope with a deadline",
    "pipeline_success": "retry + breaker + 30 s attempt timeout (the default policy)",
    "pipeline_no_timeout": "retry + breaker, no timeout: no CancelScope at all",
    "pipeline_deadline": "retry + breaker + timeout + total deadline (still one CancelScope)",
    "pipeline_bulkhead": "retry + breaker + bulkhead + timeout",
    "pipeline_rate_limiter": "retry + breaker + rate limiter + timeout",
    "pipeline_everything": "deadline + retry + breaker + bulkhead + rate limiter + timeout",
}


def measure(selected: list[str], count: int, rounds: int) -> dict[str, float]:
    """Median microseconds per call of each selected variant (and of the bare call)."""
    loops = variants()
    names = ["bare", *(name for name in selected if name != "bare")]
    samples: dict[str, list[float]] = {name: [] for name in names}

    async def main() -> None:
        for name in names:  # warm up every code path once
            await loops[name](count // 10 or 1)
        for _ in range(rounds):
            for name in names:
                started = time.perf_counter()
                await loops[name](count)
                samples[name].append((time.perf_counter() - started) / count * 1e6)

    trio.run(main)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    """Parse the options, run the benchmarks and print one JSON line per variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--bench", action="append", choices=sorted(DESCRIPTIONS), default=None)
    options = parser.parse_args()
    count, rounds = (2_000, 3) if options.quick else (20_000, 7)
    selected = options.bench or list(DESCRIPTIONS)
    medians = measure(selected, count, rounds)
    bare = medians["bare"]
    for name in selected:
        row = {
            "bench": name,
            "description": DESCRIPTIONS[name],
            "per_call_us": round(medians[name], 3),
            "baseline_bare_call_us": round(bare, 3),
            "added_us": round(medians[name] - bare, 3),
            "calls": count,
            "rounds": rounds,
            "python": platform.python_version(),
            "trio": trio.__version__,
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
