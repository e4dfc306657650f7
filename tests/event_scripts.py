"""Hand-made event sequences for the tests of events and of replay."""

from __future__ import annotations

from typing import Any

from orchestr8._journal._events import Event


class Script:
    """Writes hand-made event sequences for one execution, numbering them from 1."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(
        self,
        type: str,
        step_id: str | None = None,
        attempt: int | None = None,
        elapsed: float | None = None,
        **data: Any,
    ) -> Script:
        seq = len(self.events) + 1
        stamp = f"2025-01-01T00:00:{seq:02d}.000Z"
        when = float(seq) if elapsed is None else elapsed
        self.events.append(Event("run-1", seq, stamp, when, type, step_id, attempt, data))
        return self
