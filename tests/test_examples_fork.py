"""examples/fork.json: a run that fails for an input, then a fork that fixes it."""

from __future__ import annotations

from pathlib import Path

import trio.testing

from orchestr8 import ExecutionStatus, open_runtime

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fork.json"


async def test_a_fork_with_the_year_fixed_reuses_the_fetch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """year=20244 fails at check; the fork from check with 2024 succeeds and keeps fetch."""
    async with open_runtime() as runtime:
        failed = await runtime.start(EXAMPLE, {"year": 20244})
        assert (await failed.wait()).status is ExecutionStatus.FAILED
        fork = await runtime.fork(failed.execution_id, "check", inputs={"year": 2024})
        result = await fork.wait()
        events = await runtime.journal.events(fork.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == {"report": "2024: [12, 30, 7]"}
    reused = [event.step_id for event in events if "reused_from" in event.data]
    assert reused == ["fetch"]
    assert not any(e.type == "step.started" and e.step_id == "fetch" for e in events)
