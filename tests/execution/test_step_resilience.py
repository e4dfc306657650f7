"""Two runtimes on one PostgreSQL journal share breakers, global bulkheads and rate limits."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from orchestr8._agents._contract import AgentContext
from orchestr8._errors import WorkflowValidationError
from orchestr8._execution._results import ExecutionResult
from orchestr8._execution._runtime import Runtime, open_runtime
from orchestr8._execution._step_resilience import SharedResilience
from orchestr8._journal._events import ExecutionStatus
from orchestr8._journal._journal import Journal, open_journal
from orchestr8._journal._postgres_schema import connect
from orchestr8._resilience._global_limits import GlobalBulkhead, GlobalRateLimiter
from orchestr8._resilience._shared_breaker import SharedCircuitBreaker
from orchestr8._resilience._shared_state import SharedState
from orchestr8._workflow._policy import Policy, RateLimitPolicy
from orchestr8._workflow._scopes import GLOBAL_SCOPE_FIX

BREAKER = {"failure_threshold": 2, "reset_timeout": 30, "half_open_requests": 1}
ROOT = Path(__file__).resolve().parents[2]

#: A process that runs `n` executions of a workflow on the PostgreSQL journal at `url`; its agent
#: appends "enter" and "leave" to the file `log` around each call.
RUNNER = """
import json, sys, trio
from orchestr8._execution._runtime import open_runtime
from orchestr8._journal._journal import open_journal

url, log, count, workflow = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])

def note(word):
    with open(log, "a") as file:
        file.write(word + "\\n")

async def visit(input, context):
    note("enter")
    await trio.sleep(0.02)
    note("leave")
    return input

async def main():
    async with open_journal(url) as journal:
        async with open_runtime(journal=journal, agents={"visit": visit}) as runtime:
            handles = [await runtime.start(workflow) for _ in range(count)]
            for handle in handles:
                assert (await handle.wait()).status == "succeeded"

trio.run(main)
"""


@asynccontextmanager
async def journal_on(url: str) -> AsyncIterator[Journal]:
    """A PostgreSQL journal object of its own on the database at `url` (one per runtime)."""
    async with open_journal(url) as journal:
        assert journal.database_url == url
        yield journal


@asynccontextmanager
async def two_runtimes(url: str, **agents: Any) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two runtimes, each on its own journal object of the one database."""
    async with (
        journal_on(url) as first_journal,
        journal_on(url) as second_journal,
        open_runtime(journal=first_journal, agents=agents) as first,
        open_runtime(journal=second_journal, agents=agents) as second,
    ):
        yield first, second


def shared(runtime: Runtime) -> SharedState:
    state = runtime.resilience.across_processes
    assert isinstance(state, SharedState)
    return state


def document(agent: str, **policy: Any) -> dict[str, Any]:
    """One step of `agent` with input 'x' and this policy (no retry unless it says)."""
    return {
        "schema_version": "1.1",
        "name": "shared",
        "defaults": {"policy": {"retry": {"max_attempts": 1}, "circuit_breaker": None}},
        "steps": [{"id": "call", "agent": agent, "input": "x", "policy": policy}],
    }


async def run(runtime: Runtime, workflow: dict[str, Any]) -> ExecutionResult:
    return await (await runtime.start(workflow)).wait()


def error_of(result: ExecutionResult) -> str:
    error = result.steps["call"].error
    assert error is not None
    return str(error["type"])


async def test_an_opening_in_one_runtime_stops_the_other_calling(postgres_url: str) -> None:
    """Runtime 1 opens the breaker; runtime 2 makes no call until one probe closes it for both."""
    calls: Counter[str] = Counter()
    healthy = False

    async def dependency(input: Any, context: AgentContext) -> Any:
        calls[context.execution_id] += 1
        if not healthy:
            raise RuntimeError("the dependency is down")
        return input

    workflow = document("dependency", circuit_breaker=BREAKER, key="dep")
    async with two_runtimes(postgres_url, dependency=dependency) as (first, second):
        for _ in range(2):
            assert error_of(await run(first, workflow)) == "RuntimeError"
        await shared(first).sync()
        await shared(second).sync()
        before = sum(calls.values())
        refused = await run(second, workflow)
        assert error_of(refused) == "CircuitOpenError"
        assert sum(calls.values()) == before
        with connect(postgres_url, purpose="test") as connection:
            connection.execute("UPDATE breakers SET open_until = now() - interval '1 second'")
        await shared(first).sync()
        await shared(second).sync()
        healthy = True
        assert error_of(await run(first, workflow)) == "CircuitOpenError"
        assert error_of(await run(second, workflow)) == "CircuitOpenError"
        await shared(first).sync()
        await shared(second).sync()
        results = [await run(first, workflow), await run(second, workflow)]
        assert sorted(result.status for result in results) == [
            ExecutionStatus.FAILED,
            ExecutionStatus.SUCCEEDED,
        ]
        assert sum(calls.values()) == before + 1
        await shared(first).sync()
        await shared(second).sync()
        for runtime in (first, second):
            assert (await run(runtime, workflow)).status is ExecutionStatus.SUCCEEDED
            provider = runtime.resilience.breakers.get("llm-provider:local")
            assert isinstance(provider, SharedCircuitBreaker)
        assert sum(calls.values()) == before + 3


async def test_a_global_bulkhead_of_two_never_runs_three_calls_at_once(postgres_url: str) -> None:
    """Eight executions over two runtimes: at most two calls of the key run at any moment."""
    running = 0
    most = 0
    full = trio.Event()

    async def slow(input: Any, context: AgentContext) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 2:
            full.set()
        with trio.move_on_after(0.5):
            # Stay until a second call runs too (or a while), so the calls overlap.
            await full.wait()
        await trio.sleep(0.01)
        running -= 1
        return input

    bulkhead = {"max_concurrent": 2, "max_wait": 30, "scope": "global"}
    workflow = document("slow", bulkhead=bulkhead, key="db")
    results: list[ExecutionResult] = []

    async def one(runtime: Runtime) -> None:
        results.append(await run(runtime, workflow))

    async with two_runtimes(postgres_url, slow=slow) as (first, second):
        # The document is stored once first, so the burst below tests the bulkhead alone.
        results.append(await run(first, workflow))
        async with trio.open_nursery() as nursery:
            for index in range(8):
                nursery.start_soon(one, (first, second)[index % 2])
        assert isinstance(first.resilience.bulkheads["db"], GlobalBulkhead)
        assert first.resilience.bulkheads["db"].statistics().in_use == 0
    assert most == 2
    assert [result.status for result in results] == [ExecutionStatus.SUCCEEDED] * 9


async def test_a_global_rate_limit_grants_burst_tokens_across_both_runtimes(
    postgres_url: str,
) -> None:
    """A bucket of 3 that barely refills: of ten calls over two runtimes exactly three run."""
    calls = 0

    async def counted(input: Any, context: AgentContext) -> Any:
        nonlocal calls
        calls += 1
        return input

    limit = {"rate": 0.0001, "burst": 3, "scope": "global"}
    workflow = document("counted", rate_limit=limit, key="api")
    async with two_runtimes(postgres_url, counted=counted) as (first, second):
        results = [await run((first, second)[index % 2], workflow) for index in range(10)]
        assert isinstance(second.resilience.rate_limiters["api"], GlobalRateLimiter)
    assert calls == 3
    refused = [error_of(result) for result in results if result.status is ExecutionStatus.FAILED]
    assert refused == ["RateLimitedError"] * 7


async def test_a_global_rate_limit_within_max_wait_waits_for_its_token(postgres_url: str) -> None:
    """A token due within max_wait is reserved in the database and waited for, not refused."""

    async def counted(input: Any, context: AgentContext) -> Any:
        return input

    limit = {"rate": 50, "burst": 1, "max_wait": 5, "scope": "global"}
    workflow = document("counted", rate_limit=limit, key="api")
    async with two_runtimes(postgres_url, counted=counted) as (first, second):
        results = [await run(runtime, workflow) for runtime in (first, second, first)]
    assert [result.status for result in results] == [ExecutionStatus.SUCCEEDED] * 3


@pytest.mark.parametrize(
    ("policy", "path"),
    [
        ({"bulkhead": {"max_concurrent": 2, "scope": "global"}}, "$.steps[0].policy.bulkhead"),
        (
            {"rate_limit": {"rate": 1, "burst": 1, "scope": "global"}},
            "$.steps[0].policy.rate_limit",
        ),
    ],
)
async def test_global_scope_without_postgresql_is_refused_at_load(
    policy: dict[str, Any], path: str
) -> None:
    """A memory (or SQLite) runtime refuses scope global at its JSON path, naming the fix."""
    async with open_runtime() as runtime:
        with pytest.raises(WorkflowValidationError) as refused:
            runtime.load(document("echo", **policy))
        with pytest.raises(WorkflowValidationError):
            await runtime.start(document("echo", **policy))
        fine = runtime.load(document("echo"))
        for _ in range(2):
            assert (await (await runtime.start(fine)).wait()).status is ExecutionStatus.SUCCEEDED
    (problem,) = refused.value.problems
    assert problem.path == path + ".scope"
    assert problem.message == GLOBAL_SCOPE_FIX
    assert "--journal postgresql://" in problem.message


async def test_scope_set_in_defaults_is_blamed_there_once_and_children_are_searched() -> None:
    """A global scope in defaults.policy is one problem there; an inline child's is under it."""
    child = {
        "schema_version": "1.1",
        "name": "child",
        "steps": [
            {
                "id": "k",
                "agent": "echo",
                "policy": {"rate_limit": {"rate": 1, "burst": 1, "scope": "global"}},
            }
        ],
    }
    workflow = {
        "schema_version": "1.1",
        "name": "parent",
        "defaults": {"policy": {"bulkhead": {"max_concurrent": 1, "scope": "global"}}},
        "steps": [
            {"id": "a", "agent": "echo"},
            {"id": "b", "agent": "echo"},
            {"id": "sub", "workflow": child},
            {"id": "local", "agent": "echo", "policy": {"bulkhead": {"scope": "process"}}},
        ],
    }
    async with open_runtime() as runtime:
        with pytest.raises(WorkflowValidationError) as refused:
            runtime.load(workflow)
    assert [problem.path for problem in refused.value.problems] == [
        "$.defaults.policy.bulkhead.scope",
        "$.steps[2].workflow.steps[0].policy.rate_limit.scope",
    ]


async def test_process_scope_on_postgresql_stays_process_local(postgres_url: str) -> None:
    """Without scope global a PostgreSQL runtime's bulkhead and limiter are the local kinds."""

    async def echo3(input: Any, context: AgentContext) -> Any:
        return input

    workflow = document(
        "echo3",
        bulkhead={"max_concurrent": 1},
        rate_limit={"rate": 10, "burst": 10, "scope": "process"},
    )
    async with two_runtimes(postgres_url, echo3=echo3) as (first, _):
        assert (await run(first, workflow)).status is ExecutionStatus.SUCCEEDED
        assert type(first.resilience.bulkheads["echo3"]).__name__ == "Bulkhead"
        assert type(first.resilience.rate_limiters["echo3"]).__name__ == "RateLimiter"


def test_a_global_limit_built_without_shared_state_is_refused() -> None:
    """Should a global scope get past load, building its limiter names the fix instead."""
    resilience = SharedResilience()
    policy = Policy(rate_limit=RateLimitPolicy(rate=1.0, burst=1, scope="global"))
    with pytest.raises(WorkflowValidationError, match="key 'api': scope \"global\""):
        resilience.layers("api", policy)


async def test_two_processes_never_run_more_calls_than_a_global_bulkhead_allows(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two real processes, four executions each, one global bulkhead of 2: never 3 at once."""
    bulkhead = {"max_concurrent": 2, "max_wait": 60, "scope": "global"}
    workflow = document("visit", bulkhead=bulkhead, key="db")
    log = tmp_path / "visits.log"

    async def visit(input: Any, context: AgentContext) -> Any:
        return input

    async with (
        journal_on(postgres_url) as journal,
        open_runtime(journal=journal, agents={"visit": visit}) as runtime,
    ):
        # The document is stored once first: the processes then only read it.
        assert (await run(runtime, workflow)).status is ExecutionStatus.SUCCEEDED
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    command = [sys.executable, "-c", RUNNER, postgres_url, str(log), "4", json.dumps(workflow)]

    async def one_process() -> None:
        done = await trio.run_process(command, env=environment, capture_stderr=True, check=False)
        assert done.returncode == 0, done.stderr.decode()

    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(one_process)
    running = most = 0
    words = log.read_text().split()
    for word in words:
        running += 1 if word == "enter" else -1
        most = max(most, running)
    assert words.count("enter") == words.count("leave") == 8
    assert most <= 2
