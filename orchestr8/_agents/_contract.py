"""The agent contract: the `Agent` base class and the `AgentContext` every call receives.

An agent is an object with ``async def run(self, input, context)`` that returns a JSON-serialisable
result. It is built once from its (JSON) config by a factory, usually its class, so that a bad
config fails when the workflow is validated rather than in the middle of a run.

The context is built by the engine for every attempt, so it is kept cheap: a frozen slotted attrs
instance whose logger adapter is only made when an agent first asks for it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias, TypeVar

import attrs
import trio

from .._errors import AgentConfigurationError
from .._json import JSON, json_value
from .._llm._session import LLMSession
from ._sync_calls import run_sync_abandonable

T = TypeVar("T")

__all__ = [
    "Agent",
    "AgentContext",
    "AgentFactory",
    "AgentFunction",
    "ProgressCallback",
    "UsageCallback",
]

_LOGGER_NAME = "orchestr8.agents"
_MAX_USAGE = 2**63 - 1
"""The largest count `record_usage` takes: SQLite's and most metrics backends' integer limit."""


class Agent:
    """Base class of agents: built once from a config, then `run` once per attempt of a step.

    Subclasses that set `config_keys` get unknown config keys rejected by this constructor; they
    validate the values themselves (raising `AgentConfigurationError`) after calling it.
    """

    config_keys: ClassVar[frozenset[str] | None] = None
    """The config keys this agent understands; `None` accepts any key."""

    config: Mapping[str, Any]
    """A read-only copy of the config the agent was built from."""

    resilience_key: str | None = None
    """The service this agent calls, when its agent id does not name it: the default key of its
    step's circuit breaker, bulkhead and rate limiter (a policy's `key` still wins); None keys
    them by the agent id."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        """Keep a read-only copy of `config`, rejecting keys outside `config_keys`."""
        if not isinstance(config, Mapping):
            raise AgentConfigurationError(
                f"config must be a JSON object, got {type(config).__name__}"
            )
        self.config = MappingProxyType(dict(config))
        allowed = type(self).config_keys
        if allowed is not None and not allowed.issuperset(self.config):
            unknown = sorted(str(key) for key in self.config if key not in allowed)
            if unknown:
                expected = ", ".join(sorted(allowed)) or "no keys"
                raise AgentConfigurationError(
                    f"unknown config {_plural('key', len(unknown))} "
                    f"{', '.join(map(repr, unknown))} for {type(self).__name__}; "
                    f"expected: {expected}"
                )

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Do the agent's work for one attempt and return a JSON-serialisable result."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")


class _ContextLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter that adds the context's ids to every record, keeping the caller's extra."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Merge the bound ids under the caller's own `extra` (the stdlib adapter replaces it)."""
        extra = kwargs.get("extra")
        kwargs["extra"] = {**(self.extra or {}), **extra} if extra else self.extra
        return msg, kwargs


def _default_idempotency_key(context: AgentContext) -> str:
    return f"{context.execution_id}:{context.step_id}"


@attrs.frozen(kw_only=True)
class AgentContext:
    """What an agent knows about the call it serves: ids, logger, progress and cancellation.

    The engine builds one per attempt. `cancel_event` is shared by every step of an execution:
    the engine sets it when a user cancels, then cancels by force after the grace period.
    """

    execution_id: str
    """The id of the execution this call belongs to."""

    step_id: str
    """The id of the step within the workflow."""

    attempt: int = 1
    """Which attempt of the step this is, starting at 1."""

    workflow_name: str = ""
    """The name of the workflow being executed."""

    agent_id: str = ""
    """The id the step used to name its agent."""

    idempotency_key: str = attrs.field(
        default=attrs.Factory(_default_idempotency_key, takes_self=True)
    )
    """Stable across attempts and resumes of one step; use it to deduplicate side effects."""

    deadline: float = math.inf
    """The trio-clock time by which this attempt will be cancelled (`math.inf` when unbounded)."""

    progress_callback: ProgressCallback | None = None
    """Called synchronously with ``(context, data)`` by `progress`; must not block."""

    cancel_event: trio.Event | None = None
    """Set by the engine when a user cancels the execution; `None` means cancel is never asked."""

    usage_callback: UsageCallback | None = None
    """Called synchronously with ``(context, usage)`` by `record_usage`; must not block."""

    sync_limiter: trio.CapacityLimiter | None = None
    """The runtime's pool of threads for blocking agent code (`run_sync`); None: trio's default."""

    llm: LLMSession | None = None
    """The execution's LLM session (budgets, provider breakers, journaled calls and scores) for
    agents that call models; None outside an engine (`detached_session()` stands in)."""

    @functools.cached_property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry the context's ids as attributes, made on first use."""
        name = f"{_LOGGER_NAME}.{self.agent_id}" if self.agent_id else _LOGGER_NAME
        return _ContextLoggerAdapter(
            logging.getLogger(name),
            {
                "execution_id": self.execution_id,
                "step_id": self.step_id,
                "attempt": self.attempt,
                "agent_id": self.agent_id,
                "workflow_name": self.workflow_name,
                "idempotency_key": self.idempotency_key,
            },
        )

    def progress(self, data: Mapping[str, JSON]) -> None:
        """Publish a progress event carrying `data` (a JSON object); never blocks or awaits."""
        if not isinstance(data, Mapping):
            raise TypeError(f"progress data must be a mapping, got {type(data).__name__}")
        try:
            checked = json_value(dict(data))
        except (TypeError, ValueError) as error:
            raise type(error)(f"progress data is not JSON: {error}") from None
        callback = self.progress_callback
        if callback is not None:
            callback(self, checked)

    def record_usage(self, **counts: int) -> None:
        """Record resources this attempt consumed, e.g. `input_tokens=…, output_tokens=…`.

        The engine journals each record as a `step.usage` event and adds the counts to the step's
        and the execution's totals, so a run's token bill is in its result and its journal.
        """
        for name, value in counts.items():
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not whole or not 0 <= value <= _MAX_USAGE:
                # A huge int cannot even be shown (Python refuses to write one out).
                shown = "a larger number" if isinstance(value, int) and value > 0 else repr(value)
                raise ValueError(
                    f"usage {name!r} must be a whole number from 0 to 2**63 - 1, got {shown}"
                )
        callback = self.usage_callback
        if callback is not None:
            callback(self, dict(counts))

    @property
    def cancel_requested(self) -> bool:
        """Whether a user asked to cancel the execution, so the agent should wind down."""
        event = self.cancel_event
        return event is not None and event.is_set()

    async def wait_cancel_requested(self) -> None:
        """Wait until a user asks to cancel the execution (forever if cancel is never asked)."""
        event = self.cancel_event
        if event is None:
            await trio.sleep_forever()
        else:
            await event.wait()

    async def run_sync(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking `function(*args)` in a thread of the runtime's pool and return its result.

        The wait ends at the attempt's timeout, the execution's timeout or the end of a cancel's
        grace, even if the function is still running: the thread is then abandoned (it runs on,
        its result is discarded and a warning is logged), so what the function does after that
        still happens. Check `idempotency_key` before side effects that must not happen twice.
        The function runs in another thread: it must not call trio, nor this context's
        `progress` or `record_usage` (return what it found and report it afterwards).
        """
        call = functools.partial(function, *args) if args else function
        return await run_sync_abandonable(
            call, limiter=self.sync_limiter, what=f"step {self.step_id} attempt {self.attempt}"
        )

    def with_attempt(self, attempt: int) -> AgentContext:
        """Return a copy for another attempt of the same step, keeping the idempotency key."""
        return attrs.evolve(self, attempt=attempt)


ProgressCallback: TypeAlias = Callable[[AgentContext, Mapping[str, Any]], None]
UsageCallback: TypeAlias = Callable[[AgentContext, Mapping[str, int]], None]
"""What the engine hands a context to publish progress: called as ``callback(context, data)``."""

AgentFunction: TypeAlias = Callable[..., Awaitable[Any]]
"""An async function used as an agent: ``async def f(input, context)`` or ``async def f(input)``."""

AgentFactory: TypeAlias = Callable[[Mapping[str, Any]], Agent]
"""Builds an agent from its config: an `Agent` subclass, or any callable ``config -> Agent``."""


def _plural(noun: str, count: int) -> str:
    return noun if count == 1 else f"{noun}s"


def takes_context(function: Callable[..., Any], what: str) -> bool:
    """Whether `function` is called as ``(input, context)`` rather than ``(input)``.

    A function that accepts two positional arguments gets the context; one that accepts only one
    gets the input alone; a signature that cannot be inspected is called with the input alone.

    Raises:
        AgentConfigurationError: it accepts neither form.
    """
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return False
    for arguments, wants_context in (((None, None), True), ((None,), False)):
        try:
            signature.bind(*arguments)
        except TypeError:
            continue
        return wants_context
    raise AgentConfigurationError(
        f"{what} must accept (input) or (input, context); its signature is {signature}"
    )


class FunctionAgent(Agent):
    """An agent that awaits an async function, so a plain ``async def`` can serve as an agent."""

    config_keys = frozenset()

    def __init__(self, function: AgentFunction, config: Mapping[str, Any]) -> None:
        """Wrap `function`; it takes no config, so any config key is an error."""
        super().__init__(config)
        self.function = function
        self._takes_context = takes_context(function, _describe(function))

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Await the function with ``(input, context)`` or ``(input)``, as its signature asks."""
        if self._takes_context:
            return await self.function(input, context)
        return await self.function(input)


def is_async_callable(candidate: object) -> bool:
    """Whether calling `candidate` returns a coroutine: an async function or async `__call__`."""
    if inspect.isclass(candidate):
        return False
    call_method = getattr(type(candidate), "__call__", None)  # noqa: B004 - not a callable test
    return inspect.iscoroutinefunction(candidate) or inspect.iscoroutinefunction(call_method)


def _describe(function: object) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}:{name}" if module else name


def as_factory(candidate: object, origin: str) -> AgentFactory:
    """Turn what a registry source provides into an agent factory, checking it is usable.

    An `Agent` subclass or another callable is a factory already; an async function is wrapped in
    a `FunctionAgent`.

    Raises:
        TypeError: `candidate` is none of these; the message names `origin`.
    """
    if is_async_callable(candidate):
        function: AgentFunction = candidate  # type: ignore[assignment]
        return functools.partial(FunctionAgent, function)
    if callable(candidate):
        factory: AgentFactory = candidate
        return factory
    raise TypeError(
        f"{origin} is not an agent: expected an Agent subclass, a factory "
        f"'config -> Agent' or an async function, got {type(candidate).__name__}"
    )
