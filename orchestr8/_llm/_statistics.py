"""The statistics of `orchestr8 eval`: paired comparisons of two arms, in pure Python.

Every input is given to both arms, so each measure is a pair `(a, b)` and the tests work on the
differences `b - a`. For a 0-100 score: the Wilcoxon signed-rank test (exact null distribution
for up to `EXACT_WILCOXON_LIMIT` non-zero differences without ties or zeros, otherwise the normal
approximation with Pratt's treatment of zeros and the tie correction of the variance, no
continuity correction) and the paired Cohen's d_z. For pass/fail: the exact McNemar test (a
two-sided binomial test on the discordant pairs) and the odds ratio of the discordant pairs. For
both: a seeded paired-bootstrap 95% interval of the mean difference (percentile method) and the
minimum detectable effect at power 0.8 and alpha 0.05. Verdicts across dimensions are made on
Holm-adjusted p-values, so checking several dimensions does not multiply false alarms.

It needs no NumPy or SciPy: the exact tests use integer arithmetic, the normal distribution is
the standard library's `statistics.NormalDist`; the tests check every p-value against SciPy.
The formulas, their assumptions and references are in `docs/eval.md`.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from typing import Final, Literal

import attrs

__all__ = [
    "ALPHA",
    "BOOTSTRAP_RESAMPLES",
    "EXACT_WILCOXON_LIMIT",
    "POWER",
    "Interval",
    "PairedComparison",
    "TestResult",
    "bootstrap_mean_interval",
    "cohens_dz",
    "compare_pass_fail",
    "compare_scores",
    "discordant_odds_ratio",
    "holm_adjusted",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "wilcoxon_signed_rank",
]

ALPHA: Final = 0.05
"""The significance level of every test (two-sided)."""

POWER: Final = 0.8
"""The power at which the minimum detectable effect is computed."""

BOOTSTRAP_RESAMPLES: Final = 10_000
"""How many paired-bootstrap resamples an interval is drawn from."""

EXACT_WILCOXON_LIMIT: Final = 50
"""Up to this many non-zero differences (without ties) Wilcoxon's p is exact, as in SciPy."""

_NORMAL: Final = statistics.NormalDist()

TestName = Literal["wilcoxon-exact", "wilcoxon-normal", "mcnemar-exact", "none"]


@attrs.frozen
class Interval:
    """A confidence interval `[low, high]` of a mean difference."""

    low: float
    high: float


@attrs.frozen
class TestResult:
    """What a significance test found: its name, its statistic and the two-sided p-value."""

    test: TestName
    statistic: float
    p_value: float


@attrs.frozen
class PairedComparison:
    """Everything the report says about one dimension, before the verdict across dimensions."""

    kind: Literal["score", "pass_fail"]
    count: int
    mean_a: float
    mean_b: float
    mean_difference: float
    interval: Interval
    test: TestResult
    effect_size: float | None
    """Cohen's d_z for scores; the discordant pairs' odds ratio (B-only / A-only) for pass/fail."""
    minimum_detectable_effect: float | None
    """In the dimension's units (points, or a pass-rate difference); None without any spread."""
    minimum_detectable_dz: float
    """The same in standard deviations of the differences: depends on the count alone."""


def bootstrap_mean_interval(
    differences: Sequence[float],
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 1 - ALPHA,
) -> Interval:
    """The percentile paired-bootstrap interval of the mean of `differences`, seeded.

    Each resample draws `len(differences)` pairs with replacement (the pairs, not the arms, so
    the pairing is kept); the interval is the `(1 - confidence) / 2` and `(1 + confidence) / 2`
    quantiles of the resampled means (linear interpolation). The same seed gives the same
    interval. An empty sequence is a `ValueError`.
    """
    values = list(differences)
    count = len(values)
    if count == 0:
        raise ValueError("a bootstrap interval needs at least one difference")
    if min(values) == max(values):
        return Interval(values[0], values[0])
    rng = random.Random(seed)
    choices = rng.choices
    means = sorted(sum(choices(values, k=count)) / count for _ in range(resamples))
    tail = (1 - confidence) / 2
    return Interval(_quantile(means, tail), _quantile(means, 1 - tail))


def _quantile(ordered: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile of sorted values, interpolating linearly between neighbours."""
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    weight = position - below
    return ordered[below] * (1 - weight) + ordered[above] * weight


def mcnemar_exact(a_only: int, b_only: int) -> TestResult:
    """The exact McNemar test: two-sided binomial test of the discordant pairs against 1/2.

    `a_only` counts the inputs only arm A passed, `b_only` those only B passed; the pairs both
    passed or both failed say nothing about the difference. p is twice the smaller tail of
    Binomial(a_only + b_only, 1/2), at most 1, computed exactly in integers; with no discordant
    pair p is 1 and the test is `none` (every difference is 0: there is nothing to test). The
    statistic is the smaller count.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError("discordant pair counts cannot be negative")
    total = a_only + b_only
    smaller = min(a_only, b_only)
    if total == 0:
        return TestResult("none", 0.0, 1.0)
    tail = sum(math.comb(total, index) for index in range(smaller + 1))
    p_value = min(1.0, 2 * tail / (1 << total))
    return TestResult("mcnemar-exact", float(smaller), p_value)


def discordant_odds_ratio(a_only: int, b_only: int) -> float:
    """The odds ratio of the discordant pairs, `b_only / a_only`: above 1 means B passes more.

    When either count is zero both get 0.5 added (Haldane's correction), so the ratio is finite.
    """
    if a_only == 0 or b_only == 0:
        return (b_only + 0.5) / (a_only + 0.5)
    return b_only / a_only


def wilcoxon_signed_rank(differences: Sequence[float]) -> TestResult:
    """The two-sided Wilcoxon signed-rank test of `differences` (B minus A) against zero.

    Exact when there are at most `EXACT_WILCOXON_LIMIT` differences, none zero and no two with
    the same magnitude: p is twice the smaller tail of the signed-rank distribution, counted in
    integers. Otherwise the normal approximation: ranks of |d| with zeros included and then
    dropped (Pratt), the mean and variance corrected for the zeros (Cureton) and the variance
    for ties, no continuity correction. The statistic is the smaller of the two rank sums. When
    every difference is zero p is 1 and the test is `none`.
    """
    values = list(differences)
    if not values or all(value == 0 for value in values):
        return TestResult("none", 0.0, 1.0)
    ranks, tie_sizes = _average_ranks([abs(value) for value in values])
    rank_plus = math.fsum(rank for rank, value in zip(ranks, values, strict=True) if value > 0)
    rank_minus = math.fsum(rank for rank, value in zip(ranks, values, strict=True) if value < 0)
    statistic = min(rank_plus, rank_minus)
    zeros = sum(1 for value in values if value == 0)
    count = len(values)
    if zeros == 0 and not tie_sizes and count <= EXACT_WILCOXON_LIMIT:
        return TestResult("wilcoxon-exact", statistic, _exact_signed_rank_p(count, int(statistic)))
    mean = (count * (count + 1) - zeros * (zeros + 1)) / 4
    variance_24 = float(
        count * (count + 1) * (2 * count + 1) - zeros * (zeros + 1) * (2 * zeros + 1)
    )
    variance_24 -= sum(size**3 - size for size in tie_sizes) / 2
    z = (rank_plus - mean) / math.sqrt(variance_24 / 24)
    p_value = min(1.0, 2 * _NORMAL.cdf(-abs(z)))
    return TestResult("wilcoxon-normal", statistic, p_value)


def _average_ranks(magnitudes: Sequence[float]) -> tuple[list[float], list[int]]:
    """Ranks 1..n of `magnitudes` (ties share their average rank) and the sizes of the ties.

    The sizes leave out the group of zeros (Pratt: zeros are ranked but their tie is not
    corrected for, as SciPy does).
    """
    order = sorted(range(len(magnitudes)), key=magnitudes.__getitem__)
    ranks = [0.0] * len(magnitudes)
    tie_sizes: list[int] = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and magnitudes[order[end + 1]] == magnitudes[order[start]]:
            end += 1
        average = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = average
        if end > start and magnitudes[order[start]] != 0:
            tie_sizes.append(end - start + 1)
        start = end + 1
    return ranks, tie_sizes


def _exact_signed_rank_p(count: int, statistic: int) -> float:
    """Two-sided exact p of the smaller rank sum `statistic` among `count` untied differences."""
    ways = [1] + [0] * (count * (count + 1) // 2)
    highest = 0
    for rank in range(1, count + 1):
        highest += rank
        for total in range(highest, rank - 1, -1):
            ways[total] += ways[total - rank]
    tail = sum(ways[: statistic + 1])
    return min(1.0, 2 * tail / (1 << count))


def cohens_dz(differences: Sequence[float]) -> float | None:
    """Paired Cohen's d_z: the mean difference over the standard deviation of the differences.

    None when the differences have no spread (all equal, zero included: there is nothing to
    scale by, and the report shows `-`) or there is only one.
    """
    values = list(differences)
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    spread = statistics.stdev(values)
    if spread == 0:
        return None
    return mean / spread


def _test_critical_sum(power: float, alpha: float) -> float:
    """`z(1 - alpha/2) + z(power)`: the standardised distance a two-sided test must see."""
    return _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)


def minimum_detectable_effect(
    differences: Sequence[float],
    *,
    efficiency: float = 1.0,
    power: float = POWER,
    alpha: float = ALPHA,
) -> tuple[float | None, float]:
    """The smallest true mean difference this many pairs detect with `power` at `alpha`.

    The normal approximation of a paired test: `(z(1 - alpha/2) + z(power)) * sd / sqrt(n *
    efficiency)`, with `sd` the observed standard deviation of the differences as the planning
    value, and `efficiency` the test's asymptotic relative efficiency against the t-test (3/pi for
    Wilcoxon). Returns it in the differences' units (None when they have no spread, or fewer than
    two) and in standard deviations (d_z), which depends on the count alone.
    """
    values = list(differences)
    effective = max(len(values), 1) * efficiency
    in_sd = _test_critical_sum(power, alpha) / math.sqrt(effective)
    if len(values) < 2:
        return None, in_sd
    spread = statistics.stdev(values)
    return (in_sd * spread if spread > 0 else None), in_sd


def compare_scores(a: Sequence[float], b: Sequence[float], *, seed: int) -> PairedComparison:
    """Compare paired 0-100 scores: Wilcoxon signed-rank, d_z, bootstrap interval, MDE."""
    differences = _differences(a, b)
    detectable, detectable_dz = minimum_detectable_effect(differences, efficiency=3 / math.pi)
    return PairedComparison(
        kind="score",
        count=len(differences),
        mean_a=statistics.fmean(a),
        mean_b=statistics.fmean(b),
        mean_difference=statistics.fmean(differences),
        interval=bootstrap_mean_interval(differences, seed=seed),
        test=wilcoxon_signed_rank(differences),
        effect_size=cohens_dz(differences),
        minimum_detectable_effect=detectable,
        minimum_detectable_dz=detectable_dz,
    )


def compare_pass_fail(a: Sequence[bool], b: Sequence[bool], *, seed: int) -> PairedComparison:
    """Compare paired pass/fail outcomes: exact McNemar, discordant odds ratio, interval, MDE.

    Means are pass rates (0-1) and the mean difference is B's pass rate minus A's.
    """
    differences = _differences([float(x) for x in a], [float(x) for x in b])
    a_only = sum(1 for difference in differences if difference < 0)
    b_only = sum(1 for difference in differences if difference > 0)
    detectable, detectable_dz = minimum_detectable_effect(differences)
    return PairedComparison(
        kind="pass_fail",
        count=len(differences),
        mean_a=statistics.fmean(float(x) for x in a),
        mean_b=statistics.fmean(float(x) for x in b),
        mean_difference=statistics.fmean(differences),
        interval=bootstrap_mean_interval(differences, seed=seed),
        test=mcnemar_exact(a_only, b_only),
        effect_size=discordant_odds_ratio(a_only, b_only),
        minimum_detectable_effect=detectable,
        minimum_detectable_dz=detectable_dz,
    )


def _differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """`b - a` pair by pair; arms of different lengths or no pairs are a `ValueError`."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    if not a:
        raise ValueError("a paired comparison needs at least one pair")
    return [y - x for x, y in zip(a, b, strict=True)]


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the given order (each in [0, 1]).

    Rejecting where the adjusted p is below alpha keeps the chance of any false alarm across
    all the tests at alpha, whatever their dependence.
    """
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
