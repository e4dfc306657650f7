"""Eval arms from templates and the provider catalog: checked before any call, priced, judged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio.testing

from orchestr8._errors import EvalCallsFailedError, EvalSpecError
from orchestr8._llm._catalog import ProviderCatalog
from orchestr8._llm._chat import Usage
from orchestr8._llm._eval_arms import evaluate, prepare_arms
from orchestr8._llm._eval_cache import EvalCache
from orchestr8._llm._eval_report import arm_rows
from orchestr8._llm._eval_spec import EvalArm, EvalSpec
from orchestr8._workflow._provider_specs import ModelPrice, ProviderSpec
from orchestr8.testing import FakeAnthropic, use_fake_anthropic

EXPECT = {
    "structure": {"required_tags": ["summary"]},
    "completeness": {"sections": ["summary", "risks"]},
}


def write_template(path: Path, *, expect: dict[str, Any] | None = EXPECT) -> Path:
    document: dict[str, Any] = {
        "version": "1",
        "variables": {"topic": {"type": "string"}},
        "system": "Write a brief.",
        "messages": [{"role": "user", "content": "Topic: ${vars.topic}"}],
    }
    if expect is not None:
        document["expect"] = expect
    path.write_text(json.dumps(document))
    return path


def spec_for(tmp_path: Path, **changes: Any) -> EvalSpec:
    template = write_template(tmp_path / "t.json")
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("\n".join(json.dumps({"topic": f"t{i}"}) for i in range(20)))
    spec = EvalSpec(
        dataset=dataset,
        a=EvalArm("a", template, "anthropic:claude-sonnet-4-5"),
        b=EvalArm("b", template, "anthropic:claude-haiku-4-5"),
    )
    return attrs.evolve(spec, **changes)


def problems(error: pytest.ExceptionInfo[EvalSpecError]) -> list[str]:
    return [str(problem) for problem in error.value.problems]


def test_arms_render_priced_requests(tmp_path: Path) -> None:
    """An arm renders its template into a non-streaming request and prices by the table."""
    spec = spec_for(tmp_path, max_tokens=300, temperature=0.5)
    arm_a, arm_b = prepare_arms(spec, ProviderCatalog(), EvalCache(tmp_path / "c"))
    request = arm_a.request({"topic": "bees"})
    assert request.model == "claude-sonnet-4-5"
    assert (request.max_tokens, request.temperature, request.stream) == (300, 0.5, False)
    assert request.system == "Write a brief."
    assert request.messages[-1].content == "Topic: bees"
    assert arm_a.provider.name == "anthropic"
    assert arm_b.request({"topic": "x"}).model == "claude-haiku-4-5"
    cost = arm_a.cost(Usage(input_tokens=1_000_000, output_tokens=0))
    assert cost is not None
    assert cost > 0


def test_a_providers_price_override_wins_and_an_unknown_model_has_no_price(
    tmp_path: Path,
) -> None:
    """A provider spec's price is used; a model neither it nor the table knows costs None."""
    catalog = ProviderCatalog(
        {
            "cheap": ProviderSpec(
                kind="anthropic", prices={"*": ModelPrice(input=1.0, output=2.0)}
            ),
            "unpriced": ProviderSpec(kind="anthropic"),
        }
    )
    spec = spec_for(tmp_path)
    spec = attrs.evolve(
        spec,
        a=attrs.evolve(spec.a, model="cheap:whatever"),
        b=attrs.evolve(spec.b, model="unpriced:no-such-model"),
    )
    arm_a, arm_b = prepare_arms(spec, catalog, EvalCache(tmp_path / "c"))
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert arm_a.cost(usage) == pytest.approx(3.0)
    assert arm_b.cost(usage) is None


async def test_scores_cover_the_declared_dimensions_and_pass(tmp_path: Path) -> None:
    """Structure and completeness declared: both, overall and pass/fail are scored."""
    arm, _ = prepare_arms(spec_for(tmp_path), ProviderCatalog(), EvalCache(tmp_path / "c"))
    full = await arm.score("<summary>ok</summary>\n<risks>few</risks>")
    assert full.scores == {"structure": 100.0, "completeness": 100.0, "overall": 100.0}
    assert full.passed is True
    half = await arm.score("<summary>ok</summary>")
    assert half.scores["completeness"] == 50.0
    assert half.passed is False


def test_the_specs_expect_replaces_the_templates(tmp_path: Path) -> None:
    """A shared expect scores both arms by the same rules, whatever the templates declare."""
    spec = spec_for(tmp_path, expect={"constraints": {"max_words": 5}})
    arm, _ = prepare_arms(spec, ProviderCatalog(), EvalCache(tmp_path / "c"))
    assert arm.expect.structure is None
    assert len(arm.expect.constraints) == 1


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"expect": {"bogus": 1}}, "$.expect: unknown key"),
        (
            {
                "judge": {"model": "anthropic:claude-haiku-4-5"},
                "expect": {"constraints": {"max_words": 5}},
            },
            "$.judge: the expectations declare no completeness sections",
        ),
        ({"judge": {"model": "nowhere:judge"}}, "$.judge.model: "),
    ],
)
def test_bad_expectations_and_judges_are_named(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    """Problems of the spec's expect and judge are named at their JSON paths."""
    with pytest.raises(EvalSpecError) as error:
        prepare_arms(spec_for(tmp_path, **changes), ProviderCatalog(), EvalCache(tmp_path))
    assert problems(error)[0].startswith(expected)


def test_a_missing_template_and_an_unknown_provider_are_named(tmp_path: Path) -> None:
    """A template that cannot be read, or a model of no provider: said at the arm."""
    spec = spec_for(tmp_path)
    missing = attrs.evolve(spec, a=attrs.evolve(spec.a, template=tmp_path / "none.json"))
    with pytest.raises(EvalSpecError) as error:
        prepare_arms(missing, ProviderCatalog(), EvalCache(tmp_path))
    assert problems(error)[0].startswith("$.arms.a.template: ")
    unknown = attrs.evolve(spec, b=attrs.evolve(spec.b, model="nowhere:m"))
    with pytest.raises(EvalSpecError) as error:
        prepare_arms(unknown, ProviderCatalog(), EvalCache(tmp_path))
    assert problems(error)[0].startswith("$.arms.b.model: ")
    assert "nowhere" in problems(error)[0]


def test_nothing_to_score_is_refused(tmp_path: Path) -> None:
    """No expect in the spec and none in the template: there is nothing to compare."""
    spec = spec_for(tmp_path)
    bare = write_template(tmp_path / "bare.json", expect=None)
    spec = attrs.evolve(spec, a=attrs.evolve(spec.a, template=bare))
    with pytest.raises(EvalSpecError) as error:
        prepare_arms(spec, ProviderCatalog(), EvalCache(tmp_path))
    assert problems(error) == [
        f"$.expect: nothing to score: the spec has no expect and template {bare} declares none"
    ]


async def test_a_judge_samples_each_reply_k_times_and_caches_every_sample(
    tmp_path: Path,
) -> None:
    """k = 2: two judge calls per reply, each cached apart; a rerun asks nothing at all."""
    spec = spec_for(
        tmp_path,
        judge={"model": "anthropic:claude-haiku-4-5", "k": 2},
        allow_small=True,
    )
    spec.dataset.write_text("".join(json.dumps({"topic": t}) + "\n" for t in ("bees", "ants")))
    fake = FakeAnthropic()
    for number in range(4):  # four different replies: a judge's samples of equal texts are shared
        fake.reply_text(f"<summary>insects {number}</summary>")
    for risks in (True, False, True, True, False, False, True, True):
        fake.reply_json({"summary": True, "risks": risks})
    cache = EvalCache(tmp_path / "cache")
    with use_fake_anthropic(fake):
        first = await evaluate(spec, catalog=ProviderCatalog(), cache=cache, concurrency=1)
        second = await evaluate(spec, catalog=ProviderCatalog(), cache=cache, concurrency=1)
    fake.assert_all_used()
    judged = [
        request
        for request in fake.requests
        if "<sections>" in json.dumps(request.json.get("messages"))
    ]
    assert len(judged) == 8
    assert len(fake.requests) == 12
    assert second.dimensions == first.dimensions
    completeness = {result.name: result.comparison for result in first.dimensions}["completeness"]
    # Scored input by input, A then B: verdicts (T, F), (T, T), (F, F), (T, T) on risks.
    assert completeness.mean_a == pytest.approx((75.0 + 50.0) / 2)
    assert completeness.mean_b == pytest.approx(100.0)


async def test_a_judge_answer_that_is_not_a_verdict_is_retried_and_never_cached(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """`sure! looks good` is paid for but retried; the report counts every judge call."""
    spec = spec_for(
        tmp_path, judge={"model": "anthropic:claude-haiku-4-5", "k": 1}, allow_small=True
    )
    spec.dataset.write_text("".join(json.dumps({"topic": t}) + "\n" for t in ("bees", "ants")))
    fake = FakeAnthropic()
    for number in range(4):
        fake.reply_text(f"<summary>insects {number}</summary>")
    fake.reply_text("sure! looks good", input_tokens=30, output_tokens=4)
    for _ in range(4):
        fake.reply_json({"summary": True, "risks": False}, input_tokens=30, output_tokens=4)
    cache = EvalCache(tmp_path / "cache")
    with use_fake_anthropic(fake):
        report = await evaluate(spec, catalog=ProviderCatalog(), cache=cache, concurrency=1)
        again = await evaluate(spec, catalog=ProviderCatalog(), cache=cache, concurrency=1)
    fake.assert_all_used()
    assert report.judge is not None
    assert again.judge is not None
    assert (report.judge.samples, report.judge.from_cache) == (4, 0)
    assert report.judge.model == "anthropic:claude-haiku-4-5"
    assert report.judge.input_tokens == 4 * 30  # the sample kept; the retried answer not cached
    assert report.judge.spent_usd is not None
    assert report.judge.spent_usd > 0
    assert (again.judge.samples, again.judge.from_cache, again.judge.spent_usd) == (4, 4, 0.0)
    assert report.to_json()["judge"]["samples"] == 4
    assert arm_rows(report)[-1][:3] == ("judge", "anthropic:claude-haiku-4-5", "-")


async def test_replies_the_judge_cannot_score_are_named_after_the_others(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A judge that never answers a verdict for one reply: three tries, then named with its arm."""
    spec = spec_for(
        tmp_path, judge={"model": "anthropic:claude-haiku-4-5", "k": 1}, allow_small=True
    )
    spec.dataset.write_text("".join(json.dumps({"topic": t}) + "\n" for t in ("bees", "ants")))
    fake = FakeAnthropic()
    for number in range(4):
        fake.reply_text(f"<summary>insects {number}</summary>")
    for _ in range(3):
        fake.reply_text("sure! looks good")
    for _ in range(3):
        fake.reply_json({"summary": True, "risks": True})
    with use_fake_anthropic(fake), pytest.raises(EvalCallsFailedError) as error:
        await evaluate(
            spec, catalog=ProviderCatalog(), cache=EvalCache(tmp_path / "c"), concurrency=1
        )
    fake.assert_all_used()
    message = str(error.value)
    assert message.startswith("1 of 4 outputs could not be scored (first: input 1, arm a: ")
    assert "'sure! looks good', not a true/false verdict for each section" in message


def test_the_specs_unknown_model_is_named_once_at_its_own_path(tmp_path: Path) -> None:
    """`"model": "vllm:llama"` for both arms: one problem at `$.model`, pointing at --providers."""
    spec = spec_for(tmp_path)
    inherited = attrs.evolve(
        spec,
        a=EvalArm("a", spec.a.template, "vllm:llama", "$.model"),
        b=EvalArm("b", spec.a.template, "vllm:llama", "$.model"),
    )
    with pytest.raises(EvalSpecError) as error:
        prepare_arms(inherited, ProviderCatalog(), EvalCache(tmp_path))
    [problem] = problems(error)
    assert problem.startswith("$.model: unknown provider 'vllm'")
    assert problem.endswith(
        "declare it in a provider config file (--providers, or $ORCHESTR8_PROVIDERS)"
    )
    assert "workflow" not in problem


def test_problems_of_two_arms_and_of_two_dimensions_are_all_named(tmp_path: Path) -> None:
    """Both arms' bad models, and bad structure and constraints: every problem at once."""
    spec = spec_for(tmp_path)
    both = attrs.evolve(
        spec,
        a=attrs.evolve(spec.a, model="nowhere:m"),
        b=attrs.evolve(spec.b, model="elsewhere:m"),
    )
    with pytest.raises(EvalSpecError) as error:
        prepare_arms(both, ProviderCatalog(), EvalCache(tmp_path))
    assert [problem.split(": ")[0] for problem in problems(error)] == [
        "$.arms.a.model",
        "$.arms.b.model",
    ]
    expect = {"structure": {"required_tags": 3}, "constraints": {"max_words": "many"}}
    with pytest.raises(EvalSpecError) as error:
        prepare_arms(spec_for(tmp_path, expect=expect), ProviderCatalog(), EvalCache(tmp_path))
    paths = [problem.split(": ")[0] for problem in problems(error)]
    assert paths[0].startswith("$.expect.structure")
    assert paths[1].startswith("$.expect.constraints")


def test_a_judge_sample_without_a_price_makes_the_judges_cost_unknown() -> None:
    """One unpriced sample: the judge's cost is unknown, never a partial sum."""
    from orchestr8._llm._eval_arms import JudgeTally
    from orchestr8._llm._eval_cache import CachedReply

    tally = JudgeTally()
    assert tally.summary() is None
    tally.add_judge("local:judge", ProviderCatalog().resolve("local:judge").provider)
    tally.add(CachedReply("{}", 10, 2, 0.5, 0.1), from_cache=True)
    tally.add(CachedReply("{}", 10, 2, None, 0.1, estimated=True), from_cache=False)
    summary = tally.summary()
    assert summary is not None
    assert (summary.cost_usd, summary.spent_usd, summary.estimated) == (None, None, 1)
    assert (summary.samples, summary.from_cache, summary.input_tokens) == (2, 1, 20)
