"""What the journal says about loop steps: how many iterations each ran, and whether `until` held.

A repeat step's `step.started` carries its `max_iterations`, and each iteration that finished
records `iteration.finished` (`iteration`, `until`) on the step; the iterations themselves are
units of their own (`ID#k`, see `_execution/_loop.py`). `loop_progress` folds those events into
one `LoopProgress` per loop step, for `inspect` and other views. A resumed loop keeps the count
its earlier runs reached: the iterations it reuses are not announced again.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ._events import Event, EventType


@attrs.frozen
class LoopProgress:
    """One loop step as its events tell it: iterations finished, the bound, whether until held."""

    max_iterations: int
    iterations: int = 0
    """The last iteration whose `until` was evaluated (0 before the first finished)."""
    until_held: bool = False

    def describe(self) -> str:
        """One line for people: `loop 3/5 iterations: until held`."""
        text = f"loop {self.iterations}/{self.max_iterations} iterations"
        if self.until_held:
            return f"{text}: until held"
        if self.iterations >= self.max_iterations:
            return f"{text}: until never held"
        return text

    def to_json(self) -> dict[str, int | bool]:
        """The JSON form views show: `iterations`, `max_iterations`, `until_held`."""
        return {
            "iterations": self.iterations,
            "max_iterations": self.max_iterations,
            "until_held": self.until_held,
        }


def is_iteration_of(unit_id: str, step_id: str) -> bool:
    """Whether `unit_id` names an iteration of `step_id` (`ID#k`)."""
    prefix, separator, number = unit_id.rpartition("#")
    return bool(separator) and prefix == step_id and number.isdigit()


def loop_progress(events: Iterable[Event]) -> dict[str, LoopProgress]:
    """Each loop step's progress, by step id, from one execution's events in seq order."""
    progress: dict[str, LoopProgress] = {}
    for event in events:
        step_id = event.step_id
        if step_id is None:
            continue
        if event.type == EventType.STEP_STARTED:
            bound = event.data.get("max_iterations")
            if isinstance(bound, int) and not isinstance(bound, bool):
                known = progress.get(step_id)
                iterations = known.iterations if known is not None else 0
                progress[step_id] = LoopProgress(bound, iterations)
        elif event.type == EventType.ITERATION_FINISHED and step_id in progress:
            iteration = event.data.get("iteration")
            progress[step_id] = attrs.evolve(
                progress[step_id],
                iterations=iteration if isinstance(iteration, int) else 0,
                until_held=event.data.get("until") is True,
            )
    return progress
