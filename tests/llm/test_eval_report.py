"""The eval report: per-dimension verdicts with Holm's adjustment, per-arm cost and latency."""

from __future__ import annotations

import json

import attrs
import pytest

from orchestr8._llm._eval_report import (
    ARM_HEADERS,
    DIMENSION_HEADERS,
    ArmOutput,
    arm_rows,
    build_report,
    dimension_rows,
    verdict_word,
)

ARMS = {"a": ("anthropic:m", "a.json"), "b": ("anthropic:m", "b.json")}


def output(
    structure: float,
    constraints: float,
    *,
    passed: bool | None = None,
    latency: float = 1.0,
    cost: float | None = 0.01,
    cached: bool = False,
) -> ArmOutput:
    return ArmOutput(
        scores={"structure": structure, "constraints": constraints},
        passed=passed,
        latency_s=latency,
        cost_usd=cost,
        input_tokens=100,
        output_tokens=20,
        from_cache=cached,
    )


def test_b_worse_on_one_dimension_is_flagged() -> None:
    """B loses 30 constraint points on every input: B worse there, no difference in structure."""
    a = [output(100, 100 - (index % 3)) for index in range(30)]
    b = [output(100, 70 - (index % 4)) for index in range(30)]
    report = build_report(a, b, seed=7, arms=ARMS)
    verdicts = {result.name: result.verdict for result in report.dimensions}
    assert verdicts == {"structure": "no_significant_difference", "constraints": "b_worse"}
    assert report.b_significantly_worse
    constraints = report.dimensions[1].comparison
    assert constraints.mean_difference < -25
    assert constraints.interval.high < 0


def test_b_better_is_not_a_failure() -> None:
    """B better on a dimension: reported, and B is not significantly worse anywhere."""
    a = [output(60 + index % 5, 80) for index in range(25)]
    b = [output(90 + index % 7, 80) for index in range(25)]
    report = build_report(a, b, seed=1, arms=ARMS)
    assert report.dimensions[0].verdict == "b_better"
    assert not report.b_significantly_worse


def test_holm_keeps_a_marginal_p_from_failing_the_eval() -> None:
    """A raw p just under 0.05 on one of several dimensions is not significant after Holm."""
    a = [output(50, 50, passed=True) for _ in range(40)]
    b = [output(50, 50 - (5 if index < 7 else 0), passed=True) for index in range(40)]
    b[39] = output(50, 52, passed=True)
    report = build_report(a, b, seed=3, arms=ARMS)
    constraints = next(result for result in report.dimensions if result.name == "constraints")
    assert constraints.comparison.test.p_value == pytest.approx(0.0287, abs=1e-4)
    assert constraints.p_adjusted == pytest.approx(3 * constraints.comparison.test.p_value)
    assert constraints.verdict == "no_significant_difference"
    assert not report.b_significantly_worse


def test_pass_fail_uses_mcnemar() -> None:
    """Where pass/fail is defined a `pass` dimension follows the scores, tested by McNemar."""
    a = [output(100, 100, passed=index % 2 == 0) for index in range(20)]
    b = [output(100, 100, passed=True) for _ in range(20)]
    report = build_report(a, b, seed=2, arms=ARMS)
    passing = report.dimensions[-1]
    assert passing.name == "pass"
    assert passing.comparison.test.test == "mcnemar-exact"
    assert passing.comparison.mean_difference == pytest.approx(0.5)
    assert passing.verdict == "b_better"


def test_a_dimension_only_one_arm_scores_is_left_out() -> None:
    """Completeness scored by A alone cannot be compared, so it is not in the report."""
    a = [ArmOutput({"structure": 100, "completeness": 50}, None, 1.0, 0.0) for _ in range(20)]
    b = [ArmOutput({"structure": 100}, None, 1.0, 0.0) for _ in range(20)]
    report = build_report(a, b, seed=0, arms=ARMS)
    assert [result.name for result in report.dimensions] == ["structure"]


def test_arm_costs_latency_and_cache() -> None:
    """Costs add up; this run spent nothing on cached outputs; latency p50/p95 by nearest rank."""
    a = [output(1, 1, latency=float(index), cached=index < 15) for index in range(1, 21)]
    b = [output(1, 1, cost=None) for _ in range(20)]
    report = build_report(a, b, seed=0, arms=ARMS)
    assert report.a.cost_usd == pytest.approx(0.2)
    assert report.a.spent_usd == pytest.approx(0.06)
    assert (report.a.latency_p50_s, report.a.latency_p95_s) == (10.0, 19.0)
    assert (report.a.from_cache, report.from_cache) == (14, 14)
    assert (report.a.input_tokens, report.a.output_tokens) == (2000, 400)
    assert report.b.cost_usd is None
    assert report.b.spent_usd is None


def test_the_json_document_holds_every_number() -> None:
    """--json: dimensions with CI, p, adjusted p, effect, MDE, verdict; arms; the flag for CI."""
    a = [output(100, 100 - index % 3) for index in range(30)]
    b = [output(100, 70 - index % 4) for index in range(30)]
    document = build_report(a, b, seed=7, arms=ARMS).to_json()
    json.dumps(document, allow_nan=False)
    assert document["inputs"] == 30
    assert (document["seed"], document["alpha"], document["power"]) == (7, 0.05, 0.8)
    assert document["b_significantly_worse"] is True
    constraints = document["dimensions"][1]
    assert set(constraints) == {
        "name",
        "kind",
        "count",
        "mean_a",
        "mean_b",
        "mean_difference",
        "ci95",
        "test",
        "statistic",
        "p_value",
        "p_adjusted",
        "effect_size",
        "minimum_detectable_effect",
        "minimum_detectable_dz",
        "verdict",
    }
    assert constraints["effect_size"]["kind"] == "cohens_dz"
    assert document["arms"]["a"]["latency_s"] == {"p50": 1.0, "p95": 1.0}
    assert document["outputs_from_cache"] == 0


def test_the_tables_people_read() -> None:
    """One row per dimension and per arm, as many cells as headers, verdicts in words."""
    a = [output(100, 100 - index % 3, passed=True) for index in range(30)]
    b = [output(100, 70 - index % 4, passed=index % 3 == 0) for index in range(30)]
    report = build_report(a, b, seed=7, arms=ARMS)
    rows = dimension_rows(report)
    assert [row[0] for row in rows] == ["structure", "constraints", "pass"]
    assert all(len(row) == len(DIMENSION_HEADERS) for row in rows)
    assert rows[0][8] == "-"
    assert rows[1][-1] == "B worse"
    assert rows[2][1:4] == ("100%", "33%", "-67pp")
    assert rows[2][8].startswith("OR ")
    assert rows[2][9].endswith("pp")
    arms = arm_rows(report)
    assert arms[0] == (
        "a",
        "anthropic:m",
        "a.json",
        "0.3000",
        "0.3000",
        "3000/600",
        "1.00s",
        "1.00s",
        "0/30",
    )
    assert all(len(row) == len(ARM_HEADERS) for row in arms)
    assert verdict_word("no_significant_difference") == "no significant difference"


def test_an_undefined_effect_and_tiny_p_are_shown_plainly() -> None:
    """d_z without spread shows '-', a p below 0.0001 shows '<0.0001', no spread no MDE."""
    a = [output(50, 50) for _ in range(30)]
    b = [output(60, 50) for _ in range(30)]
    row = dimension_rows(build_report(a, b, seed=1, arms=ARMS))[0]
    assert (row[5], row[8], row[9]) == ("<0.0001", "-", "-")


def test_the_arms_must_pair_up() -> None:
    """Outputs of different lengths, or none, are a programming error."""
    with pytest.raises(ValueError, match="same, non-zero number"):
        build_report([output(1, 1)], [], seed=0, arms=ARMS)


def test_identical_arms_show_no_effect_and_no_test() -> None:
    """When every difference is 0 the effect is `-` and both tests are `none`, as eval.md says."""
    same = [output(100, 50 + index, passed=index % 2 == 0) for index in range(20)]
    report = build_report(same, same, seed=1, arms=ARMS)
    rows = dimension_rows(report)
    assert [row[DIMENSION_HEADERS.index("test")] for row in rows] == ["none"] * 3
    assert [row[DIMENSION_HEADERS.index("effect")] for row in rows] == ["-", "-", "OR 1.00"]


def test_a_tiny_odds_ratio_is_not_printed_as_zero() -> None:
    """An odds ratio below 0.01 keeps two significant digits instead of reading `OR 0.00`."""
    a = [output(100, 100, passed=True) for _ in range(40)] * 30
    b = [output(100, 100, passed=False) for _ in range(40)] * 30
    report = build_report(a, b, seed=1, arms=ARMS)
    effect = dimension_rows(report)[-1][DIMENSION_HEADERS.index("effect")]
    assert effect == "OR 0.00042"


def test_estimated_token_counts_are_flagged() -> None:
    """Outputs whose provider sent no usage: `~` in the table, a count in the JSON."""
    a = [output(100, 100) for _ in range(20)]
    b = [attrs.evolve(output(100, 100), estimated=index < 3) for index in range(20)]
    report = build_report(a, b, seed=1, arms=ARMS)
    rows = arm_rows(report)
    tokens = ARM_HEADERS.index("tokens in/out")
    assert (rows[0][tokens], rows[1][tokens]) == ("2000/400", "~2000/400")
    document = report.to_json()
    assert document["arms"]["b"]["tokens_estimated"] == 3
    assert document["judge"] is None
