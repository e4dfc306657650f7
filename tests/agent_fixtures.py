"""Agents and callables that the agent tests load by `module:attribute` path and entry point.

pytest puts `tests/` on sys.path (rootdir conftest, prepend import mode), so these are reachable
as ``agent_fixtures:NAME``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import trio
import trio.lowlevel

from orchestr8._agents._contract import Agent, AgentContext

NOT_AN_AGENT = 42

STARTED = threading.Event()
RELEASE = threading.Event()


class Shout(Agent):
    """Upper-cases its input and appends the configured suffix."""

    config_keys = frozenset({"suffix"})

    async def run(self, input: Any, context: AgentContext) -> Any:
        return str(input).upper() + str(self.config.get("suffix", ""))


def make_shout(config: Mapping[str, Any]) -> Agent:
    """Build a `Shout` through a factory function rather than the class."""
    return Shout({"suffix": "!", **config})


class Outer:
    """Holds a nested agent class, to check dotted attributes in import paths."""

    class Inner(Agent):
        """Returns a fixed marker."""

        async def run(self, input: Any, context: AgentContext) -> Any:
            return "inner"


async def greet(input: Any, context: AgentContext) -> str:
    """An async function agent that takes the context."""
    await trio.lowlevel.checkpoint()
    return f"hello {input} from {context.step_id}"


async def double(input: Any) -> Any:
    """An async function agent that takes only the input."""
    await trio.lowlevel.checkpoint()
    return {"value": input * 2, "thread": threading.get_ident()}


class AsyncCallable:
    """An object whose async __call__ makes it usable as a function agent."""

    async def __call__(self, input: Any, context: AgentContext) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return {"called": input, "step": context.step_id}


ASYNC_CALLABLE = AsyncCallable()


def shout(input: Any) -> str:
    """A sync function that takes only the input."""
    return str(input).upper()


def where_am_i(input: Any) -> dict[str, Any]:
    """A sync function reporting the thread it runs in."""
    return {"input": input, "thread": threading.get_ident()}


def report_progress(input: Any, context: AgentContext) -> dict[str, Any]:
    """A sync function that takes the context and publishes progress from its worker thread."""
    context.progress({"seen": input})
    return {"attempt": context.attempt, "key": context.idempotency_key}


def explode(input: Any) -> None:
    """A sync function that always raises."""
    raise ValueError(f"boom: {input}")


def three_arguments(first: Any, second: Any, third: Any) -> None:
    """A function with a signature no agent call fits."""


async def async_three_arguments(first: Any, second: Any, third: Any) -> None:
    """An async function with a signature no agent call fits."""


def wait_for_release(input: Any) -> Any:
    """A sync function that signals STARTED, then blocks until RELEASE is set."""
    STARTED.set()
    if not RELEASE.wait(timeout=10):
        raise TimeoutError("RELEASE was never set")
    return input


def interrupt(input: Any) -> Any:
    """A sync function that raises KeyboardInterrupt itself, as some libraries do."""
    raise KeyboardInterrupt


PROGRESS_OUTCOMES: list[str] = []
"""What each `progress_after_release` call's progress report did, in order."""


def progress_after_release(input: Any, context: AgentContext) -> Any:
    """Signal STARTED, block until RELEASE, then report progress and note how that went."""
    STARTED.set()
    RELEASE.wait(timeout=10)
    try:
        context.progress({"late": True})
    except BaseException as error:
        PROGRESS_OUTCOMES.append(type(error).__name__)
        raise
    PROGRESS_OUTCOMES.append("published")
    return input


def record_tokens(input: Any, context: AgentContext) -> Any:
    """A sync function that records the usage of its work through its context."""
    context.record_usage(tokens=3)
    return input
