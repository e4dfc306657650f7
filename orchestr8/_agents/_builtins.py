"""The built-in agents: `echo`, `sleep`, `fail` and `python`.

They exist for trying workflows out, for tests (`fail` is deterministic across retries because it
counts `context.attempt`), and for calling plain Python functions without writing an agent class.
Every config is validated when the agent is built, so a bad one fails at validation time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
import trio

from .._errors import AgentConfigurationError, NonRetryableError, RetryableError
from ._contract import (
    Agent,
    AgentContext,
    AgentFactory,
    is_async_callable,
    takes_context,
)
from ._import_path import import_object

__all__ = ["BUILTIN_AGENTS", "EchoAgent", "FailAgent", "PythonAgent", "SleepAgent"]


def _check_seconds(value: object, what: str) -> float:
    """Return `value` as seconds, or raise `ValueError` saying why it is not a usable duration."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{what} must be 0 or more, got {value!r}")
    return seconds


class EchoAgent(Agent):
    """Returns its input unchanged: the smallest useful agent, for wiring and reference tests."""

    config_keys = frozenset()

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Return `input` as it came."""
        return input


class SleepAgent(Agent):
    """Sleeps on the trio clock, then returns its input: stands in for slow work in tests and demos.

    The duration is ``config["seconds"]`` when given, otherwise the ``"seconds"`` key of a mapping
    input. It does not watch the cooperative cancel signal, so it ends only by finishing or by
    being cancelled by force, which makes it the agent for exercising timeouts and grace periods.
    """

    config_keys = frozenset({"seconds"})

    def __init__(self, config: Mapping[str, Any]) -> None:
        """Check that `seconds`, when configured, is a number of seconds of 0 or more."""
        super().__init__(config)
        self.seconds: float | None = None
        if "seconds" in self.config:
            try:
                self.seconds = _check_seconds(self.config["seconds"], "seconds")
            except ValueError as error:
                raise AgentConfigurationError(str(error)) from None

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Sleep for the configured (or input) number of seconds, then return `input`.

        Raises:
            NonRetryableError: no duration is configured and the input carries no valid one.
        """
        seconds = self.seconds
        if seconds is None:
            if not isinstance(input, Mapping) or "seconds" not in input:
                raise NonRetryableError(
                    "sleep needs 'seconds' in its config or as a key of its input object"
                )
            try:
                seconds = _check_seconds(input["seconds"], "input 'seconds'")
            except ValueError as error:
                raise NonRetryableError(str(error)) from None
        await trio.sleep(seconds)
        return input


class FailAgent(Agent):
    """Fails its first `times` attempts (every attempt without `times`), then returns its input.

    It counts `context.attempt`, so the outcome of each attempt is fixed whatever ran before,
    which makes retry behaviour reproducible in tests. Config: ``times`` (an int of 0 or more),
    ``message``, ``retryable`` (default true: `RetryableError`, else `NonRetryableError`) and
    ``retry_after`` (seconds, only with ``retryable``: the lower bound it suggests for the delay).
    """

    config_keys = frozenset({"times", "message", "retryable", "retry_after"})

    def __init__(self, config: Mapping[str, Any]) -> None:
        """Check the types and ranges of `times`, `message`, `retryable` and `retry_after`."""
        super().__init__(config)
        times = self.config.get("times")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
            raise AgentConfigurationError(f"times must be an integer, got {type(times).__name__}")
        if times is not None and times < 0:
            raise AgentConfigurationError(f"times must be 0 or more, got {times!r}")
        message = self.config.get("message")
        if message is not None and not isinstance(message, str):
            raise AgentConfigurationError(f"message must be a string, got {type(message).__name__}")
        retryable = self.config.get("retryable", True)
        if not isinstance(retryable, bool):
            raise AgentConfigurationError(
                f"retryable must be true or false, got {type(retryable).__name__}"
            )
        retry_after = self.config.get("retry_after")
        if retry_after is not None:
            if not retryable:
                raise AgentConfigurationError("retry_after needs retryable to be true")
            try:
                retry_after = _check_seconds(retry_after, "retry_after")
            except ValueError as error:
                raise AgentConfigurationError(str(error)) from None
        self.times: int | None = times
        self.message: str | None = message
        self.retryable: bool = retryable
        self.retry_after: float | None = retry_after

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Raise for attempts up to `times` (for all attempts without it), else return `input`.

        Raises:
            RetryableError: the attempt is one that fails and `retryable` is true.
            NonRetryableError: the attempt is one that fails and `retryable` is false.
        """
        attempt = context.attempt
        if self.times is not None and attempt > self.times:
            return input
        if self.message is not None:
            message = self.message
        elif self.times is None:
            message = f"fail agent: attempt {attempt} failed (configured to always fail)"
        else:
            message = f"fail agent: attempt {attempt} failed (configured to fail {self.times})"
        if self.retryable:
            raise RetryableError(message, retry_after=self.retry_after)
        raise NonRetryableError(message)


class PythonAgent(Agent):
    """Calls the Python function named by ``config["callable"]`` (``"module:function"``).

    The function is called with ``(input, context)`` when it accepts two positional arguments,
    otherwise with ``(input)``. Async functions are awaited in the trio thread. Sync functions run
    in a worker thread of the runtime's pool (`AgentContext.run_sync`), so they cannot stall the
    event loop, and timeouts and cancellation end the attempt on time: the thread is abandoned
    (it runs on, its result discarded). Their context publishes progress through the trio thread;
    once abandoned, a progress call raises `trio.Cancelled` in the thread, ending it sooner. The
    function's exceptions propagate unchanged. Its breaker and limits are keyed
    ``python:<module:function>`` (`resilience_key`), so unrelated functions never share them.
    """

    config_keys = frozenset({"callable"})

    def __init__(self, config: Mapping[str, Any]) -> None:
        """Import the function now, so a wrong path or an unusable signature fails early."""
        super().__init__(config)
        path = self.config.get("callable")
        if path is None:
            raise AgentConfigurationError("'callable' is required: a 'module:function' path")
        if not isinstance(path, str):
            raise AgentConfigurationError(
                f"callable must be a 'module:function' string, got {type(path).__name__}"
            )
        try:
            function = import_object(path)
        except (ValueError, ImportError, AttributeError) as error:
            raise AgentConfigurationError(f"callable {path!r}: {error}") from error
        if not callable(function):
            raise AgentConfigurationError(
                f"callable {path!r} is a {type(function).__name__}, not a function"
            )
        self.function: Callable[..., Any] = function
        # Each function is its own service: one failing must not open another's breaker.
        self.resilience_key = f"python:{path}"
        self.is_async = is_async_callable(function)
        self.takes_context = takes_context(function, f"callable {path!r}")

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Call the function with the input (and the context if it takes one); return its result."""
        if self.is_async:
            if self.takes_context:
                return await self.function(input, context)
            return await self.function(input)
        if self.takes_context:
            return await context.run_sync(self.function, input, _thread_context(context))
        return await context.run_sync(self.function, input)


def _thread_context(context: AgentContext) -> AgentContext:
    """Copy `context` so that progress and usage reported from a worker thread reach trio's."""
    progress, usage = context.progress_callback, context.usage_callback
    return attrs.evolve(
        context,
        progress_callback=None if progress is None else _in_trio_thread(progress),
        usage_callback=None if usage is None else _in_trio_thread(usage),
    )


def _in_trio_thread(callback: Callable[[AgentContext, Any], None]) -> Callable[..., None]:
    """`callback`, called from a worker thread, run in the trio thread while the call is live.

    An abandoned call reports nothing (its step may be over): `trio.Cancelled` is raised in the
    thread instead, which unwinds the function sooner.
    """

    def report_from_thread(thread_context: AgentContext, data: Any) -> None:
        trio.from_thread.check_cancelled()
        trio.from_thread.run_sync(callback, thread_context, data)

    return report_from_thread


BUILTIN_AGENTS: Mapping[str, AgentFactory] = MappingProxyType(
    {
        "echo": EchoAgent,
        "fail": FailAgent,
        "python": PythonAgent,
        "sleep": SleepAgent,
    }
)
"""The agents every registry knows, by id; an embedding program's mapping may shadow them."""
