"""`_map_items`: a map step's items, counted by status for `inspect`, the timeline and REST."""

from __future__ import annotations

from event_scripts import Script

from orchestr8._journal._map_items import describe_items, item_counts, split_item_id
from orchestr8._journal._replay import replay

ERROR = {"type": "ValueError", "message": "bad"}


def script_of_a_map() -> Script:
    """A map of 5 items: 2 succeeded (one after a retry), 1 failed, 1 running, 1 not started."""
    script = Script().add("execution.started")
    script.add("step.started", "each", agent="echo").add("map.started", "each", count=5)
    script.add("step.started", "each[0]").add("attempt.started", "each[0]", 1)
    script.add("step.succeeded", "each[0]", 1, output="A")
    script.add("step.started", "each[1]").add("attempt.started", "each[1]", 1)
    script.add("attempt.failed", "each[1]", 1, error=ERROR)
    script.add("attempt.started", "each[1]", 2).add("step.succeeded", "each[1]", 2, output="B")
    script.add("step.started", "each[2]").add("attempt.started", "each[2]", 1)
    script.add("step.failed", "each[2]", 1, error=ERROR)
    script.add("step.started", "each[3]").add("attempt.started", "each[3]", 1)
    return script


def test_item_ids_split_into_the_map_step_and_the_index() -> None:
    """`ID[i]` splits; anything else is not an item id."""
    assert split_item_id("each[12]") == ("each", 12)
    for other in ("each", "each[]", "[1]", "each[-1]", "each[1"):
        assert split_item_id(other) is None


def test_items_are_counted_by_status_under_their_map_step() -> None:
    """Counts per status (unstarted items pending), attempts summed, failed indices listed."""
    state = replay(script_of_a_map().events)
    assert state.steps["each"].items == 5
    (counts,) = item_counts(state).values()
    assert counts.count == 5
    assert counts.statuses == {"succeeded": 2, "failed": 1, "running": 1, "pending": 1}
    assert counts.attempts == 5
    assert counts.failed == (2,)
    assert counts.to_json() == {
        "count": 5,
        "succeeded": 2,
        "failed": 1,
        "running": 1,
        "pending": 1,
        "attempts": 5,
        "failed_items": [2],
    }
    assert counts.describe() == "map 5: 2 succeeded, 1 failed, 1 running, 1 pending; 5 attempts"


def test_a_map_without_items_and_steps_without_maps() -> None:
    """An empty map counts nothing; a plain step is no map; attempts show only past one each."""
    script = Script().add("execution.started").add("step.started", "plain")
    script.add("step.started", "each").add("map.started", "each", count=0)
    counts = item_counts(replay(script.events))
    assert list(counts) == ["each"]
    assert counts["each"].describe() == "map 0"
    assert describe_items({"count": 2, "succeeded": 2, "attempts": 2}) == "map 2: 2 succeeded"
    assert describe_items({"count": None, "failed": 1, "attempts": 1}) == "map ?: 1 failed"


def test_items_that_never_started_in_a_finished_execution_are_not_pending() -> None:
    """Cancelled before they started: `not started`, not `pending` (nothing will run them)."""
    script = script_of_a_map().add("step.cancelled", "each[3]")
    script.add("step.cancelled", "each").add("execution.cancelled", reason="enough")
    (counts,) = item_counts(replay(script.events)).values()
    assert counts.statuses == {"succeeded": 2, "failed": 1, "cancelled": 1, "not_started": 1}
    assert counts.describe() == (
        "map 5: 2 succeeded, 1 failed, 1 cancelled, 1 not started; 5 attempts"
    )


def test_items_waiting_at_their_gates_are_counted_waiting() -> None:
    """Map items whose gates are open count as `waiting`, not `running`."""
    script = Script().add("execution.started")
    script.add("step.started", "ask", agent="approval").add("map.started", "ask", count=2)
    for index in (0, 1):
        script.add("step.started", f"ask[{index}]").add("gate.opened", f"ask[{index}]")
    script.add("gate.resolved", "ask[1]", approved=True).add("step.succeeded", "ask[1]")
    (counts,) = item_counts(replay(script.events)).values()
    assert counts.statuses == {"succeeded": 1, "waiting": 1}
