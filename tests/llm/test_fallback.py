"""Fallback across providers: what moves on, a breaker per provider, every call journaled."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing
from scripted_providers import ScriptedProvider, ScriptedProviders

from orchestr8 import (
    AllProvidersFailedError,
    BudgetExhaustedError,
    ChatMessage,
    ChatRequest,
    CircuitBreaker,
    CircuitBreakerPolicy,
    CircuitOpenError,
    MissingAPIKeyError,
    ModelPrice,
    NonRetryableError,
    ProviderCatalog,
    ProviderRefusedError,
    ProviderResponseError,
    ProviderSpec,
    RetryableError,
    Usage,
    complete_with_fallback,
    parse_model_name,
)
from orchestr8._json import JSON
from orchestr8._llm._fallback import cost_of_call, falls_back
from orchestr8._llm._provider import ProviderGuard
from orchestr8._llm._session import NO_RESERVATION, Reservation, Spend

REQUEST = ChatRequest(model="", messages=(ChatMessage("user", "hi"),))


class RecordingSession:
    """An `LLMSession` keeping the calls it is told of, with a real breaker per provider."""

    def __init__(self, catalog: ProviderCatalog, policy: CircuitBreakerPolicy) -> None:
        """Serve `catalog`; each provider's breaker follows `policy`."""
        self.catalog = catalog
        self.policy = policy
        self.breakers: dict[str, CircuitBreaker] = {}
        self.calls: list[dict[str, Any]] = []

    def provider_guard(self, provider: str) -> ProviderGuard:
        """The provider's breaker, made on first use."""
        if provider not in self.breakers:
            self.breakers[provider] = CircuitBreaker.from_policy(self.policy, name=provider)
        return self.breakers[provider]

    async def reserve(self, context: Any, ask: Spend, *, model: str) -> Reservation:
        """No budget."""
        return NO_RESERVATION

    def settle(self, context: Any, reservation: Reservation, spent: Spend) -> None:
        """No budget."""

    def record_call(self, context: Any, call: Mapping[str, JSON]) -> None:
        """Keep the call."""
        self.calls.append(dict(call))

    def record_score(self, context: Any, score: Mapping[str, JSON]) -> None:
        """Not used here."""


class Context:
    """What the fallback reads of an agent's context: its logger."""

    logger = logging.getLogger("test.fallback")


def setup(*providers: ScriptedProvider, threshold: int = 5) -> tuple[RecordingSession, list[Any]]:
    """A session over scripted providers `anthropic` and `backup` (and `third`)."""
    specs = {
        "backup": ProviderSpec(kind="anthropic", prices={"*": ModelPrice(input=2, output=10)}),
        "third": ProviderSpec(kind="anthropic"),
    }
    catalog = ProviderCatalog(specs, factory=ScriptedProviders(*providers))
    session = RecordingSession(catalog, CircuitBreakerPolicy(failure_threshold=threshold))
    names = [
        parse_model_name(text, field="model")
        for text in ("anthropic:claude", "backup:claude-b", "third:claude-c")
    ]
    return session, names


async def call(session: RecordingSession, names: list[Any], **options: Any) -> Any:
    """One call through the fallback chain."""
    return await complete_with_fallback(
        names,
        REQUEST,
        catalog=session.catalog,
        session=session,
        context=Context(),
        request_timeout=lambda: 30.0,
        **options,
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RetryableError("provider 'a' (anthropic at x): error 429 (rate_limit_error)"), True),
        (ProviderResponseError("provider 'a': a JSON body answered a stream"), True),
        (CircuitOpenError("open", retry_after=3), True),
        (MissingAPIKeyError("provider 'a' has no API key"), True),
        (ProviderRefusedError("provider 'a': authentication_error", status=401), True),
        (ProviderRefusedError("provider 'a': permission_error", status=403), True),
        (ProviderRefusedError("provider 'a': not_found_error: model", status=404), True),
        (ProviderRefusedError("provider 'a': invalid_request", status=400), False),
        (ProviderRefusedError("provider 'a': error while streaming", status=None), False),
        # The status is read from the error, never from its message.
        (NonRetryableError("provider 'a' (anthropic at x): error 401 (auth)"), False),
        (BudgetExhaustedError("workflow budget max_cost_usd: asked 0.2, 0.1 left"), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_failures_fall_back(error: BaseException, expected: bool) -> None:
    """Retryable errors, open breakers and key, permission or model refusals move on; others not."""
    assert falls_back(error) is expected


async def test_the_primary_answers_and_the_call_is_journaled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A primary that answers is the only call; `llm.called` says who, what it cost, how long."""
    session, names = setup(ScriptedProvider("anthropic", "hello"))
    answered = await call(session, names)
    assert answered.index == 0
    assert answered.reply.text == "hello"
    assert session.calls == [
        {
            "provider": "anthropic",
            "model": "claude",
            "usage": {"input_tokens": 10, "output_tokens": 2},
            "cost_usd": None,
            "latency_s": 0.0,
            "fallback_index": 0,
            "outcome": "succeeded",
        }
    ]


async def test_a_retryable_failure_falls_back_and_both_calls_are_journaled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 429 of the primary moves to the first fallback; both calls are recorded, with prices."""
    overloaded = RetryableError("provider 'anthropic': error 529 (overloaded_error)")
    session, names = setup(
        ScriptedProvider("anthropic", overloaded), ScriptedProvider("backup", "b")
    )
    answered = await call(session, names, extra={"template": {"path": "p.json"}})
    assert (answered.index, answered.reply.provider) == (1, "backup")
    failed, succeeded = session.calls
    assert failed["outcome"] == "failed"
    assert failed["error"] == {
        "type": "RetryableError",
        "message": "provider 'anthropic': error 529 (overloaded_error)",
    }
    assert failed["usage"] == {"input_tokens": 10, "output_tokens": 2}
    assert succeeded["fallback_index"] == 1
    assert succeeded["cost_usd"] == pytest.approx((10 * 2 + 2 * 10) / 1e6)
    assert succeeded["template"] == {"path": "p.json"}


async def test_a_bad_request_does_not_fall_back(autojump_clock: trio.testing.MockClock) -> None:
    """A 400 is the request's fault: it is raised as it is, and the breaker does not count it."""
    bad = NonRetryableError("provider 'anthropic': error 400 (invalid_request_error)")
    session, names = setup(ScriptedProvider("anthropic", bad), ScriptedProvider("backup", "b"))
    with pytest.raises(NonRetryableError) as caught:
        await call(session, names)
    assert caught.value is bad
    assert session.breakers["anthropic"].statistics().failures == 0
    assert [record["provider"] for record in session.calls] == ["anthropic"]


async def test_every_candidate_failing_names_each_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When all fail, the error lists each; retryable if any was, with the shortest wait."""
    session, names = setup(
        ScriptedProvider("anthropic", RetryableError("slow down", retry_after=7)),
        ScriptedProvider(
            "backup", ProviderRefusedError("error 401 (authentication_error)", status=401)
        ),
        ScriptedProvider("third", RetryableError("busy", retry_after=2)),
    )
    with pytest.raises(AllProvidersFailedError) as caught:
        await call(session, names)
    assert str(caught.value) == (
        "every provider failed: anthropic:claude (primary): slow down; backup:claude-b"
        " (fallback 1): error 401 (authentication_error); third:claude-c (fallback 2): busy"
    )
    assert caught.value.retry_after == 2


async def test_only_final_refusals_make_a_non_retryable_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Key and model refusals everywhere: no retry could help, so the step is not retried."""
    session, names = setup(
        ScriptedProvider("anthropic", ProviderRefusedError("authentication_error", status=401)),
        ScriptedProvider("backup", ProviderRefusedError("not_found_error", status=404)),
    )
    with pytest.raises(NonRetryableError, match="every provider failed") as caught:
        await call(session, names[:2])
    assert not isinstance(caught.value, RetryableError)


async def test_an_open_breaker_skips_its_provider_without_a_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One breaker per provider: once open, calls go straight to the fallback, journaled skipped."""
    failing = RetryableError("error 500 (api_error)")
    primary = ScriptedProvider("anthropic", failing, failing)
    session, names = setup(primary, ScriptedProvider("backup", "b1", "b2", "b3"), threshold=2)
    for _ in range(3):
        answered = await call(session, names)
        assert answered.index == 1
    assert len(primary.requests) == 2
    assert [(record["provider"], record["outcome"]) for record in session.calls] == [
        ("anthropic", "failed"),
        ("backup", "succeeded"),
        ("anthropic", "failed"),
        ("backup", "succeeded"),
        ("anthropic", "skipped"),
        ("backup", "succeeded"),
    ]
    skipped = session.calls[4]
    assert skipped["reason"] == "circuit open"
    assert skipped["usage"] == Usage().to_json()
    assert skipped["cost_usd"] is None
    assert skipped["error"]["type"] == "CircuitOpenError"


async def test_an_open_breaker_alone_is_retryable_after_its_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A single candidate whose breaker is open fails retryably, saying when it may reopen."""
    session, names = setup(ScriptedProvider("anthropic"))
    breaker = session.provider_guard("anthropic")
    assert isinstance(breaker, CircuitBreaker)
    breaker.force_open()
    with pytest.raises(NonRetryableError, match="is forced open"):
        await call(session, names[:1])
    breaker.close()
    session.breakers["anthropic"] = CircuitBreaker.from_policy(
        CircuitBreakerPolicy(failure_threshold=1, reset_timeout=9), name="anthropic"
    )
    session.breakers["anthropic"].record_failure(
        session.breakers["anthropic"].admit(), ValueError()
    )
    with pytest.raises(AllProvidersFailedError) as caught:
        await call(session, names[:1])
    assert caught.value.retry_after == 9


async def test_start_skips_the_candidates_before_the_one_that_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A conversation that fell back stays on the fallback for its next turns."""
    session, names = setup(ScriptedProvider("anthropic"), ScriptedProvider("backup", "again"))
    answered = await call(session, names, start=1)
    assert answered.index == 1
    assert [record["fallback_index"] for record in session.calls] == [1]


async def test_a_cancelled_call_leaves_the_breaker_as_it_was(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancellation is no verdict on the provider: it passes through, counted by nobody."""
    session, names = setup(ScriptedProvider("anthropic", trio.Cancelled._create()))
    with pytest.raises(trio.Cancelled):
        await call(session, names)
    statistics = session.breakers["anthropic"].statistics()
    assert (statistics.failures, statistics.successes) == (0, 0)
    assert session.calls == []


def test_a_status_attribute_decides_like_the_message() -> None:
    """An error carrying `status` is judged by it, whatever its message says."""
    refused = NonRetryableError("no such model")
    refused.status = 404  # type: ignore[attr-defined]
    assert falls_back(refused)


async def test_a_call_needs_a_candidate(autojump_clock: trio.testing.MockClock) -> None:
    """No candidate at all is a programming error, said plainly."""
    session, _ = setup()
    with pytest.raises(ValueError, match="at least one candidate"):
        await call(session, [])
    with pytest.raises(ValueError, match="no candidate from 3: there are 3"):
        await call(session, setup()[1], start=3)


def test_the_cost_prices_cached_input_apart() -> None:
    """Cached input tokens are part of the input and priced at the cached price."""
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000)
    price = ModelPrice(input=3.0, output=15.0, cached_input=0.3)
    assert cost_of_call(usage, price) == pytest.approx(0.6 * 3 + 0.4 * 0.3 + 0.1 * 15)
    assert cost_of_call(usage, ModelPrice(input=3.0, output=15.0)) == pytest.approx(3 + 1.5)
    assert cost_of_call(usage, None) is None


async def test_a_provider_whose_spec_key_is_unset_is_skipped_and_journaled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`api_key: ${env.NOPE}` unset: no call, an `llm.called` skipped, the fallback answers."""
    backup = ScriptedProvider("backup", "from backup")
    specs = {
        "team": ProviderSpec(kind="anthropic", base_url="http://h/", api_key="${env.NOPE}"),
        "backup": ProviderSpec(kind="anthropic"),
    }
    catalog = ProviderCatalog(specs, environ={}, factory=ScriptedProviders(backup))
    session = RecordingSession(catalog, CircuitBreakerPolicy())
    names = [parse_model_name(text, field="model") for text in ("team:m", "backup:claude-b")]
    answered = await call(session, names)
    assert (answered.index, answered.reply.provider) == (1, "backup")
    skipped, succeeded = session.calls
    assert (skipped["provider"], skipped["outcome"], skipped["reason"]) == (
        "team",
        "skipped",
        "no API key",
    )
    assert skipped["error"]["type"] == "MissingAPIKeyError"
    assert succeeded["outcome"] == "succeeded"
