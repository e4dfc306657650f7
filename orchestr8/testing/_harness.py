"""Test harness: run one agent, run a workflow in memory, capture the events a runtime publishes.

Everything here runs on the trio clock and an in-memory journal (no threads, no files), so a test
that runs under `trio.testing.MockClock` (pytest-trio's `autojump_clock` fixture) sees retries,
timeouts and `sleep` steps finish instantly, and event `elapsed` times are exact.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import attrs
import trio

from .._agents._contract import Agent, AgentContext, AgentFactory, AgentFunction, _describe
from .._agents._registry import AgentRegistry
from .._errors import unwrap_single_error
from .._execution._results import ExecutionResult
from .._execution._runtime import Runtime, WorkflowLike, open_runtime
from .._execution._step_run import as_json_value
from .._journal._events import Event
from .._supervision._bus import EventBus

__all__ = [
    "AgentRun",
    "CapturedEvents",
    "WorkflowRun",
    "capture_events",
    "run_agent",
    "run_workflow_for_test",
]

_Agents = Mapping[str, AgentFactory | AgentFunction]


@attrs.frozen
class AgentRun:
    """What one call of an agent produced: its output and what it reported through its context."""

    output: Any
    """The agent's result, as the journal would record it (tuples become lists, keys strings)."""

    context: AgentContext
    """The context the agent was called with."""

    progress: list[dict[str, Any]] = attrs.field(factory=list)
    """Every `context.progress(data)` call's data, in order."""

    usage_records: list[dict[str, int]] = attrs.field(factory=list)
    """Every `context.record_usage(...)` call's counts, in order."""

    @property
    def usage(self) -> dict[str, int]:
        """The recorded usage summed per name, as a step's result reports it."""
        totals: dict[str, int] = {}
        for record in self.usage_records:
            for name, value in record.items():
                totals[name] = totals.get(name, 0) + value
        return totals


async def run_agent(
    agent: str | Agent | AgentFactory | AgentFunction,
    input: Any = None,
    *,
    config: Mapping[str, Any] | None = None,
    context: AgentContext | Mapping[str, Any] | None = None,
    agents: _Agents | None = None,
) -> AgentRun:
    """Build an agent as the engine would, call it once, and return what it produced.

    Args:
        agent: an agent id (resolved like a workflow step's, `agents` first), an `Agent`
            subclass or factory, an async function, or an agent instance.
        input: the input the step would render.
        config: the agent's config (not for an instance, which is built already).
        context: an `AgentContext` to use, or overrides of the default one's fields
            (`execution_id`, `step_id`, `attempt`, `deadline`, `cancel_event`, ...). Progress and
            usage are captured either way; a given context's own callbacks are still called.
            The call is cancelled at the context's `deadline` (trio clock), raising
            `trio.TooSlowError`, as the engine cancels an attempt at its timeout.
        agents: agents by id, looked up before the built-ins, as `open_runtime(agents=...)`.

    Raises:
        UnknownAgentError, AgentConfigurationError: the agent cannot be found or built.
        OutputNotSerialisableError: the agent returned something that is not JSON.
        Whatever the agent raised, unchanged.
    """
    built, agent_id = _build(agent, config, agents)
    progress: list[dict[str, Any]] = []
    usage_records: list[dict[str, int]] = []
    call_context = _context(context, agent_id, progress, usage_records)
    with trio.fail_at(call_context.deadline):
        output = await built.run(input, call_context)
    return AgentRun(as_json_value(output), call_context, progress, usage_records)


def _build(
    agent: str | Agent | AgentFactory | AgentFunction,
    config: Mapping[str, Any] | None,
    agents: _Agents | None,
) -> tuple[Agent, str]:
    if isinstance(agent, str):
        return AgentRegistry(agents).create(agent, config), agent
    if not isinstance(agent, type) and callable(getattr(agent, "run", None)):
        if config is not None:
            raise TypeError("config is for an agent id, class or factory; this agent is built")
        instance: Agent = agent  # type: ignore[assignment]
        return instance, _describe(type(agent))
    factory: AgentFactory | AgentFunction = agent  # type: ignore[assignment]
    agent_id = _describe(factory)
    return AgentRegistry({**(agents or {}), agent_id: factory}).create(agent_id, config), agent_id


def _context(
    given: AgentContext | Mapping[str, Any] | None,
    agent_id: str,
    progress: list[dict[str, Any]],
    usage_records: list[dict[str, int]],
) -> AgentContext:
    base = given if isinstance(given, AgentContext) else None
    outer_progress = base.progress_callback if base is not None else None
    outer_usage = base.usage_callback if base is not None else None

    def on_progress(context: AgentContext, data: Mapping[str, Any]) -> None:
        progress.append(dict(data))
        if outer_progress is not None:
            outer_progress(context, data)

    def on_usage(context: AgentContext, counts: Mapping[str, int]) -> None:
        usage_records.append(dict(counts))
        if outer_usage is not None:
            outer_usage(context, counts)

    if base is not None:
        return attrs.evolve(base, progress_callback=on_progress, usage_callback=on_usage)
    fields: dict[str, Any] = {
        "execution_id": "test-execution",
        "step_id": "test-step",
        "workflow_name": "test",
        "agent_id": agent_id,
        "cancel_event": trio.Event(),
        **(given if isinstance(given, Mapping) else {}),
        "progress_callback": on_progress,
        "usage_callback": on_usage,
    }
    return AgentContext(**fields)


def _select(events: Iterable[Event], types: tuple[str, ...], step_id: str | None) -> list[Event]:
    return [
        event
        for event in events
        if (not types or event.type in types) and (step_id is None or event.step_id == step_id)
    ]


class WorkflowRun(NamedTuple):
    """A finished test run: unpack it as ``result, events = await run_workflow_for_test(...)``."""

    result: ExecutionResult
    """How the execution ended."""

    events: list[Event]
    """Every event of the execution, read back from the journal, in `seq` order."""

    def types(self) -> list[str]:
        """The event types in order, for asserting on the shape of a run."""
        return [str(event.type) for event in self.events]

    def of_type(self, *types: str, step_id: str | None = None) -> list[Event]:
        """The events of the given types (all types if none), optionally of one step."""
        return _select(self.events, types, step_id)


async def run_workflow_for_test(
    workflow: WorkflowLike,
    inputs: Mapping[str, Any] | None = None,
    *,
    agents: _Agents | None = None,
    execution_timeout: float | None = None,
    cancel_grace: float = 5.0,
    seed: int | None = 0,
) -> WorkflowRun:
    """Run a workflow to its end in a runtime of its own, on an in-memory journal.

    Args:
        workflow: a `Workflow`, a document, JSON text or a path, as `run_workflow` takes.
        inputs: the workflow's inputs.
        agents: agents by id, looked up before the built-ins.
        execution_timeout: overrides the workflow's `timeout`.
        cancel_grace: seconds cancelled steps get to finish before being forced.
        seed: seeds the retry jitter so runs repeat exactly; None for a random seed.

    Returns:
        The result and the execution's events, as a `WorkflowRun`.

    Raises:
        WorkflowValidationError: the workflow is invalid.
        InputValidationError: the inputs do not fit the workflow's `inputs` schema.
    """
    source = None if seed is None else random.Random(seed)
    async with open_runtime(
        agents=agents, cancel_grace=cancel_grace, random_source=source
    ) as runtime:
        handle = await runtime.start(workflow, inputs, execution_timeout=execution_timeout)
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    return WorkflowRun(result, events)


@attrs.define(eq=False)
class CapturedEvents:
    """The events a bus published while `capture_events` was open, growing as they arrive."""

    published: list[object] = attrs.field(factory=list)
    """Everything published, in order: execution events and actor lifecycle events."""

    events: list[Event] = attrs.field(factory=list)
    """The execution events among them, in order."""

    _arrived: trio.Event = attrs.field(factory=trio.Event)

    def of_type(
        self, *types: str, step_id: str | None = None, execution_id: str | None = None
    ) -> list[Event]:
        """The events of the given types (all types if none), optionally of one step or run."""
        events = self.events
        if execution_id is not None:
            events = [event for event in events if event.execution_id == execution_id]
        return _select(events, types, step_id)

    def types(self, execution_id: str | None = None) -> list[str]:
        """The event types in order, optionally of one execution."""
        return [str(event.type) for event in self.of_type(execution_id=execution_id)]

    async def wait_for(
        self, type: str, *, step_id: str | None = None, execution_id: str | None = None
    ) -> Event:
        """Wait until an event of `type` (of the step, of the execution) has arrived; return it.

        Returns at once with the first match when one has arrived already. Bound the wait with
        `trio.fail_after` when the event might never come.
        """
        while True:
            found = self.of_type(type, step_id=step_id, execution_id=execution_id)
            if found:
                await trio.lowlevel.checkpoint()
                return found[0]
            await self._arrived.wait()

    def _add(self, item: object) -> None:
        self.published.append(item)
        if isinstance(item, Event):
            self.events.append(item)
        self._arrived.set()
        self._arrived = trio.Event()

    async def _collect(self, receive: trio.MemoryReceiveChannel[Any]) -> None:
        async for item in receive:
            self._add(item)


@asynccontextmanager
async def capture_events(
    source: Runtime | EventBus, *, buffer: int = 10_000
) -> AsyncIterator[CapturedEvents]:
    """Record everything `source` (a runtime or its bus) publishes while the block is open.

    The subscription is lossless, so no event is missed; events published before the block
    opened are not seen (read those from `runtime.journal.events(execution_id)`).

    Args:
        source: a `Runtime` (its bus is used) or an `EventBus`.
        buffer: how many events may wait for the collector task.
    """
    bus = source.bus if isinstance(source, Runtime) else source
    captured = CapturedEvents()
    async with bus.subscribe(buffer=buffer, lossless=True) as receive:
        try:
            async with unwrap_single_error(), trio.open_nursery() as nursery:
                nursery.start_soon(captured._collect, receive)
                try:
                    yield captured
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            # The collector stopped after taking its last item; whatever is still buffered
            # came after it, so appending it now keeps the order.
            while True:
                try:
                    captured._add(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
