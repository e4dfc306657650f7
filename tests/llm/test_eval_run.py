"""The eval runner: paired, in a seeded interleaved order, bounded, retried, cached, reported.

The arms call the real `AnthropicProvider` against `FakeAnthropic`; each arm here renders a one
line prompt and scores a reply by whether it says `good`, so the tests control which arm wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from orchestr8._errors import EvalCacheError, EvalCallsFailedError, EvalDatasetError, TemplateError
from orchestr8._json import JSON
from orchestr8._llm._anthropic_provider import AnthropicProvider
from orchestr8._llm._chat import ChatMessage, ChatRequest, Usage
from orchestr8._llm._eval_cache import EvalCache
from orchestr8._llm._eval_run import ArmScore, call_order, request_key, run_eval
from orchestr8._llm._eval_spec import DatasetInput
from orchestr8._llm._provider import Provider
from orchestr8.testing import FakeAnthropic, use_fake_anthropic


@attrs.frozen
class WordArm:
    """An arm that asks about a topic and scores 100 when the reply says `good`."""

    name: str
    provider: Provider
    model: str = "anthropic:claude-test"
    template: str = "inline"
    price_per_token: float | None = 0.000001

    def request(self, variables: Mapping[str, JSON]) -> ChatRequest:
        if "topic" not in variables:
            raise TemplateError("no value for variable 'topic'")
        return ChatRequest(
            model="claude-test",
            messages=(ChatMessage(role="user", content=f"{self.name}: {variables['topic']}"),),
            max_tokens=50,
            stream=False,
        )

    def cost(self, usage: Usage) -> float | None:
        if self.price_per_token is None:
            return None
        return (usage.input_tokens + usage.output_tokens) * self.price_per_token

    async def score(self, text: str) -> ArmScore:
        good = "good" in text
        return ArmScore({"constraints": 100.0 if good else 0.0}, good)


@attrs.define
class Progress:
    """Writes down what the runner says about its calls."""

    planned: list[tuple[int, int]] = attrs.field(factory=list)
    finished: list[tuple[int, int]] = attrs.field(factory=list)

    def calls_planned(self, total: int, from_cache: int) -> None:
        self.planned.append((total, from_cache))

    def call_finished(self, done: int, to_call: int) -> None:
        self.finished.append((done, to_call))


def inputs(count: int) -> list[DatasetInput]:
    return [DatasetInput(index + 1, {"topic": f"t{index}"}) for index in range(count)]


def arms() -> tuple[WordArm, WordArm]:
    provider = AnthropicProvider()
    return WordArm("a", provider), WordArm("b", provider)


async def test_every_input_goes_to_both_arms_in_the_seeded_order(tmp_path: Path) -> None:
    """Sequentially the calls come in `call_order`: both arms of every input, interleaved."""
    fake = FakeAnthropic()
    order = call_order(20, seed=7)
    for _, arm in order:
        fake.reply_text("good" if arm == "a" else "bad", input_tokens=10, output_tokens=2)
    progress = Progress()
    with use_fake_anthropic(fake):
        report = await run_eval(
            arms(),
            inputs(20),
            dataset="d.jsonl",
            seed=7,
            cache=EvalCache(tmp_path),
            concurrency=1,
            progress=progress,
        )
    sent = [request.json["messages"][0]["content"] for request in fake.requests]
    assert sent == [f"{arm}: t{index}" for index, arm in order]
    assert [arm for _, arm in order[:8]] != ["a"] * 4 + ["b"] * 4
    assert sorted(order) == [(index, arm) for index in range(20) for arm in ("a", "b")]
    assert report.b_significantly_worse
    assert [result.name for result in report.dimensions] == ["constraints", "pass"]
    assert report.a.cost_usd == pytest.approx(20 * 12 * 0.000001)
    assert progress.planned == [(40, 0)]
    assert progress.finished[-1] == (40, 40)


def test_the_call_order_depends_on_the_seed_alone() -> None:
    """The same seed gives the same order; another seed another one."""
    assert call_order(30, seed=1) == call_order(30, seed=1)
    assert call_order(30, seed=1) != call_order(30, seed=2)


async def test_a_rerun_is_answered_from_the_cache(tmp_path: Path) -> None:
    """The second run makes no call, costs nothing now, and reports the same comparison."""
    fake = FakeAnthropic()
    for _, arm in call_order(20, seed=3):
        fake.reply_text("good" if arm == "b" else "bad")
    cache = EvalCache(tmp_path)
    with use_fake_anthropic(fake):
        first = await run_eval(arms(), inputs(20), dataset="d", seed=3, cache=cache, concurrency=4)
        calls = len(fake.requests)
        progress = Progress()
        second = await run_eval(
            arms(), inputs(20), dataset="d", seed=3, cache=cache, concurrency=4, progress=progress
        )
    assert calls == 40
    assert len(fake.requests) == 40
    assert progress.planned == [(40, 40)]
    assert progress.finished == []
    assert second.from_cache == 40
    assert second.a.spent_usd == 0.0
    assert second.a.cost_usd == first.a.cost_usd
    assert second.dimensions == first.dimensions


async def test_a_rate_limited_call_is_retried_after_retry_after(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """429 with retry-after 5: the call is made again 5 s later; latency is the last attempt's."""
    fake = FakeAnthropic()
    fake.reply_rate_limited(retry_after=5)
    for _ in range(40):
        fake.reply_text("good")
    with use_fake_anthropic(fake):
        started = trio.current_time()
        report = await run_eval(
            arms(), inputs(20), dataset="d", seed=1, cache=EvalCache(tmp_path), concurrency=1
        )
    assert trio.current_time() - started == pytest.approx(5.0)
    assert len(fake.requests) == 41
    assert report.a.latency_p95_s < 5.0


async def test_failed_calls_are_reported_after_the_others_and_cached_ones_kept(
    tmp_path: Path,
) -> None:
    """One call refused for good: the eval fails naming it; the 39 others are in the cache."""
    fake = FakeAnthropic()
    fake.reply_bad_request("max_tokens: too large")
    for _ in range(39):
        fake.reply_text("good")
    cache = EvalCache(tmp_path)
    order = call_order(20, seed=5)
    with use_fake_anthropic(fake), pytest.raises(EvalCallsFailedError) as error:
        await run_eval(arms(), inputs(20), dataset="d", seed=5, cache=cache, concurrency=1)
    index, arm = order[0]
    message = str(error.value)
    assert message.startswith(f"1 of 40 calls failed (first: input {index + 1}, arm {arm}: ")
    assert "max_tokens: too large" in message
    assert message.endswith(
        "the 39 outputs that succeeded are cached: run again to retry only the failed calls"
    )
    assert sum(1 for _ in tmp_path.glob("*/*.json")) == 39  # noqa: ASYNC240


async def test_three_retryable_failures_fail_the_call(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Overloaded three times (pauses 1 s, 2 s): the call fails for good, the others finish."""
    fake = FakeAnthropic()
    for _ in range(3):
        fake.reply_overloaded()
    for _ in range(39):
        fake.reply_text("good")
    with use_fake_anthropic(fake), pytest.raises(EvalCallsFailedError, match="1 of 40 calls"):
        await run_eval(
            arms(), inputs(20), dataset="d", seed=5, cache=EvalCache(tmp_path), concurrency=1
        )
    assert len(fake.requests) == 42


async def test_an_input_that_does_not_render_names_its_line(tmp_path: Path) -> None:
    """A missing variable stops the eval before any call, naming the line and the arm."""
    entries = [*inputs(19), DatasetInput(23, {"subject": "x"})]
    fake = FakeAnthropic()
    with use_fake_anthropic(fake), pytest.raises(EvalDatasetError) as error:
        await run_eval(
            arms(), entries, dataset="d.jsonl", seed=0, cache=EvalCache(tmp_path), concurrency=2
        )
    assert str(error.value) == "d.jsonl:23: arm a (inline): no value for variable 'topic'"
    assert fake.requests == []


async def test_calls_run_at_most_concurrency_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Slow streamed replies: 4 calls at a time take about a quarter of the time, never less."""

    @attrs.frozen
    class StreamingArm(WordArm):
        def request(self, variables: Mapping[str, JSON]) -> ChatRequest:
            return attrs.evolve(super().request(variables), stream=True)

    provider = AnthropicProvider()
    elapsed = {}
    for concurrency in (1, 4):
        fake = FakeAnthropic(delay=1.0, chunk_size=1000)
        for _ in range(40):
            fake.reply_text("good")
        with use_fake_anthropic(fake):
            started = trio.current_time()
            await run_eval(
                (StreamingArm("a", provider), StreamingArm("b", provider)),
                inputs(20),
                dataset="d",
                seed=0,
                cache=EvalCache(tmp_path / str(concurrency)),
                concurrency=concurrency,
            )
        elapsed[concurrency] = trio.current_time() - started
    # Never more than 4 at once: not faster than a quarter; but truly 4 at once: well under half.
    assert elapsed[1] / 4 - 1e-6 <= elapsed[4] < elapsed[1] / 2


async def test_an_unknown_price_makes_the_cost_unknown(tmp_path: Path) -> None:
    """One arm's model has no price: its cost is unknown, never a partial sum."""
    fake = FakeAnthropic()
    for _ in range(40):
        fake.reply_text("good")
    provider = AnthropicProvider()
    unpriced = (WordArm("a", provider), WordArm("b", provider, price_per_token=None))
    with use_fake_anthropic(fake):
        report = await run_eval(
            unpriced, inputs(20), dataset="d", seed=0, cache=EvalCache(tmp_path), concurrency=8
        )
    assert report.a.cost_usd is not None
    assert report.b.cost_usd is None
    assert not report.b_significantly_worse


def test_the_request_key_covers_the_provider_and_the_request() -> None:
    """The same request to another endpoint, or with another prompt, is another entry."""
    request = ChatRequest(model="m", messages=(ChatMessage(role="user", content="hi"),))
    local = AnthropicProvider(base_url="http://127.0.0.1:9/")
    keys = {
        request_key(AnthropicProvider(), request),
        request_key(local, request),
        request_key(local, attrs.evolve(request, system="be brief")),
        request_key(local, request, sample=2),
    }
    assert len(keys) == 4
    assert request_key(local, request) == request_key(
        AnthropicProvider("other", base_url="http://127.0.0.1:9/"), request
    )


@attrs.frozen
class SameArm(WordArm):
    """An arm whose request does not name the arm: both arms send byte-identical requests."""

    def request(self, variables: Mapping[str, JSON]) -> ChatRequest:
        return attrs.evolve(
            super().request(variables),
            messages=(ChatMessage(role="user", content=f"topic: {variables['topic']}"),),
        )


async def test_a_request_both_arms_send_is_paid_for_once(tmp_path: Path) -> None:
    """Identical requests share one cache key: one call each, the other arm shares the reply."""
    fake = FakeAnthropic()
    for _ in range(20):
        fake.reply_text("good", input_tokens=10, output_tokens=2)
    provider = AnthropicProvider()
    progress = Progress()
    with use_fake_anthropic(fake):
        report = await run_eval(
            (SameArm("a", provider), SameArm("b", provider)),
            inputs(20),
            dataset="d",
            seed=1,
            cache=EvalCache(tmp_path),
            concurrency=2,
            progress=progress,
        )
    fake.assert_all_used()
    assert len(fake.requests) == 20
    assert progress.planned == [(40, 20)]
    assert report.from_cache == 20
    assert report.a.spent_usd is not None
    assert report.b.spent_usd is not None
    assert report.a.spent_usd + report.b.spent_usd == pytest.approx(20 * 12 * 0.000001)


async def test_an_unusable_cache_is_refused_before_any_call(tmp_path: Path) -> None:
    """--cache naming a file, or an entry's place taken by a directory: refused, nothing paid."""
    fake = FakeAnthropic()
    not_a_directory = tmp_path / "cache.txt"
    not_a_directory.write_text("x")
    with use_fake_anthropic(fake), pytest.raises(EvalCacheError, match="is not a directory"):
        await run_eval(
            arms(), inputs(20), dataset="d", seed=1, cache=EvalCache(not_a_directory),
            concurrency=1,
        )  # fmt: skip
    arm = arms()[0]
    key = request_key(arm.provider, arm.request({"topic": "t0"}))
    (tmp_path / "cache" / key[:2] / f"{key}.json").mkdir(parents=True)
    with use_fake_anthropic(fake), pytest.raises(EvalCacheError) as error:
        await run_eval(
            arms(), inputs(20), dataset="d", seed=1, cache=EvalCache(tmp_path / "cache"),
            concurrency=1,
        )  # fmt: skip
    assert f"{key}.json should be a file but is not: remove it" in str(error.value)
    assert fake.requests == []


async def test_a_provider_without_a_key_stops_the_eval_before_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arm B on OpenAI's own API with no key: refused up front, arm A's calls never paid."""
    from orchestr8 import MissingAPIKeyError, OpenAIProvider

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fake = FakeAnthropic()
    b = WordArm("b", OpenAIProvider("openai", base_url=None, api_key=None))
    with use_fake_anthropic(fake), pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        await run_eval(
            (arms()[0], b), inputs(20), dataset="d", seed=1, cache=EvalCache(tmp_path),
            concurrency=2,
        )  # fmt: skip
    assert fake.requests == []
