"""The live state of one execution: what finished, what waits, what is ready or runs, how it ends.

`RunState` is the one record the engine (`ExecutionRun`), its step actors (`StepRunner`) and the
`Conclusion` share: the outputs and results of the steps that finished, the usage agents
reported, the steps still waiting for dependencies, those ready to start, those running (with
the step actor running each), and the run's `Ending`. It changes only through its synchronous
methods, which hold the scheduling rules: a step's outcome makes its dependents ready or skips
them, `fail_fast` ends the run, concurrency caps what starts. No method awaits, so the scheduler
task and the step actors can all settle outcomes without locks, and the rules are testable
without trio.

(The name is not `ExecutionState`: that is the public record `replay` folds from the journal.)
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._journal._events import StepStatus
from .._workflow._document import Step, Workflow
from ._results import StepResult
from ._skipping import dependency_failed, read_was_skipped

if TYPE_CHECKING:
    from .._supervision._actor import ActorRef
    from ._map import MapItem, MapRun


class Ending(enum.Enum):
    """How a run ended, which decides the execution's terminal event and status."""

    COMPLETED = "completed"
    """Every step reachable ran (or was skipped): the steps' results decide the status."""
    FAILED = "failed"
    """A step failed for good under `fail_fast`: the rest was forced to stop."""
    CANCELLED = "cancelled"
    """A cancel was requested (by a user, or by the journal failing)."""
    TIMED_OUT = "timed_out"
    """The execution ran past its `timeout`."""
    WAITING = "waiting"
    """Suspended while only approval gates were open: it ends `waiting`, to be resumed."""


@attrs.define(eq=False)
class StepSlot:
    """A step actor as the scheduler sees it: its ref and the step it was last given, if any."""

    ref: ActorRef = attrs.field(init=False)
    """Set once the actor is spawned (the actor itself is built with this slot)."""
    step: Step | MapItem | None = None
    """The step or map item it runs, or None when idle."""


def _ignore_skip(step_id: str, reason: str) -> None:
    """The default for `RunState.on_skipped`: nobody is told."""


def _ignore_units() -> None:
    """The default for `RunState.on_units_ready`: nobody is told."""


@attrs.define(eq=False, kw_only=True)
class RunState:
    """One execution's live state and the synchronous rules that change it."""

    workflow: Workflow
    inputs: Mapping[str, Any]
    outputs: dict[str, Any]
    """The real (unredacted) outputs of the steps that succeeded or continued past a failure."""
    results: dict[str, StepResult]
    """Every step that finished (or was reused, skipped or given up on), by step id."""
    usage: dict[str, int]
    """Resource counts agents reported, summed over the execution."""
    step_usage: dict[str, dict[str, int]]
    """The same counts per step."""
    waiting: dict[str, int]
    """Steps not yet ready, with how many of their dependencies have not finished."""
    ready: deque[str]
    """Steps whose dependencies all finished, in the order they became ready."""
    running: dict[str, StepSlot] = attrs.field(factory=dict)
    """Steps started and not yet settled, with the step actor running each."""
    idle: list[StepSlot] = attrs.field(factory=list)
    """Step actors that finished their step and wait for another."""
    reads_skipped: dict[str, str] = attrs.field(factory=dict)
    """Waiting steps that read the output of a skipped step (and do not accept a skip), with
    that step: each is skipped once ready (`pass_over_skipped`)."""
    _readers: dict[str, list[str]] | None = attrs.field(default=None, init=False)
    failures: dict[str, Exception] = attrs.field(factory=dict)
    """What failed each step that failed for good with `on_error` `fail`: for the span."""
    ending: Ending = Ending.COMPLETED
    limit: float = math.inf
    """How many steps may run at once (the workflow's `max_concurrency`)."""
    on_skipped: Callable[[str, str], None] = _ignore_skip
    """Told `(step_id, reason)` for each step skipped because a dependency failed or a step it
    reads was skipped: the engine journals it."""
    units: Mapping[str, Any] = attrs.field(factory=dict)
    """The outputs a resume reuses of units that are not steps (a loop's iterations, `ID#k`),
    by unit id."""
    maps: dict[str, MapRun] = attrs.field(factory=dict)
    """The map steps that started their items, by step id (`_map`)."""
    items_ready: deque[MapItem] = attrs.field(factory=deque)
    """Map items queued to start; they start before ready steps, so started maps finish."""
    coordinating: int = 0
    """Map steps waiting for their items: they hold a step actor but no concurrency slot."""
    gated: int = 0
    """Units waiting at an approval gate for an answer: they hold a step actor but no
    concurrency slot, so the rest of the workflow keeps running (`_gates`)."""
    completed_items: Mapping[str, Mapping[int, Any]] = attrs.field(factory=dict)
    """The item outputs a resume reuses, by map step id and item index."""
    recorded_item_counts: Mapping[str, int] = attrs.field(factory=dict)
    """How many items each map step had in the run a resume continues (`map.started`): a map
    whose `for_each` now yields another number of items cannot reuse any of them."""
    on_units_ready: Callable[[], None] = _ignore_units
    """Called when a map queued its first items: the engine starts them."""

    @classmethod
    def begin(
        cls,
        workflow: Workflow,
        inputs: Mapping[str, Any],
        *,
        completed: Mapping[str, Any] | None = None,
        usage: Mapping[str, int] | None = None,
        step_usage: Mapping[str, Mapping[str, int]] | None = None,
        units: Mapping[str, Any] | None = None,
        completed_items: Mapping[str, Mapping[int, Any]] | None = None,
        recorded_item_counts: Mapping[str, int] | None = None,
    ) -> RunState:
        """The state of a run about to start; `completed` and `units` hold what a resume reuses.

        `completed_items` holds the outputs of map items a resume reuses, by map step and index,
        and `recorded_item_counts` how many items each map had in the run it continues.
        """
        outputs = dict(completed or {})
        results = {
            step_id: StepResult(StepStatus.SUCCEEDED, output=output)
            for step_id, output in outputs.items()
        }
        waiting = {
            step_id: sum(1 for dependency in dependencies if dependency not in results)
            for step_id, dependencies in workflow.dependencies.items()
            if step_id not in results
        }
        return cls(
            workflow=workflow,
            inputs=inputs,
            outputs=outputs,
            results=results,
            usage=dict(usage or {}),
            step_usage={
                step_id: dict(counts)
                for step_id, counts in (step_usage or {}).items()
                if step_id in outputs
            },
            waiting=waiting,
            ready=deque(step_id for step_id in workflow.order if waiting.get(step_id) == 0),
            limit=workflow.max_concurrency or math.inf,
            units=units or {},
            completed_items=dict(completed_items or {}),
            recorded_item_counts=dict(recorded_item_counts or {}),
        )

    @property
    def all_settled(self) -> bool:
        """Whether every step of the workflow has a result."""
        return len(self.results) == len(self.workflow.steps)

    def settle(self, step_id: str, result: StepResult) -> list[str]:
        """Record a step's outcome, and return the dependents it made ready (queued in `ready`).

        A success (or a failure its step continues past) brings each dependent one step closer
        to ready; a failure for good skips every step that depends on it and, under
        `fail_fast`, ends the run (unless it is already ending); a skip (its `when` was false)
        is passed on as `pass_over_skipped` says. The step's actor becomes idle. A map item's
        outcome goes to its map (`settle_item`) and makes no step ready.
        """
        if self.maps and step_id[-1] == "]":
            self.settle_item(step_id, result)
            return []
        slot = self.running.pop(step_id, None)
        if slot is not None:
            self.idle.append(slot)
        self.results[step_id] = result
        status = result.status
        made_ready: list[str] = []
        if status is StepStatus.SUCCEEDED or (
            status is StepStatus.FAILED
            and self.workflow.steps_by_id[step_id].on_error == "continue"
        ):
            self.outputs[step_id] = result.output if status is StepStatus.SUCCEEDED else None
            waiting = self.waiting
            for dependent in self.workflow.dependents[step_id]:
                if dependent in waiting:
                    waiting[dependent] -= 1
                    if waiting[dependent] == 0:
                        made_ready.append(dependent)
            if self.reads_skipped:
                made_ready = self._skip_marked(made_ready)
            self.ready.extend(made_ready)
        elif status is StepStatus.FAILED:
            self.skip_dependents(step_id)
            if self.workflow.fail_fast and self.ending is Ending.COMPLETED:
                # A failure while a cancel or timeout winds the run down keeps that ending.
                self.ending = Ending.FAILED
        elif status is StepStatus.SKIPPED:
            made_ready = self.pass_over_skipped(step_id)
            self.ready.extend(made_ready)
        return made_ready

    def skip_dependents(self, failed: str) -> list[str]:
        """Skip every step that (transitively) depends on `failed`, and return them in order.

        They can never run: each gets a `skipped` result and `on_skipped` is told.
        """
        waiting, skipped = self.waiting, []
        stack = list(self.workflow.dependents[failed])
        while stack:
            step_id = stack.pop()
            if step_id in self.results or step_id not in waiting:
                continue
            del waiting[step_id]
            self.results[step_id] = StepResult(StepStatus.SKIPPED)
            skipped.append(step_id)
            self.on_skipped(step_id, dependency_failed(failed))
            stack.extend(self.workflow.dependents[step_id])
        return skipped

    def pass_over_skipped(self, skipped: str) -> list[str]:
        """Settle the dependents of a step skipped by its `when`; return those made ready.

        The skipped step finished without an output (references to it read as null), so each
        dependent comes one step closer to ready, as after a success. A dependent that reads
        its output, unless it sets `accept_skipped`, is marked: once ready (every dependency
        finished, so a failure among them still skips it for that) it is skipped in turn, and
        so on down. A dependent that only orders after it runs.
        """
        return self._skip_marked(self._count_down_after_skip(skipped))

    def _count_down_after_skip(self, skipped: str) -> list[str]:
        """Bring the dependents of `skipped` one step closer to ready; mark those that read it."""
        workflow, waiting, made_ready = self.workflow, self.waiting, []
        steps_by_id, marked = workflow.steps_by_id, self.reads_skipped
        # Every step that reads it, however far down (through steps that only order after it).
        for reader in self._readers_of(skipped):
            if reader in waiting and not steps_by_id[reader].accept_skipped:
                marked.setdefault(reader, skipped)
        for dependent in workflow.dependents[skipped]:
            if dependent not in waiting:
                continue
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                made_ready.append(dependent)
        return made_ready

    def _readers_of(self, step_id: str) -> list[str]:
        """The steps that read `step_id` (`Workflow.reads` inverted once, at the first skip)."""
        readers = self._readers
        if readers is None:
            readers = self._readers = {}
            for reader, read in self.workflow.reads.items():
                for target in read:
                    readers.setdefault(target, []).append(reader)
        return readers.get(step_id, [])

    def _skip_marked(self, made_ready: list[str]) -> list[str]:
        """Skip the steps just made ready that read a skipped step; return the others.

        Each skip settles the skipped step's dependents in turn, and those it makes ready are
        looked at the same way.
        """
        ready: list[str] = []
        pending = deque(made_ready)
        while pending:
            step_id = pending.popleft()
            read = self.reads_skipped.pop(step_id, None)
            if read is None:
                ready.append(step_id)
                continue
            del self.waiting[step_id]
            self.results[step_id] = StepResult(StepStatus.SKIPPED)
            self.on_skipped(step_id, read_was_skipped(read))
            pending.extend(self._count_down_after_skip(step_id))
        return ready

    def next_step(self) -> Step | MapItem | None:
        """Take the next map item or ready step if it may start now (concurrency allows).

        Items of started maps come first, so a map started finishes before more steps start.
        Nothing starts once the run is ending. The caller starts it at once with `start`.
        """
        busy = len(self.running) - self.coordinating - self.gated
        if busy < self.limit and self.ending is Ending.COMPLETED:
            if self.items_ready:
                return self.items_ready.popleft()
            if self.ready:
                return self.workflow.steps_by_id[self.ready.popleft()]
        return None

    def take_idle(self) -> StepSlot | None:
        """An idle step actor to give the next step to, or None when every one is busy."""
        return self.idle.pop() if self.idle else None

    def end(self, ending: Ending) -> None:
        """Cut the run short this way (a cancel, a timeout): no further step starts."""
        self.ending = ending

    def record_failure(self, step_id: str, error: Exception) -> None:
        """Keep the error a step failed with for good, for the execution's span and result."""
        self.failures[step_id] = error

    def start(self, step: Step | MapItem, slot: StepSlot) -> None:
        """Record that `slot`'s step actor runs `step` from now on."""
        slot.step = step
        self.running[step.id] = slot

    def add_usage(self, step_id: str, counts: Mapping[str, int]) -> None:
        """Add the resource counts an agent reported to its step's and the execution's totals.

        A map item's counts go to its map step (`ID[3]` to `ID`), as `replay` counts them.
        """
        if step_id[-1] == "]":
            step_id = step_id[: step_id.rindex("[")]
        step_usage = self.step_usage.setdefault(step_id, {})
        usage = self.usage
        for name, value in counts.items():
            step_usage[name] = step_usage.get(name, 0) + value
            usage[name] = usage.get(name, 0) + value

    def give_up(self, step_id: str, attempts: int) -> StepSlot:
        """Record a running step that ignores its cancel as cancelled, and return its slot.

        Its slot gets no step, so the actor's late report settles nothing.
        """
        if self.maps and step_id[-1] == "]":
            slot = self.running[step_id]
            self.settle_item(step_id, StepResult(StepStatus.CANCELLED, attempts=attempts))
            self.idle.remove(slot)
            slot.step = None
            return slot
        slot = self.running.pop(step_id)
        slot.step = None
        self.results[step_id] = StepResult(StepStatus.CANCELLED, attempts=attempts)
        return slot

    def close_pending(
        self, attempts_of: Callable[[str], int | None]
    ) -> list[tuple[str, StepStatus]]:
        """Give every step that did not run to its end its final status; return them in order.

        Steps never started are `skipped` when the run completed (unreachable), `cancelled`
        otherwise; a step cut short mid-run stays `cancelled` and keeps the attempts it made
        (`attempts_of`, None when it never started), as the journal shows them. The returned
        pairs, in the workflow's order, say what to journal for each.
        """
        closed: list[tuple[str, StepStatus]] = []
        for step_id in self.workflow.order:
            result = self.results.get(step_id)
            if result is None:
                status = (
                    StepStatus.SKIPPED if self.ending is Ending.COMPLETED else StepStatus.CANCELLED
                )
                self.results[step_id] = StepResult(status)
            elif result.status is StepStatus.CANCELLED:
                status = StepStatus.CANCELLED
                attempts = attempts_of(step_id)
                if attempts is not None:
                    self.results[step_id] = attrs.evolve(result, attempts=attempts)
            else:
                continue
            closed.append((step_id, status))
        return closed

    def start_map(self, run: MapRun) -> None:
        """Register a map step whose items start now: queue the first ones and have them started.

        Its coordinator keeps its step actor until the map ends (`end_map`), outside the
        concurrency limit, which counts the items instead.
        """
        self.maps[run.step.id] = run
        self.coordinating += 1
        run.refill(self.items_ready)
        if self.items_ready:
            self.on_units_ready()

    def settle_item(self, unit_id: str, result: StepResult) -> None:
        """Record how one map item ended; its map queues the items that may start now."""
        slot = self.running.pop(unit_id, None)
        if slot is not None:
            self.idle.append(slot)
        step_id, _, index = unit_id[:-1].rpartition("[")
        self.maps[step_id].settle(int(index), result, self.items_ready)

    def stop_map(self, run: MapRun) -> None:
        """Start no more items of `run` (the run winds down); its queued items never start."""
        run.stop(self.items_ready)

    def end_map(self, run: MapRun) -> None:
        """The coordinator of `run` concluded (or was cancelled): it counts as running again."""
        self.coordinating -= 1
