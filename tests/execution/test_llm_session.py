"""An execution's LLM session: the catalog it calls, the breakers it shares, what it journals."""

from __future__ import annotations

from typing import Any

import pytest

from orchestr8 import AgentContext, ExecutionResult, MissingSecretError, Spend, open_runtime, replay
from orchestr8._cli._views import _step_note
from orchestr8._execution._llm_session import PROVIDER_BREAKER_POLICY
from orchestr8._execution._step_view import step_view
from orchestr8._journal._events import EventType
from orchestr8._journal._records import ExecutionRecord
from orchestr8._llm._session import NO_RESERVATION
from orchestr8.testing import FakeAnthropic

NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}


@pytest.fixture(autouse=True)
def a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The providers find a key (the fakes take any) and no real endpoint."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ORCHESTR8_PROVIDERS", raising=False)


def workflow(config: dict[str, Any], **more: Any) -> dict[str, Any]:
    """One llm step with `config`, never retried."""
    return {
        "schema_version": "1.1",
        "name": "llm-session",
        "steps": [
            {
                "id": "ask",
                "agent": {"id": "llm", "config": config},
                "input": "hi",
                "policy": NO_RETRY,
            }
        ],
        **more,
    }


async def execute(
    document: dict[str, Any], providers: Any = None
) -> tuple[ExecutionResult, list[Any], Any]:
    """Run `document` with `providers`; its result, its events and the runtime's breakers."""
    async with open_runtime(providers=providers) as runtime:
        handle = await runtime.start(document)
        result = await handle.wait()
        events = await runtime.journal.events(result.execution_id)
        breakers = runtime.resilience.breakers
    return result, events, breakers


async def test_a_failing_primary_falls_back_to_a_second_provider() -> None:
    """A 529 of the primary moves the call to `backup`; both are journaled, the output says who."""
    primary, backup = FakeAnthropic(), FakeAnthropic()
    primary.reply_overloaded()
    backup.reply_text("from the backup", input_tokens=7, output_tokens=3)
    with primary, backup:
        async with primary.serve() as primary_url, backup.serve() as backup_url:
            providers = {
                "providers": {
                    "anthropic": {"kind": "anthropic", "base_url": primary_url},
                    "backup": {
                        "kind": "anthropic",
                        "base_url": backup_url,
                        "prices": {"*": {"input": 1.0, "output": 5.0}},
                    },
                }
            }
            config = {"model": "claude-a", "fallback": ["backup:claude-b"]}
            result, events, breakers = await execute(workflow(config), providers)
    assert result.status == "succeeded", result.error
    assert result.output["ask"] == {
        "text": "from the backup",
        "usage": {"input_tokens": 7, "output_tokens": 3},
        "model": "claude-b",
        "provider": "backup",
        "stop_reason": "end_turn",
    }
    calls = [event for event in events if event.type == EventType.LLM_CALLED]
    assert [(call.data["provider"], call.data["outcome"]) for call in calls] == [
        ("anthropic", "failed"),
        ("backup", "succeeded"),
    ]
    assert calls[0].data["error"]["type"] == "ProviderUnavailableError"
    assert calls[1].data["cost_usd"] == pytest.approx((7 * 1.0 + 3 * 5.0) / 1e6)
    assert all(call.step_id == "ask" and call.attempt == 1 for call in calls)
    anthropic = breakers.find("llm-provider:anthropic")
    assert anthropic is not None
    assert anthropic.statistics().failures == 1
    assert breakers.find("llm-provider:backup").statistics().successes == 1
    step = replay(events).steps["ask"]
    assert step.llm is not None
    assert (step.llm.calls, step.llm.failed, step.llm.providers) == (2, 1, ("backup",))
    record = ExecutionRecord(result.execution_id, "llm-session", workflow(config))
    view = step_view(record, events, "ask")
    assert view is not None
    assert view["llm"] == step.llm.to_json()
    assert _step_note({"error": None, "llm": step.llm.to_json()}) == (
        "2 model calls (1 failed), answered by backup:claude-b"
    )


async def test_a_workflow_declares_its_own_provider_with_a_secret_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A workflow's `providers` entry is used, its `${secrets.NAME}` key resolved at the start."""
    monkeypatch.setenv("ORCHESTR8_SECRET_TEAM_KEY", "sk-team-secret")
    fake = FakeAnthropic()
    fake.reply_text("team reply")
    with fake:
        async with fake.serve() as url:
            team = {"kind": "anthropic", "base_url": url, "api_key": "${secrets.TEAM_KEY}"}
            document = workflow({"model": "team:claude-t"}, providers={"team": team})
            result, events, _ = await execute(document)
    assert result.status == "succeeded", result.error
    assert result.output["ask"]["provider"] == "team"
    assert fake.requests[0].has_credentials
    assert "sk-team-secret" not in str([event.data for event in events])


async def test_a_missing_provider_secret_fails_at_the_start() -> None:
    """A workflow provider's key secret that is not set is refused before anything runs."""
    team = {"kind": "anthropic", "base_url": "http://127.0.0.1:9/", "api_key": "${secrets.NOPE}"}
    with pytest.raises(MissingSecretError, match="NOPE"):
        await execute(workflow({"model": "team:m"}, providers={"team": team}))


async def scoring_agent(input: Any, context: AgentContext) -> Any:
    """An agent using its session without a budget: it holds nothing, and records a score."""
    session = context.llm
    assert session is not None
    reservation = await session.reserve(context, Spend(cost_usd=1.0), model="anthropic:m")
    assert reservation is NO_RESERVATION
    session.settle(context, reservation, Spend(cost_usd=0.5))
    session.record_score(context, {"structure": 100, "constraints": 50, "completeness": 75})
    return "scored"


async def test_a_session_without_a_budget_holds_nothing_and_journals_scores() -> None:
    """`reserve` is free without a budget; `record_score` becomes the step's `step.scored`."""
    document = {
        "schema_version": "1.1",
        "name": "scores",
        "steps": [{"id": "rate", "agent": "scorer"}],
    }
    async with open_runtime(agents={"scorer": scoring_agent}) as runtime:
        result = await (await runtime.start(document)).wait()
        events = await runtime.journal.events(result.execution_id)
    assert result.status == "succeeded", result.error
    (scored,) = [event for event in events if event.type == EventType.STEP_SCORED]
    assert (scored.step_id, scored.attempt) == ("rate", 1)
    assert scored.data == {"structure": 100, "constraints": 50, "completeness": 75}
    assert not [event for event in events if event.type.startswith("budget.")]


def test_every_provider_breaker_uses_the_documented_policy() -> None:
    """Provider breakers open after 5 failures for 60 s, then admit 3 probes."""
    assert PROVIDER_BREAKER_POLICY.failure_threshold == 5
    assert PROVIDER_BREAKER_POLICY.reset_timeout == 60.0
    assert PROVIDER_BREAKER_POLICY.half_open_requests == 3


async def test_a_provider_breaker_opens_is_journaled_and_then_skips_the_provider() -> None:
    """Five failures open `llm-provider:anthropic` (journaled in the step that caused it); the
    next step's call goes straight to the fallback, the skipped primary journaled as such."""
    primary, backup = FakeAnthropic(), FakeAnthropic()
    for _ in range(5):
        primary.reply_overloaded()
    for number in range(6):
        backup.reply_text(f"answer {number}")
    config = {"model": "claude-a", "fallback": ["backup:claude-b"]}
    steps = [
        {"id": f"s{number}", "agent": {"id": "llm", "config": config}, "input": "hi"}
        for number in range(6)
    ]
    document = {"schema_version": "1.1", "name": "breaking", "strategy": "sequential"}
    with primary, backup:
        async with primary.serve() as primary_url, backup.serve() as backup_url:
            providers = {
                "anthropic": {"kind": "anthropic", "base_url": primary_url},
                "backup": {"kind": "anthropic", "base_url": backup_url},
            }
            result, events, _ = await execute({**document, "steps": steps}, providers)
    assert result.status == "succeeded", result.error
    (opened,) = [event for event in events if event.type == EventType.BREAKER_OPENED]
    assert (opened.step_id, opened.data["key"]) == ("s4", "llm-provider:anthropic")
    last = [
        event for event in events if event.type == EventType.LLM_CALLED and event.step_id == "s5"
    ]
    assert [(call.data["provider"], call.data["outcome"]) for call in last] == [
        ("anthropic", "skipped"),
        ("backup", "succeeded"),
    ]
    assert last[0].data["reason"] == "circuit open"
    state = replay(events)
    skipped = state.steps["s5"].llm
    assert skipped is not None
    assert _step_note({"error": None, "llm": skipped.to_json()}) == (
        "1 model call, answered by backup:claude-b; anthropic skipped: circuit open"
    )
