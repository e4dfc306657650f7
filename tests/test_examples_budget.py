"""examples/budget.json runs within its budget; a lower cap refuses the calls it cannot cover."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from orchestr8 import ExecutionStatus, open_runtime, price_for, replay
from orchestr8._execution._spending import journal_spend
from orchestr8._web._documents import execution_document, execution_lineage
from orchestr8._web._openapi import openapi_document
from orchestr8.testing import FakeAnthropic, use_fake_anthropic

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "budget.json"
TOPICS = ["trio", "attrs", "cattrs"]
MODEL = "claude-sonnet-4-5"
SPEC = openapi_document(auth=False)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real credentials or endpoints leak into a test."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


async def test_the_briefs_are_written_within_the_budget() -> None:
    """Three outlines and a brief: four calls, each reserved then settled at its price."""
    fake = FakeAnthropic()
    for reply in ("- outline one", "- outline two", "- outline three"):
        fake.reply_text(reply, input_tokens=30, output_tokens=40)
    fake.reply_text("The brief.", input_tokens=400, output_tokens=300)
    with fake, use_fake_anthropic(fake):
        async with open_runtime() as runtime:
            handle = await runtime.start(EXAMPLE, {"topics": TOPICS})
            result = await handle.wait()
            events = await runtime.journal.events(handle.execution_id)
            record = await runtime.journal.get_execution(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    assert result.output["brief"] == "The brief."
    settled = [event for event in events if event.type == "budget.settled"]
    assert len(settled) == 4
    haiku, sonnet = price_for("anthropic", "claude-haiku-4-5"), price_for("anthropic", MODEL)
    assert haiku is not None
    assert sonnet is not None
    expected = 3 * (30 * haiku.input + 40 * haiku.output) + 400 * sonnet.input + 300 * sonnet.output
    assert sum(event.data["cost_usd"] for event in settled) == pytest.approx(expected / 1e6)
    scopes = {
        event.step_id: event.data["scope"] for event in events if event.type == "budget.reserved"
    }
    assert scopes == {
        "outline[0]": "steps.outline",
        "outline[1]": "steps.outline",
        "outline[2]": "steps.outline",
        "brief": "workflow",
    }
    fake.assert_all_used()
    document = {**execution_document(record, replay(events)), **execution_lineage(record, [])}
    schema = {"$ref": "#/components/schemas/Execution", "components": SPEC["components"]}
    Draft202012Validator(schema).validate(document)
    assert document["cost_usd"] == pytest.approx(expected / 1e6)
    assert document["steps"]["outline"]["cost_usd"] == pytest.approx(
        3 * (30 * haiku.input + 40 * haiku.output) / 1e6
    )
    assert document["steps"]["brief"]["cost_usd"] == pytest.approx(
        (400 * sonnet.input + 300 * sonnet.output) / 1e6
    )


async def test_a_lower_cap_refuses_what_it_cannot_cover() -> None:
    """Under a 0.4-cent cap the brief is refused: the spend held and settled never passes it.

    The first outline runs alone (a cost cap) and settles at what it billed, far below its
    worst case, so the other outlines fit; the brief's worst case does not."""
    fake = FakeAnthropic()
    for _ in TOPICS:
        fake.reply_text("- outline", input_tokens=30, output_tokens=40)
    # Not `with fake`: the failing item fails the map, which may cancel the others' calls
    # before they are sent, leaving replies unused.
    with use_fake_anthropic(fake):
        async with open_runtime() as runtime:
            handle = await runtime.start(EXAMPLE, {"topics": TOPICS}, max_cost_usd=0.004)
            result = await handle.wait()
            events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.FAILED
    reserved = [event.data["cost_usd"] for event in events if event.type == "budget.reserved"]
    assert len(reserved) == len(TOPICS)
    spent = journal_spend(events)
    assert sum(spend.cost_usd for spend in spent.steps.values()) <= 0.004
    assert len(fake.requests) <= len(reserved)
    exhausted = [event for event in events if event.type == "budget.exhausted"]
    assert exhausted
    assert {event.data["limit"] for event in exhausted} == {"max_cost_usd"}
    assert [event.step_id for event in exhausted] == ["brief"]
    assert result.steps["brief"].error is not None
    assert result.steps["brief"].error["type"] == "BudgetExhaustedError"
