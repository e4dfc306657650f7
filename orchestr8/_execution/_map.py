"""Maps: a `for_each` step runs its agent once per item, each item a unit of its own.

A map step starts like any step, on a step actor (`StepRunner.run`), which becomes the map's
*coordinator*: it journals `step.started`, evaluates `for_each` (a list, or the step fails with
the value's JSON type), journals `map.started` with the count, and registers a `MapRun` with the
execution's `RunState`. From then on the items are units the engine schedules exactly like steps:
`RunState.next_step` hands out `MapItem`s from `items_ready` before ready steps, idle step actors
run them (no nursery or actor per item), and each item is journaled under its own id, `ID[i]`,
with its own `step.started`, attempts and ending. A `MapRun` keeps at most the step's
`max_concurrency` items queued or running, and builds the next item only when one finishes, so a
map of 100,000 items holds a bounded number of live units (the list of values and the outputs
are in memory).

A map step's `when` that reads `item` or `index` (`filters_items`) is a per-item filter: the
step runner does not check it for the step, and each item checks it (`MapCoordinator.check_item`)
as it is about to start. False skips the item (`step.skipped` for `ID[i]`, no agent call, `null`
in the output); an `ExpressionError` fails the item, and `on_item_error` applies. A resume
checks a skipped item's `when` again, as it does a step's.

The coordinator waits until every item has ended (or, with `on_item_error` `fail`, until the
first item failed for good: at once under `fail_fast`, once the running items ended otherwise),
then journals the map step's `step.succeeded` with the item outputs in order (`null` for items
that failed under `continue` or were filtered out) or its `step.failed`. A resume reuses the
outputs of items that succeeded (`completed_items`); only the others run again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from .._errors import ExpressionError, MapItemFailedError, MapItemsError
from .._journal._events import EventType, StepStatus, describe_error
from .._journal._map_items import split_item_id
from .._observability._logging import log_context
from .._observability._metrics import engine_metrics
from .._workflow._conditions import expression_scope
from .._workflow._document import Step, Workflow
from .._workflow._references import json_type_name
from ._children import agent_id_of
from ._results import StepResult
from ._skipping import when_was_false
from ._state import Ending

if TYPE_CHECKING:
    from .._journal._replay import ExecutionState
    from ._emitter import Emitter
    from ._state import RunState

_logger = logging.getLogger("orchestr8.engine")

#: How many items of a map run at once when neither the step nor the workflow sets a limit: a
#: map of 100,000 items must not start 100,000 agent calls (or hold as many live units) at once.
DEFAULT_MAP_CONCURRENCY: Final = 100


def reusable_items(
    state: ExecutionState, workflow: Workflow, completed: Mapping[str, Any]
) -> dict[str, dict[int, Any]]:
    """The item outputs a resume reuses: items that succeeded, of map steps that run again.

    By map step id and item index; an item whose journaled output was redacted runs again.
    """
    reused: dict[str, dict[int, Any]] = {}
    for unit_id, unit in state.steps.items():
        parsed = split_item_id(unit_id) if unit.reusable else None
        if parsed is None:
            continue
        step_id, index = parsed
        step = workflow.steps_by_id.get(step_id)
        if step is not None and step.for_each is not None and step_id not in completed:
            reused.setdefault(step_id, {})[index] = unit.output
    return reused


def item_id(step_id: str, index: int) -> str:
    """The journal's id of one item of a map step: `ID[index]` (step ids never hold `[`)."""
    return f"{step_id}[{index}]"


def map_concurrency(step: Step, workflow_limit: int) -> int:
    """How many items of `step` run at once: its `max_concurrency`, else the workflow's, capped.

    0 on the step means "the workflow's `max_concurrency`, at most `DEFAULT_MAP_CONCURRENCY`".
    """
    if step.max_concurrency:
        return step.max_concurrency
    if workflow_limit:
        return min(workflow_limit, DEFAULT_MAP_CONCURRENCY)
    return DEFAULT_MAP_CONCURRENCY


def unit_capacity(workflow: Workflow) -> int:
    """How many units (steps and map items) of `workflow` may be running at one time, at most."""
    return len(workflow.steps) + sum(
        map_concurrency(step, workflow.max_concurrency)
        for step in workflow.steps
        if step.for_each is not None
    )


@attrs.define(eq=False, slots=True)
class MapItem:
    """One item of a map: a unit the engine schedules and a step actor runs like a step."""

    step: Step
    """The map step: its agent, input template and policy run the item."""
    index: int
    id: str
    """The item's id in the journal, `ID[index]`."""
    local_values: Mapping[str, Any]
    """`{"item": value, "index": index}`: what `${item}` and `${index}` read."""


class MapRun:
    """One map step in progress: which items are queued, running, finished, and their outputs.

    It changes only in synchronous code (like `RunState`, which calls it); `on_done` is called
    once, when the coordinator may conclude the map.
    """

    def __init__(
        self,
        step: Step,
        values: list[Any],
        *,
        limit: int,
        reused: Mapping[int, Any] | None = None,
        fail_fast: bool = True,
        emit_cancelled: Callable[[str], None] | None = None,
    ) -> None:
        """Run `step` over `values`, `limit` at once; `reused` outputs (a resume's) run no agent."""
        self.step = step
        self.values = values
        self.outputs: list[Any] = [None] * len(values)
        """Each item's output, in order; `null` until it succeeded (and for failed items)."""
        self.limit = limit
        self.fail_fast = fail_fast
        self._reused = dict(reused or {})
        self._emit_cancelled = emit_cancelled
        self._next = 0
        self.in_flight = 0
        """Items queued or running."""
        self.succeeded = 0
        self.reused = 0
        self.failed: list[int] = []
        """The indices of the items that failed for good, in the order they failed."""
        self.cancelled = 0
        self.skipped = 0
        """Items its per-item `when` filtered out: their outputs are `null`."""
        self.failure: dict[str, Any] | None = None
        """The error of the first item that failed for good (with `on_item_error` `fail`)."""
        self.stopping = False
        """No item starts any more: an item failed for good, or the run is ending."""
        self.done = False
        self.on_done: Callable[[], None] = _nothing

    @property
    def count(self) -> int:
        """How many items the map has."""
        return len(self.values)

    def refill(self, ready: deque[MapItem]) -> None:
        """Queue the next items in `ready` while fewer than `limit` are queued or running."""
        values, reused, step = self.values, self._reused, self.step
        while not self.stopping and self.in_flight < self.limit and self._next < len(values):
            index = self._next
            self._next += 1
            if index in reused:
                self.outputs[index] = reused.pop(index)
                self.succeeded += 1
                self.reused += 1
                continue
            self.in_flight += 1
            ready.append(
                MapItem(
                    step, index, item_id(step.id, index), {"item": values[index], "index": index}
                )
            )
        self._check_done()

    def settle(self, index: int, result: StepResult, ready: deque[MapItem]) -> None:
        """Record how one item ended, and queue the items that may start now."""
        self.in_flight -= 1
        status = result.status
        if status is StepStatus.SUCCEEDED:
            self.outputs[index] = result.output
            self.succeeded += 1
        elif status is StepStatus.SKIPPED:
            self.skipped += 1
        elif status is StepStatus.FAILED:
            self.failed.append(index)
            if self.step.on_item_error == "fail" and self.failure is None:
                self.failure = _item_failure(index, result.error)
                self.stopping = True
        else:
            self.cancelled += 1
            self.stopping = True
            if self._emit_cancelled is not None:
                self._emit_cancelled(item_id(self.step.id, index))
        self.refill(ready)

    def stop(self, ready: deque[MapItem]) -> None:
        """Start no more items (the run is ending); drop the queued ones, which never started."""
        self.stopping = True
        kept = deque(unit for unit in ready if unit.step is not self.step)
        self.in_flight -= len(ready) - len(kept)
        ready.clear()
        ready.extend(kept)
        self._check_done()

    def _check_done(self) -> None:
        if self.done:
            return
        finished = self.in_flight == 0 and (self.stopping or self._next == len(self.values))
        if finished or (self.failure is not None and self.fail_fast):
            self.done = True
            self.on_done()

    def result(self) -> StepResult:
        """The map step's result once done: its outputs in order, or the first item's failure."""
        if self.failure is not None:
            return StepResult(StepStatus.FAILED, error=self.failure)
        if self.cancelled or self._next < len(self.values):
            return StepResult(StepStatus.CANCELLED)
        return StepResult(StepStatus.SUCCEEDED, output=self.outputs)

    def summary(self) -> dict[str, Any]:
        """What the map step's final event records besides its output: counts and failed items."""
        data: dict[str, Any] = {"count": self.count, "succeeded": self.succeeded}
        if self.reused:
            data["reused"] = self.reused
        if self.skipped:
            data["skipped"] = self.skipped
        if self.failed:
            data["failed_items"] = sorted(self.failed)
        return data


def _nothing() -> None:
    """The default `MapRun.on_done`: nobody waits yet."""


def _item_failure(index: int, error: dict[str, Any] | None) -> dict[str, Any]:
    """The map step's error for the item that failed it: which item, and what it failed with."""
    detail = error or {"type": "Error", "message": "the item failed"}
    return {
        "type": MapItemFailedError.__name__,
        "message": f"item {index} failed: {detail.get('type')}: {detail.get('message')}",
    }


class MapCoordinator:
    """Runs map steps on a step actor: evaluates `for_each`, hands the items over, concludes."""

    def __init__(self, *, state: RunState, emitter: Emitter, stop_event: trio.Event) -> None:
        """Coordinate the maps of `state`'s run, journaling through `emitter`.

        `stop_event` (a cancel, a timeout or a failure winding the run down) stops a map from
        starting more items; it ends once its running items have.
        """
        self._state = state
        self._emitter = emitter
        self._stop_event = stop_event

    async def run(self, step: Step) -> StepResult:
        """Run one map step to its end: every item, or until one fails or the run stops."""
        emitter, state, step_id = self._emitter, self._state, step.id
        assert step.for_each is not None, "only a step with for_each is a map"
        await emitter.emit(
            EventType.STEP_STARTED, step_id=step_id, data={"agent": agent_id_of(step)}, trusted=True
        )
        try:
            values = step.for_each.evaluate(expression_scope(state.inputs, state.outputs))
            if not isinstance(values, list):
                raise MapItemsError(
                    f"for_each yielded {json_type_name(values)}, not an array "
                    f"(for_each: {step.for_each.text})"
                )
            reused = state.completed_items.get(step_id)
            recorded = state.recorded_item_counts.get(step_id)
            if reused and recorded is not None and recorded != len(values):
                raise MapItemsError(
                    f"for_each yielded {len(values)} items, but the run being resumed had"
                    f" {recorded}: its {len(reused)} finished items cannot be matched to these"
                    " (resume with the inputs it ran with)"
                )
        except (ExpressionError, MapItemsError) as error:
            return await self._failed(step, describe_error(error), error)
        await emitter.emit(
            EventType.MAP_STARTED, step_id=step_id, data={"count": len(values)}, trusted=True
        )
        run = MapRun(
            step,
            values,
            limit=map_concurrency(step, state.workflow.max_concurrency),
            reused=reused,
            fail_fast=state.workflow.fail_fast,
            emit_cancelled=self._item_cancelled,
        )
        finished = trio.Event()
        run.on_done = finished.set
        state.start_map(run)
        try:
            if not run.done:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._stop_when_run_stops, run)
                    await finished.wait()
                    nursery.cancel_scope.cancel()
        finally:
            state.end_map(run)
        result = run.result()
        if result.status is StepStatus.FAILED:
            assert result.error is not None
            return await self._failed(
                step, result.error, MapItemFailedError(result.error["message"])
            )
        if result.status is StepStatus.SUCCEEDED:
            await emitter.emit(
                EventType.STEP_SUCCEEDED,
                step_id=step_id,
                data={"output": result.output, **run.summary()},
            )
        return result

    async def _stop_when_run_stops(self, run: MapRun) -> None:
        """Stop `run` from starting items once the execution winds down."""
        await self._stop_event.wait()
        self._state.stop_map(run)

    async def _failed(self, step: Step, error: dict[str, Any], exception: Exception) -> StepResult:
        """Journal a map step that failed for good, and return its result."""
        if step.on_error != "continue":
            self._state.record_failure(step.id, exception)
        await self._emitter.emit(EventType.STEP_FAILED, step_id=step.id, data={"error": error})
        return StepResult(StepStatus.FAILED, error=error)

    async def check_item(self, item: MapItem, series: str) -> StepResult | None:
        """Evaluate a map step's per-item `when` for `item`: None when it holds, else its end.

        False journals `step.skipped` for the item (`ID[i]`) with the reason, and the item runs
        no agent; an `ExpressionError` journals the item's `step.failed` with its message, and
        the step's `on_item_error` applies to it as to any failed item. `series` is the step
        metrics' step label (`StepRunner`'s choice).
        """
        step = item.step
        assert step.when is not None, "only a map step with a per-item when filters items"
        started = trio.current_time()
        state = self._state
        try:
            holds = step.when.holds(
                expression_scope(state.inputs, state.outputs, **item.local_values)
            )
        except ExpressionError as error:
            result = StepResult(StepStatus.FAILED, error=describe_error(error))
            await self._emitter.emit(
                EventType.STEP_FAILED, step_id=item.id, data={"error": result.error}
            )
            agent_id = agent_id_of(step)
            with log_context(step_id=item.id, agent_id=agent_id):
                _logger.warning("item %s failed before it started: %s", item.id, error)
            engine_metrics().step_finished(
                state.workflow.name,
                series,
                agent_id,
                result.status,
                trio.current_time() - started,
            )
            return result
        if holds:
            return None
        # Not `trusted`: the expression is the workflow's text, which may hold a literal secret.
        await self._emitter.emit(
            EventType.STEP_SKIPPED, step_id=item.id, data={"reason": when_was_false(step.when.text)}
        )
        return StepResult(StepStatus.SKIPPED)

    def _item_cancelled(self, unit_id: str) -> None:
        """Journal an item that did not run to its end (the run was cancelled or wound down).

        Not when the run is suspended with gates open: the item waits for the resume.
        """
        if self._state.ending is Ending.WAITING:
            return
        self._emitter.emit_nowait(
            EventType.STEP_CANCELLED,
            step_id=unit_id,
            data={"reason": self._state.ending.value},
            trusted=True,
        )
