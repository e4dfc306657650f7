"""The built-in agents: echo, sleep, fail and python."""

from __future__ import annotations

import math
import threading
from typing import Any

import agent_fixtures
import pytest
import trio
import trio.testing

from orchestr8._agents._contract import Agent, AgentContext
from orchestr8._agents._registry import AgentRegistry
from orchestr8._errors import AgentConfigurationError, NonRetryableError, RetryableError


def make_context(**overrides: Any) -> AgentContext:
    fields: dict[str, Any] = {"execution_id": "exec-1", "step_id": "step-a", **overrides}
    return AgentContext(**fields)


def create(agent_id: str, config: dict[str, Any] | None = None) -> Agent:
    return AgentRegistry().create(agent_id, config)


# echo


@pytest.mark.parametrize("value", [None, 3, "text", [1, 2], {"nested": {"a": [True]}}])
async def test_echo_returns_its_input(value: Any) -> None:
    """echo returns exactly the input it was given."""
    assert await create("echo").run(value, make_context()) == value


def test_echo_takes_no_config() -> None:
    """echo rejects any config key."""
    with pytest.raises(AgentConfigurationError, match="unknown config key 'seconds'"):
        create("echo", {"seconds": 1})


# sleep


async def test_sleep_uses_config_seconds(autojump_clock: trio.testing.MockClock) -> None:
    """sleep waits config seconds on the trio clock, then returns its input."""
    start = trio.current_time()
    result = await create("sleep", {"seconds": 2.5}).run({"x": 1}, make_context())
    assert result == {"x": 1}
    assert trio.current_time() - start == pytest.approx(2.5)


async def test_sleep_uses_input_seconds(autojump_clock: trio.testing.MockClock) -> None:
    """Without configured seconds, sleep reads 'seconds' from its input object."""
    start = trio.current_time()
    assert await create("sleep").run({"seconds": 4}, make_context()) == {"seconds": 4}
    assert trio.current_time() - start == pytest.approx(4)


async def test_sleep_config_wins_over_input(autojump_clock: trio.testing.MockClock) -> None:
    """When both are given, the configured seconds are used."""
    start = trio.current_time()
    await create("sleep", {"seconds": 1}).run({"seconds": 100}, make_context())
    assert trio.current_time() - start == pytest.approx(1)


async def test_sleep_does_not_return_early(mock_clock: trio.testing.MockClock) -> None:
    """sleep is still sleeping just before its time is up."""
    done = trio.Event()

    async def sleeper() -> None:
        await create("sleep", {"seconds": 10}).run(None, make_context())
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(9.9)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        mock_clock.jump(0.2)
    assert done.is_set()


async def test_sleep_ignores_the_cooperative_cancel_signal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """sleep keeps sleeping after cancel is requested; only a cancel scope stops it."""
    event = trio.Event()
    event.set()
    start = trio.current_time()
    await create("sleep", {"seconds": 3}).run(None, make_context(cancel_event=event))
    assert trio.current_time() - start == pytest.approx(3)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(-1, "0 or more"), (math.nan, "0 or more"), (True, "got bool"), ("1", "got str")],
)
def test_sleep_rejects_bad_config_seconds(seconds: Any, expected: str) -> None:
    """Negative, NaN and non-numeric configured seconds fail at construction."""
    with pytest.raises(AgentConfigurationError, match=rf"agent 'sleep': seconds .*{expected}"):
        create("sleep", {"seconds": seconds})


@pytest.mark.parametrize(
    ("input_value", "expected"),
    [({"seconds": -0.5}, "0 or more"), ({"seconds": None}, "got NoneType"), (5, "needs")],
)
async def test_sleep_rejects_bad_input_seconds(input_value: Any, expected: str) -> None:
    """Bad or missing seconds in the input raise NonRetryableError (retrying cannot fix them)."""
    with pytest.raises(NonRetryableError, match=expected):
        await create("sleep").run(input_value, make_context())


# fail


async def test_fail_always_fails_without_times() -> None:
    """Without times, fail raises RetryableError on every attempt."""
    agent = create("fail")
    for attempt in (1, 2, 50):
        with pytest.raises(RetryableError, match=f"attempt {attempt} failed.*always"):
            await agent.run("in", make_context(attempt=attempt))


async def test_fail_times_counts_attempts() -> None:
    """With times=2, attempts 1 and 2 fail and attempt 3 onwards returns the input."""
    agent = create("fail", {"times": 2})
    outcomes = []
    for attempt in (1, 2, 3, 4):
        try:
            outcomes.append(await agent.run("in", make_context(attempt=attempt)))
        except RetryableError:
            outcomes.append("failed")
    assert outcomes == ["failed", "failed", "in", "in"]


async def test_fail_times_is_decided_by_the_attempt_not_history() -> None:
    """A fresh agent at attempt 3 succeeds at once: the outcome does not depend on earlier calls."""
    assert await create("fail", {"times": 2}).run("in", make_context(attempt=3)) == "in"


async def test_fail_times_zero_never_fails() -> None:
    """times=0 means no attempt fails."""
    assert await create("fail", {"times": 0}).run(7, make_context()) == 7


async def test_fail_message_and_retry_after() -> None:
    """The configured message and retry_after reach the raised RetryableError."""
    agent = create("fail", {"message": "service down", "retry_after": 1.5})
    with pytest.raises(RetryableError, match=r"^service down$") as caught:
        await agent.run(None, make_context())
    assert caught.value.retry_after == 1.5


async def test_fail_non_retryable() -> None:
    """retryable=false makes fail raise NonRetryableError."""
    with pytest.raises(NonRetryableError, match="configured to fail 1"):
        await create("fail", {"times": 1, "retryable": False}).run(None, make_context())


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"times": -1}, "times must be 0 or more"),
        ({"times": 1.5}, "times must be an integer"),
        ({"times": True}, "times must be an integer"),
        ({"message": 3}, "message must be a string"),
        ({"retryable": "no"}, "retryable must be true or false"),
        ({"retryable": False, "retry_after": 1}, "retry_after needs retryable"),
        ({"retry_after": -2}, "retry_after must be 0 or more"),
        ({"count": 2}, "unknown config key 'count'"),
    ],
)
def test_fail_rejects_bad_config(config: dict[str, Any], expected: str) -> None:
    """Every invalid fail config is reported at construction."""
    with pytest.raises(AgentConfigurationError, match=f"agent 'fail': .*{expected}"):
        create("fail", config)


# python


async def test_python_sync_function_runs_in_a_worker_thread() -> None:
    """A sync callable runs in a worker thread, called with the input alone."""
    result = await create("python", {"callable": "agent_fixtures:where_am_i"}).run(
        "x", make_context()
    )
    assert result["input"] == "x"
    assert result["thread"] != threading.get_ident()


async def test_python_async_function_is_awaited_in_the_trio_thread() -> None:
    """An async callable is awaited directly, in the trio thread."""
    result = await create("python", {"callable": "agent_fixtures:double"}).run(4, make_context())
    assert result == {"value": 8, "thread": threading.get_ident()}


async def test_python_async_function_with_context() -> None:
    """An async callable taking two parameters receives the context."""
    agent = create("python", {"callable": "agent_fixtures:greet"})
    assert await agent.run("zoe", make_context(step_id="s9")) == "hello zoe from s9"


async def test_python_sync_function_with_context_publishes_progress_in_trio_thread() -> None:
    """A sync callable taking the context gets it; its progress reaches the callback in trio."""
    seen: list[tuple[str, int, dict[str, Any]]] = []

    def callback(context: AgentContext, data: Any) -> None:
        seen.append((context.step_id, threading.get_ident(), dict(data)))

    agent = create("python", {"callable": "agent_fixtures:report_progress"})
    result = await agent.run(3, make_context(attempt=2, progress_callback=callback))
    assert result == {"attempt": 2, "key": "exec-1:step-a"}
    assert seen == [("step-a", threading.get_ident(), {"seen": 3})]


async def test_python_sync_function_with_context_without_callback() -> None:
    """Progress from a worker thread without a callback is a no-op."""
    agent = create("python", {"callable": "agent_fixtures:report_progress"})
    assert (await agent.run(1, make_context()))["attempt"] == 1


async def test_python_errors_propagate_unchanged() -> None:
    """Exceptions raised by the callable reach the caller as they are."""
    with pytest.raises(ValueError, match="boom: 9"):
        await create("python", {"callable": "agent_fixtures:explode"}).run(9, make_context())


async def test_python_async_callable_object_is_awaited() -> None:
    """An object with an async __call__ is awaited rather than run in a thread."""
    agent = create("python", {"callable": "agent_fixtures:ASYNC_CALLABLE"})
    assert await agent.run(1, make_context()) == {"called": 1, "step": "step-a"}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "'callable' is required"),
        ({"callable": 5}, "must be a 'module:function' string"),
        ({"callable": "agent_fixtures"}, "not a 'module:attribute' path"),
        ({"callable": "no_such_module_o8:f"}, "no module named 'no_such_module_o8'"),
        ({"callable": "agent_fixtures:missing"}, "has no attribute 'missing'"),
        ({"callable": "agent_fixtures:NOT_AN_AGENT"}, "is a int, not a function"),
        ({"callable": "agent_fixtures:three_arguments"}, r"\(input\) or \(input, context\)"),
        ({"callable": "agent_fixtures:shout", "args": []}, "unknown config key 'args'"),
    ],
)
def test_python_rejects_bad_config(config: dict[str, Any], expected: str) -> None:
    """Every unusable python config is reported at construction, naming the agent."""
    with pytest.raises(AgentConfigurationError, match=f"agent 'python': .*{expected}"):
        create("python", config)


async def test_python_sync_function_is_abandoned_on_cancel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cancelling a sync callable stops the wait at once; the late thread's result is discarded."""
    agent = create("python", {"callable": "agent_fixtures:wait_for_release"})
    agent_fixtures.STARTED.clear()
    agent_fixtures.RELEASE.clear()
    pool = trio.CapacityLimiter(1)
    outcomes: list[str] = []
    try:
        with trio.CancelScope() as scope:

            async def cancel_once_started() -> None:
                await trio.to_thread.run_sync(agent_fixtures.STARTED.wait)
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_once_started)
                outcomes.append(await agent.run("x", make_context(sync_limiter=pool)))
        assert scope.cancelled_caught
        assert outcomes == []
        assert "still running in its worker thread" in caplog.text
    finally:
        agent_fixtures.RELEASE.set()
    # The abandoned thread holds its pool token until it really ends, then logs that it did.
    async with pool:
        pass
    assert "its result was discarded" in caplog.text
    assert outcomes == []


async def test_usage_recorded_by_a_sync_function_reaches_the_trio_thread() -> None:
    """`context.record_usage` from a worker thread is carried over to the trio thread."""
    agent = create("python", {"callable": "agent_fixtures:record_tokens"})
    recorded: list[tuple[dict[str, int], bool]] = []

    def usage_callback(_context: AgentContext, counts: Any) -> None:
        recorded.append((dict(counts), threading.current_thread() is threading.main_thread()))

    assert await agent.run("x", make_context(usage_callback=usage_callback)) == "x"
    assert recorded == [({"tokens": 3}, True)]


async def test_an_abandoned_sync_function_publishes_no_progress() -> None:
    """Progress reported after the wait was abandoned raises Cancelled in the thread; none lands."""
    agent = create("python", {"callable": "agent_fixtures:progress_after_release"})
    agent_fixtures.STARTED.clear()
    agent_fixtures.RELEASE.clear()
    agent_fixtures.PROGRESS_OUTCOMES.clear()
    pool = trio.CapacityLimiter(1)
    published: list[Any] = []
    context = make_context(
        sync_limiter=pool, progress_callback=lambda _context, data: published.append(data)
    )
    try:
        with trio.CancelScope() as scope:

            async def cancel_once_started() -> None:
                await trio.to_thread.run_sync(agent_fixtures.STARTED.wait)
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_once_started)
                await agent.run("x", context)
    finally:
        agent_fixtures.RELEASE.set()
    async with pool:
        pass
    assert agent_fixtures.PROGRESS_OUTCOMES == ["Cancelled"]
    assert published == []
