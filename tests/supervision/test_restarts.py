"""Tests for the restart machinery's record and its interface to the supervisor."""

from __future__ import annotations

import ast
import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from orchestr8._supervision._restarts import RestartBackoff, RestartLedger

SUPERVISION = Path(__file__).parents[2] / "orchestr8" / "_supervision"


def private_reaches(module: str) -> list[str]:
    """Every `<name>._attribute` in the module whose object is a supervisor, by variable name."""
    tree = ast.parse((SUPERVISION / module).read_text(encoding="utf-8"))
    return [
        f"{node.value.id}.{node.attr} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("supervisor", "nested")
        and node.attr.startswith("_")
    ]


def test_the_restart_machinery_uses_no_private_member_of_the_supervisor() -> None:
    """Incarnations and the manager reach the supervisor only through its offered interface."""
    assert private_reaches("_restarts.py") == []
    assert private_reaches("_incarnation.py") == []


def test_the_ledger_admits_up_to_the_maximum_within_the_window() -> None:
    """A restart beyond `max_restarts` in the window is refused; old ones leave the window."""
    ledger = RestartLedger(2, 5.0, None, random.Random(0))
    assert ledger.admit(0.0)
    assert ledger.admit(1.0)
    assert not ledger.admit(2.0)
    assert (ledger.total, ledger.recent(2.0)) == (2, 2)
    assert ledger.admit(5.0)
    assert (ledger.total, ledger.recent(5.0)) == (3, 2)


def test_the_backoff_grows_with_the_restarts_in_the_window() -> None:
    """Without a backoff there is no wait; with one, the wait follows the restarts in window."""
    assert RestartLedger(3, 5.0, None, random.Random(0)).backoff_delay() is None
    backoff = RestartBackoff(min_delay=1.0, max_delay=10.0, multiplier=2.0, jitter=0.0)
    ledger = RestartLedger(3, 5.0, backoff, random.Random(0))
    delays = []
    for now in (0.0, 0.1, 0.2):
        assert ledger.admit(now)
        delays.append(ledger.backoff_delay())
    assert delays == [1.0, 2.0, 4.0]


@given(
    st.integers(min_value=0, max_value=4),
    st.lists(st.floats(min_value=0.0, max_value=3.0), max_size=30),
)
def test_no_window_ever_holds_more_than_the_maximum(maximum: int, gaps: list[float]) -> None:
    """Whatever the crash times, the admitted restarts never exceed the maximum in any window."""
    ledger = RestartLedger(maximum, 5.0, None, random.Random(0))
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap
        if ledger.admit(now):
            admitted.append(now)
    assert ledger.total == len(admitted)
    for start in admitted:
        assert sum(1 for at in admitted if 0.0 <= at - start < 5.0) <= maximum
