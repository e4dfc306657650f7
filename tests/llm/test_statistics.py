"""The paired statistics of `orchestr8 eval`, checked against SciPy and by their invariants."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats  # type: ignore[import-untyped]

from orchestr8._llm._statistics import (
    EXACT_WILCOXON_LIMIT,
    Interval,
    bootstrap_mean_interval,
    cohens_dz,
    compare_pass_fail,
    compare_scores,
    discordant_odds_ratio,
    holm_adjusted,
    mcnemar_exact,
    minimum_detectable_effect,
    wilcoxon_signed_rank,
)

scores = st.integers(min_value=0, max_value=100)
paired_scores = st.lists(st.tuples(scores, scores), min_size=1, max_size=120)


@st.composite
def distinct_differences(draw: st.DrawFn) -> list[float]:
    """Non-zero differences with distinct magnitudes: where Wilcoxon's p is exact."""
    magnitudes = draw(
        st.lists(
            st.floats(min_value=0.01, max_value=100, allow_nan=False),
            min_size=1,
            max_size=EXACT_WILCOXON_LIMIT,
            unique=True,
        )
    )
    signs = draw(st.lists(st.sampled_from([-1, 1]), min_size=len(magnitudes)))
    return [magnitude * sign for magnitude, sign in zip(magnitudes, signs, strict=False)]


@settings(max_examples=150, deadline=None)
@given(distinct_differences())
def test_exact_wilcoxon_agrees_with_scipy(differences: list[float]) -> None:
    """Without zeros or ties and up to 50 pairs, p is exact and equals SciPy's to 1e-9."""
    result = wilcoxon_signed_rank(differences)
    expected = stats.wilcoxon(differences, method="exact")
    assert result.test == "wilcoxon-exact"
    assert result.statistic == pytest.approx(float(expected.statistic), abs=1e-9)
    assert result.p_value == pytest.approx(float(expected.pvalue), abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(paired_scores)
def test_normal_wilcoxon_agrees_with_scipy(pairs: list[tuple[int, int]]) -> None:
    """With ties or zeros, p is SciPy's normal approximation with Pratt's zeros, to 1e-9."""
    differences = [float(b - a) for a, b in pairs]
    result = wilcoxon_signed_rank(differences)
    if all(difference == 0 for difference in differences):
        assert (result.test, result.p_value) == ("none", 1.0)
        return
    if result.test == "wilcoxon-exact":
        expected = stats.wilcoxon(differences, method="exact")
    else:
        expected = stats.wilcoxon(differences, zero_method="pratt", method="asymptotic")
    assert result.p_value == pytest.approx(float(expected.pvalue), abs=1e-9)
    assert result.statistic == pytest.approx(float(expected.statistic), abs=1e-9)


def test_wilcoxon_uses_the_normal_approximation_above_the_exact_limit() -> None:
    """More than 50 untied differences use the approximation, as SciPy's default does."""
    differences = [float(index if index % 3 else -index) for index in range(1, 62)]
    result = wilcoxon_signed_rank(differences)
    expected = stats.wilcoxon(differences, zero_method="pratt", method="asymptotic")
    assert result.test == "wilcoxon-normal"
    assert result.p_value == pytest.approx(float(expected.pvalue), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=200))
def test_mcnemar_is_scipys_exact_binomial_test(a_only: int, b_only: int) -> None:
    """The exact McNemar p is the two-sided binomial test of the discordant pairs, to 1e-9."""
    result = mcnemar_exact(a_only, b_only)
    if a_only + b_only == 0:
        assert result.p_value == 1.0
        return
    expected = stats.binomtest(min(a_only, b_only), a_only + b_only, 0.5).pvalue
    assert result.p_value == pytest.approx(float(expected), abs=1e-9)
    assert result.statistic == min(a_only, b_only)


def test_mcnemar_refuses_negative_counts() -> None:
    """A negative count is a programming error, said plainly."""
    with pytest.raises(ValueError, match="negative"):
        mcnemar_exact(-1, 3)


@settings(max_examples=50, deadline=None)
@given(paired_scores)
def test_p_values_are_probabilities(pairs: list[tuple[int, int]]) -> None:
    """Every p-value is in [0, 1], whatever the data."""
    a = [float(x) for x, _ in pairs]
    b = [float(y) for _, y in pairs]
    comparison = compare_scores(a, b, seed=1)
    assert 0.0 <= comparison.test.p_value <= 1.0
    passes = compare_pass_fail([x >= 50 for x in a], [y >= 50 for y in b], seed=1)
    assert 0.0 <= passes.test.p_value <= 1.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=-50, max_value=50, allow_nan=False), min_size=1, max_size=30),
    st.floats(min_value=-20, max_value=20, allow_nan=False),
)
def test_interval_of_symmetric_data_contains_its_mean(half: list[float], centre: float) -> None:
    """Data symmetric about its mean: the bootstrap interval contains that mean."""
    data = [centre + value for value in half] + [centre - value for value in half]
    interval = bootstrap_mean_interval(data, seed=7, resamples=2_000)
    mean = statistics.fmean(data)
    assert interval.low - 1e-9 <= mean <= interval.high + 1e-9


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=-100, max_value=100), min_size=1, max_size=40))
def test_interval_is_ordered_inside_the_data_and_repeatable(data: list[int]) -> None:
    """low <= high, both within the data's range, and the same seed draws the same interval."""
    values = [float(value) for value in data]
    interval = bootstrap_mean_interval(values, seed=3, resamples=500)
    assert min(values) <= interval.low <= interval.high <= max(values)
    assert bootstrap_mean_interval(values, seed=3, resamples=500) == interval


def test_interval_of_constant_differences_is_that_constant() -> None:
    """No spread, nothing to resample: the interval is the single value."""
    assert bootstrap_mean_interval([4.0] * 25, seed=1) == Interval(4.0, 4.0)


def test_interval_needs_a_difference() -> None:
    """An empty sample has no mean to bound."""
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_mean_interval([], seed=1)


def test_interval_covers_a_clear_shift_and_excludes_zero() -> None:
    """B ten points better on every input with noise: the interval is near 10 and above 0."""
    differences = [10.0 + ((index * 7) % 5 - 2) for index in range(40)]
    interval = bootstrap_mean_interval(differences, seed=11)
    assert 0 < interval.low < 10 < interval.high < 11


def test_cohens_dz_is_mean_over_standard_deviation() -> None:
    """d_z = mean / sd of the differences; undefined without spread, 0 for no difference."""
    assert cohens_dz([1.0, 3.0]) == pytest.approx(2.0 / statistics.stdev([1.0, 3.0]))
    assert cohens_dz([0.0, 0.0, 0.0]) is None
    assert cohens_dz([2.0, 2.0]) is None
    assert cohens_dz([5.0]) is None


def test_discordant_odds_ratio_corrects_zero_counts() -> None:
    """B-only over A-only; a zero count gets Haldane's 0.5 on both sides."""
    assert discordant_odds_ratio(2, 6) == 3.0
    assert discordant_odds_ratio(0, 4) == pytest.approx(4.5 / 0.5)
    assert discordant_odds_ratio(0, 0) == 1.0


def test_minimum_detectable_effect_follows_the_power_formula() -> None:
    """(z 0.975 + z 0.8) * sd / sqrt(n): about 2.8 sd over the root of the count."""
    differences = [float(index % 5) for index in range(100)]
    in_units, in_sd = minimum_detectable_effect(differences)
    assert in_sd == pytest.approx((1.959964 + 0.841621) / 10, abs=1e-5)
    assert in_units == pytest.approx(in_sd * statistics.stdev(differences))
    assert minimum_detectable_effect([3.0, 3.0, 3.0])[0] is None
    assert minimum_detectable_effect([3.0])[0] is None


@given(st.integers(min_value=2, max_value=500))
def test_minimum_detectable_effect_shrinks_with_more_pairs(count: int) -> None:
    """Twice the pairs detect a smaller effect; Wilcoxon's lower efficiency needs a larger one."""
    _, fewer = minimum_detectable_effect([0.0] * count)
    _, more = minimum_detectable_effect([0.0] * (2 * count))
    _, wilcoxon = minimum_detectable_effect([0.0] * count, efficiency=3 / math.pi)
    assert more < fewer < wilcoxon


def test_compare_scores_reports_a_clear_improvement() -> None:
    """B scores higher on nearly every input: small p, positive d_z, interval above zero."""
    a = [50.0 + (index % 7) for index in range(30)]
    b = [value + 8 + (index % 3) for index, value in enumerate(a)]
    comparison = compare_scores(a, b, seed=5)
    assert comparison.kind == "score"
    assert comparison.count == 30
    assert comparison.mean_difference == pytest.approx(statistics.fmean(b) - statistics.fmean(a))
    assert comparison.test.p_value < 0.001
    assert comparison.effect_size is not None
    assert comparison.effect_size > 0
    assert comparison.interval.low > 0
    assert comparison.minimum_detectable_effect is not None


def test_compare_pass_fail_counts_the_discordant_pairs() -> None:
    """Pass rates, their difference and McNemar on the pairs where the arms disagree."""
    a = [True] * 10 + [False] * 10 + [True] * 2
    b = [True] * 10 + [True] * 8 + [False] * 2 + [False] * 2
    comparison = compare_pass_fail(a, b, seed=2)
    assert comparison.mean_a == pytest.approx(12 / 22)
    assert comparison.mean_b == pytest.approx(18 / 22)
    assert comparison.mean_difference == pytest.approx(6 / 22)
    assert comparison.test.statistic == 2
    expected = stats.binomtest(2, 10, 0.5).pvalue
    assert comparison.test.p_value == pytest.approx(float(expected))
    assert comparison.effect_size == pytest.approx(4.0)


def test_comparisons_need_equal_non_empty_arms() -> None:
    """Arms of different lengths, or no pairs, cannot be compared."""
    with pytest.raises(ValueError, match="differ in length"):
        compare_scores([1.0, 2.0], [1.0], seed=1)
    with pytest.raises(ValueError, match="at least one pair"):
        compare_scores([], [], seed=1)


def test_holm_adjusts_in_the_given_order() -> None:
    """The smallest p is multiplied by m, the next by m - 1, kept monotone, capped at 1."""
    assert holm_adjusted([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm_adjusted([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjusted([]) == []


@given(st.lists(st.floats(min_value=0, max_value=1), max_size=8))
def test_holm_never_lowers_a_p_value(p_values: list[float]) -> None:
    """Adjusted p-values are at least the raw ones and never above 1."""
    for raw, adjusted in zip(p_values, holm_adjusted(p_values), strict=True):
        assert raw <= adjusted <= 1.0
