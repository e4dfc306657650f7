"""A step's model calls folded from `llm.called`: calls, failures, who answered, cost, resumes."""

from __future__ import annotations

from typing import Any

import pytest
from event_scripts import Script
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._journal._llm_calls import LLMCalls, fold_llm_call, total_llm_calls
from orchestr8._journal._replay import replay


def called(
    provider: str, outcome: str = "succeeded", cost: Any = None, **more: Any
) -> dict[str, Any]:
    """The data of one `llm.called` event."""
    return {
        "provider": provider,
        "model": f"{provider}-model",
        "usage": {"input_tokens": 1, "output_tokens": 1},
        "cost_usd": cost,
        "latency_s": 0.1,
        "fallback_index": 0,
        "outcome": outcome,
        **more,
    }


def test_a_step_that_fell_back_shows_both_calls_and_who_answered() -> None:
    """Replay folds each step's calls; the failed primary is counted, the answering one named."""
    script = Script()
    script.add("execution.started", elapsed=0.0, workflow="wf", inputs={})
    script.add("step.started", "ask", agent="llm")
    script.add("attempt.started", "ask", 1)
    script.add("llm.called", "ask", 1, **called("anthropic", "failed", 0.5, error={"type": "E"}))
    script.add("llm.called", "ask", 1, **called("backup", cost=0.25))
    script.add("step.succeeded", "ask", 1, output="ok")
    step = replay(script.events).steps["ask"]
    assert step.llm == LLMCalls(
        calls=2,
        failed=1,
        providers=("backup",),
        models=("backup:backup-model",),
        cost_usd=0.75,
        unpriced=0,
    )
    assert step.llm.to_json()["providers"] == ["backup"]


def test_a_step_without_model_calls_has_none() -> None:
    """Steps that call no model carry nothing: they cost replay nothing."""
    script = Script()
    script.add("execution.started", elapsed=0.0, workflow="wf", inputs={})
    script.add("step.started", "a", agent="echo")
    script.add("attempt.started", "a", 1)
    script.add("step.succeeded", "a", 1, output=1)
    assert replay(script.events).steps["a"].llm is None


def test_a_map_item_s_calls_count_for_its_map_step_and_a_resume_keeps_them() -> None:
    """An item's calls also count for its map step; after a resume a step keeps earlier calls."""
    script = Script()
    script.add("execution.started", elapsed=0.0, workflow="wf", inputs={})
    script.add("step.started", "map", agent="llm")
    script.add("step.started", "map[0]", agent="llm")
    script.add("attempt.started", "map[0]", 1)
    script.add("llm.called", "map[0]", 1, **called("local", cost=0.0))
    state = replay(script.events)
    assert state.steps["map"].llm is not None
    assert state.steps["map"].llm.calls == state.steps["map[0]"].llm.calls == 1  # type: ignore[union-attr]
    carried = state.steps["map"].carried_over(interrupted_at=1.0)
    assert carried.llm == state.steps["map"].llm


def test_malformed_fields_count_as_absent() -> None:
    """A call without a usable cost is unpriced; one without a provider names nobody."""
    calls = fold_llm_call(None, {"cost_usd": "x", "outcome": "succeeded"})
    assert (calls.calls, calls.unpriced, calls.providers) == (1, 1, ())
    calls = fold_llm_call(calls, {"provider": "p", "cost_usd": float("nan")})
    assert (calls.providers, calls.models, calls.unpriced) == (("p",), ("p",), 2)


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=8), st.integers(0, 3))
def test_totals_add_up_whichever_way_the_calls_are_split(providers: list[str], split: int) -> None:
    """Summing two steps' calls gives what one step with all of them would hold."""
    data = [called(provider, cost=1.0) for provider in providers]
    whole = None
    for item in data:
        whole = fold_llm_call(whole, item)
    first = second = None
    for item in data[:split]:
        first = fold_llm_call(first, item)
    for item in data[split:]:
        second = fold_llm_call(second, item)
    total = total_llm_calls({"x": first, "y": second})
    assert total == whole
    if whole is not None:
        assert whole.cost_usd == pytest.approx(len(data))


def test_a_skipped_provider_is_no_call_but_is_listed_once_with_its_reason() -> None:
    """`outcome: skipped` adds no call and no cost; each `NAME skipped: REASON` is listed once."""
    calls = None
    for data in (
        called("anthropic", "skipped", reason="circuit open"),
        called("backup", cost=0.5),
        called("anthropic", "skipped", reason="circuit open"),
        called("b", "skipped"),
    ):
        calls = fold_llm_call(calls, data)
    assert calls is not None
    assert (calls.calls, calls.failed, calls.cost_usd) == (1, 0, 0.5)
    assert calls.skipped == ("anthropic skipped: circuit open", "b skipped: not called")
    assert calls.to_json()["skipped"] == list(calls.skipped)
    assert "skipped" not in LLMCalls().to_json()
    other = fold_llm_call(None, called("c", "skipped", reason="no API key"))
    total = total_llm_calls({"a": calls, "b": other, "c": calls})
    assert total is not None
    assert total.skipped == (*calls.skipped, "c skipped: no API key")
