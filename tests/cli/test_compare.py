"""`orchestr8 compare ID_A ID_B`: two recorded executions side by side, on the command line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cli_in_process import call, record_runs

from orchestr8._cli._time_travel import render_comparison, token_count


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One journal with two runs: `first` (a, b) and `second` (a with other input, c)."""
    return record_runs(tmp_path_factory.mktemp("compare"))


def test_compare_puts_two_runs_side_by_side(runs: dict[str, Any]) -> None:
    """Across workflows: a changed output with its diff, steps of one side marked, spec diff."""
    done = call(
        "compare",
        runs["first"][:8],
        runs["second"][:8],
        "--journal",
        runs["journal"],
        cwd=runs["cwd"],
    )
    assert done.code == 0, done.stderr
    text = done.stdout
    assert f"execution  {runs['first']}  {runs['second']}" in text
    assert (
        "the workflows differ (diff below); the inputs differ (diff below); the outputs differ "
        "(diff below); 3 steps differ"
    ) in text
    rows = {line.split()[1]: line.split() for line in text.splitlines() if line.startswith("* ")}
    assert rows["a"][2:5] == ["succeeded", "succeeded", "1"]
    assert rows["a"][-1] == "changed"
    assert rows["c"][2] == "-"
    assert rows["b"][-3:] == ["only", "in", "a"]
    assert 'output of a:\n--- a a\n+++ b a\n@@ -1,3 +1,3 @@\n {\n-  "n": 1\n+  "n": 2\n }' in text
    assert "workflow of the executions:\n--- " in text
    document = json.loads(
        call(
            "compare",
            runs["first"],
            runs["second"],
            "--json",
            "--journal",
            runs["journal"],
            cwd=runs["cwd"],
        ).stdout
    )
    assert [step["step_id"] for step in document["steps"]] == ["a", "c", "b"]
    assert document["steps"][1]["b"]["items"]["count"] == 2


def test_compare_of_a_run_with_itself_shows_no_difference(runs: dict[str, Any]) -> None:
    """Same workflow, same inputs, no step differs."""
    done = call(
        "compare", runs["first"], runs["first"], "--journal", runs["journal"], cwd=runs["cwd"]
    )
    assert "same workflow; same inputs; no step differs" in done.stdout
    assert "* " not in done.stdout


def test_compare_names_an_unknown_execution(runs: dict[str, Any]) -> None:
    """An id no execution has: exit 1, naming it."""
    done = call("compare", runs["first"], "nope", "--journal", runs["journal"], cwd=runs["cwd"])
    assert done.code == 1
    assert done.stderr.startswith("error: no execution 'nope' in the journal")


def test_token_cells_sum_the_counts_named_tokens() -> None:
    """`input_tokens` and `output_tokens` add up; other counts alone show `-`."""
    assert token_count({"input_tokens": 3, "output_tokens": 2, "calls": 1}) == "5"
    assert token_count({"calls": 1}) == "-"
    assert token_count(None) == "-"


def test_the_comparison_text_shows_maps_and_loops_in_the_output_column() -> None:
    """A map step's items and a loop step's iterations follow the output verdict."""
    side: dict[str, Any] = {"status": "succeeded", "attempts": 1, "duration": 1.0, "usage": {}}
    mapped = {**side, "items": {"count": 3, "succeeded": 3}, "loop": {"iterations": 2}}
    execution: dict[str, Any] = {
        "execution_id": "x",
        "workflow": "w",
        "status": "succeeded",
        "started_at": None,
        "duration": None,
        "usage": {},
    }
    row: dict[str, Any] = {
        "step_id": "m",
        "a": mapped,
        "b": side,
        "output": "equal",
        "output_diff": None,
        "differs": True,
    }
    document = {
        "a": execution,
        "b": execution,
        "same_workflow": True,
        "same_inputs": True,
        "output_diff": None,
        "workflow_diff": None,
        "inputs_diff": None,
        "differing_steps": 1,
        "steps": [row],
    }
    text = render_comparison(document, color=False)
    assert "1 step differs" in text
    assert text.splitlines()[-1].endswith("equal; a: map 3, 3 succeeded; a: loop 2 iterations")
    row["items_differ"], row["iterations_differ"] = list(range(12)), [2]
    row["reused_by"] = "b"
    row["a"] = {**mapped, "child": {"execution_id": "x.m"}}
    row["b"] = {**side, "child": {"execution_id": "y.m"}}
    differing = render_comparison(document, color=False)
    assert "equal; b reused a's (forked); a: map 3" in differing
    assert differing.endswith("compare them with:\n  m: orchestr8 compare x.m y.m")
    items = "items 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ... (12 in all) differ; iterations 2 differ\n"
    assert "iterations; " + items in differing
