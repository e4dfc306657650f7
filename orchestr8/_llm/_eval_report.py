"""The report of `orchestr8 eval`: per dimension, is B better, worse or not distinguishable from A.

The runner hands over one `ArmOutput` per input and arm, in dataset order. Each scored dimension
(`structure`, `constraints`, `completeness`, `overall`, then `pass` where pass/fail is defined) is
compared over the inputs where both arms have it (`_statistics`): means, the mean difference B - A
with its paired-bootstrap 95% interval, the p-value and its test, the effect size, the minimum
detectable effect. Verdicts use Holm-adjusted p-values across the dimensions, so looking at five
of them does not raise the chance of a false alarm above alpha; the direction is the sign of the
mean difference. Per arm: cost (unknown, never under-counted, when any output's price is unknown),
what this run spent (nothing for outputs from the cache), tokens, and latency p50/p95 (nearest
rank) as measured when each output was made; token counts some of which were estimated (a
provider that sent no usage) are marked `~`. The judge's calls, when the completeness dimension
has one, are added up in a row of their own (`judge`): they cost money too. `to_json` is the
`--json` document; `dimension_rows` and `arm_rows` are the cells of the tables a person reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from ._statistics import (
    ALPHA,
    POWER,
    PairedComparison,
    compare_pass_fail,
    compare_scores,
    holm_adjusted,
)

__all__ = [
    "ARM_HEADERS",
    "DIMENSIONS",
    "DIMENSION_HEADERS",
    "ArmOutput",
    "ArmSummary",
    "DimensionResult",
    "EvalReport",
    "JudgeSummary",
    "Verdict",
    "arm_rows",
    "build_report",
    "dimension_rows",
    "verdict_word",
]

DIMENSIONS: Final = ("structure", "constraints", "completeness", "overall")
"""The 0-100 score dimensions, in report order; `pass` (pass/fail) follows them."""

Verdict = Literal["b_better", "b_worse", "no_significant_difference"]

_VERDICT_WORDS: Final[Mapping[Verdict, str]] = {
    "b_better": "B better",
    "b_worse": "B worse",
    "no_significant_difference": "no significant difference",
}

DIMENSION_HEADERS: Final = (
    "dimension",
    "mean A",
    "mean B",
    "B - A",
    "95% CI",
    "p",
    "p (Holm)",
    "test",
    "effect",
    "detectable",
    "verdict",
)
"""The columns of the per-dimension table."""

ARM_HEADERS: Final = (
    "arm",
    "model",
    "template",
    "cost USD",
    "spent now",
    "tokens in/out",
    "latency p50",
    "p95",
    "cached",
)
"""The columns of the per-arm table."""


@attrs.frozen
class ArmOutput:
    """One arm's output for one input: its scores and what it cost to make."""

    scores: Mapping[str, float]
    """0-100 per dimension the expectations define (a subset of `DIMENSIONS`)."""
    passed: bool | None
    """Whether every declared expectation was met; None when nothing defines pass/fail."""
    latency_s: float
    cost_usd: float | None
    """What the call cost when it was made; None when the model has no known price."""
    input_tokens: int = 0
    output_tokens: int = 0
    from_cache: bool = False
    estimated: bool = False
    """Whether the token counts are estimates (the provider sent no usage)."""


@attrs.frozen
class JudgeSummary:
    """What the completeness judge's samples of both arms cost: calls, cache, tokens, USD."""

    model: str
    samples: int
    from_cache: int
    cost_usd: float | None
    """Every sample's cost, None when the judge model's price is unknown."""
    spent_usd: float | None
    """The cost of the samples made by this run (not read from the cache)."""
    input_tokens: int
    output_tokens: int
    estimated: int = 0
    """How many samples' token counts are estimates."""


@attrs.frozen
class DimensionResult:
    """The comparison of one dimension with its Holm-adjusted p-value and verdict."""

    name: str
    comparison: PairedComparison
    p_adjusted: float
    verdict: Verdict


@attrs.frozen
class ArmSummary:
    """Cost, tokens, latency and cache use of one arm over every input."""

    name: str
    model: str
    template: str
    outputs: int
    from_cache: int
    cost_usd: float | None
    spent_usd: float | None
    input_tokens: int
    output_tokens: int
    latency_p50_s: float
    latency_p95_s: float
    estimated: int = 0
    """How many outputs' token counts are estimates (the provider sent no usage)."""


@attrs.frozen
class EvalReport:
    """Everything `orchestr8 eval` found: the dimensions compared and the two arms' costs."""

    inputs: int
    seed: int
    dimensions: tuple[DimensionResult, ...]
    a: ArmSummary
    b: ArmSummary
    judge: JudgeSummary | None = None

    @property
    def b_significantly_worse(self) -> bool:
        """Whether B is significantly worse than A on any dimension (exit code 2)."""
        return any(result.verdict == "b_worse" for result in self.dimensions)

    @property
    def from_cache(self) -> int:
        """How many of the outputs of both arms came from the cache."""
        return self.a.from_cache + self.b.from_cache

    def to_json(self) -> dict[str, Any]:
        """The `--json` document: every number of the tables, unrounded."""
        return {
            "inputs": self.inputs,
            "seed": self.seed,
            "alpha": ALPHA,
            "power": POWER,
            "dimensions": [_dimension_json(result) for result in self.dimensions],
            "arms": {arm.name: _arm_json(arm) for arm in (self.a, self.b)},
            "judge": None if self.judge is None else attrs.asdict(self.judge),
            "outputs_from_cache": self.from_cache,
            "b_significantly_worse": self.b_significantly_worse,
        }


def build_report(
    outputs_a: Sequence[ArmOutput],
    outputs_b: Sequence[ArmOutput],
    *,
    seed: int,
    arms: Mapping[str, tuple[str, str]],
    judge: JudgeSummary | None = None,
) -> EvalReport:
    """Compare the arms' paired outputs, given in the same input order.

    `arms` maps an arm's name to its (model, template) for the per-arm table; `judge` sums the
    judge's samples when there is one. A dimension is
    compared over the inputs where both arms scored it, and left out when there are fewer than
    two such inputs.
    """
    if len(outputs_a) != len(outputs_b) or not outputs_a:
        raise ValueError("the arms need the same, non-zero number of outputs")
    comparisons: list[tuple[str, PairedComparison]] = []
    for name in DIMENSIONS:
        pairs = [
            (a.scores[name], b.scores[name])
            for a, b in zip(outputs_a, outputs_b, strict=True)
            if name in a.scores and name in b.scores
        ]
        if len(pairs) >= 2:
            scores_a, scores_b = zip(*pairs, strict=True)
            comparisons.append((name, compare_scores(scores_a, scores_b, seed=seed)))
    passes = [
        (a.passed, b.passed)
        for a, b in zip(outputs_a, outputs_b, strict=True)
        if a.passed is not None and b.passed is not None
    ]
    if len(passes) >= 2:
        passed_a, passed_b = zip(*passes, strict=True)
        comparisons.append(("pass", compare_pass_fail(passed_a, passed_b, seed=seed)))
    adjusted = holm_adjusted([comparison.test.p_value for _, comparison in comparisons])
    dimensions = tuple(
        DimensionResult(name, comparison, p_adjusted, _verdict(comparison, p_adjusted))
        for (name, comparison), p_adjusted in zip(comparisons, adjusted, strict=True)
    )
    return EvalReport(
        inputs=len(outputs_a),
        seed=seed,
        dimensions=dimensions,
        a=_summary("a", outputs_a, *arms["a"]),
        b=_summary("b", outputs_b, *arms["b"]),
        judge=judge,
    )


def _verdict(comparison: PairedComparison, p_adjusted: float) -> Verdict:
    """Significant after Holm's adjustment, in the direction of the mean difference."""
    if p_adjusted >= ALPHA or comparison.mean_difference == 0:
        return "no_significant_difference"
    return "b_better" if comparison.mean_difference > 0 else "b_worse"


def _summary(name: str, outputs: Sequence[ArmOutput], model: str, template: str) -> ArmSummary:
    """Add up one arm's outputs."""
    latencies = sorted(output.latency_s for output in outputs)
    costs = [output.cost_usd for output in outputs]
    spent = [output.cost_usd for output in outputs if not output.from_cache]
    return ArmSummary(
        name=name,
        model=model,
        template=template,
        outputs=len(outputs),
        from_cache=sum(1 for output in outputs if output.from_cache),
        cost_usd=_total(costs),
        spent_usd=_total(spent),
        input_tokens=sum(output.input_tokens for output in outputs),
        output_tokens=sum(output.output_tokens for output in outputs),
        latency_p50_s=_nearest_rank(latencies, 0.50),
        latency_p95_s=_nearest_rank(latencies, 0.95),
        estimated=sum(1 for output in outputs if output.estimated),
    )


def _total(costs: Sequence[float | None]) -> float | None:
    """The sum of the costs, or None when any is unknown (a partial sum would under-count)."""
    if any(cost is None for cost in costs):
        return None
    return math.fsum(cost for cost in costs if cost is not None)


def _nearest_rank(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values: an observed latency, never an average."""
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def _dimension_json(result: DimensionResult) -> dict[str, Any]:
    """One dimension of the `--json` document."""
    comparison = result.comparison
    effect = "cohens_dz" if comparison.kind == "score" else "discordant_odds_ratio"
    return {
        "name": result.name,
        "kind": comparison.kind,
        "count": comparison.count,
        "mean_a": comparison.mean_a,
        "mean_b": comparison.mean_b,
        "mean_difference": comparison.mean_difference,
        "ci95": [comparison.interval.low, comparison.interval.high],
        "test": comparison.test.test,
        "statistic": comparison.test.statistic,
        "p_value": comparison.test.p_value,
        "p_adjusted": result.p_adjusted,
        "effect_size": {"kind": effect, "value": comparison.effect_size},
        "minimum_detectable_effect": comparison.minimum_detectable_effect,
        "minimum_detectable_dz": comparison.minimum_detectable_dz,
        "verdict": result.verdict,
    }


def _arm_json(arm: ArmSummary) -> dict[str, Any]:
    """One arm of the `--json` document."""
    return {
        "model": arm.model,
        "template": arm.template,
        "outputs": arm.outputs,
        "from_cache": arm.from_cache,
        "cost_usd": arm.cost_usd,
        "spent_usd": arm.spent_usd,
        "input_tokens": arm.input_tokens,
        "output_tokens": arm.output_tokens,
        "tokens_estimated": arm.estimated,
        "latency_s": {"p50": arm.latency_p50_s, "p95": arm.latency_p95_s},
    }


def dimension_rows(report: EvalReport) -> list[tuple[str, ...]]:
    """The per-dimension table's rows, formatted for people (see `DIMENSION_HEADERS`)."""
    rows: list[tuple[str, ...]] = []
    for result in report.dimensions:
        comparison = result.comparison
        number = _percent if comparison.kind == "pass_fail" else _points
        signed = _signed_percent if comparison.kind == "pass_fail" else _signed_points
        if comparison.kind == "score":
            effect = "-" if comparison.effect_size is None else f"d_z {comparison.effect_size:+.2f}"
        else:
            effect = "-" if comparison.effect_size is None else _odds(comparison.effect_size)
        detectable = comparison.minimum_detectable_effect
        low, high = comparison.interval.low, comparison.interval.high
        rows.append(
            (
                result.name,
                number(comparison.mean_a),
                number(comparison.mean_b),
                signed(comparison.mean_difference),
                f"[{signed(low)}, {signed(high)}]",
                _p(comparison.test.p_value),
                _p(result.p_adjusted),
                comparison.test.test,
                effect,
                "-" if detectable is None else _detectable(comparison.kind, detectable),
                _VERDICT_WORDS[result.verdict],
            )
        )
    return rows


def arm_rows(report: EvalReport) -> list[tuple[str, ...]]:
    """The per-arm table's rows, then the judge's, formatted for people (see `ARM_HEADERS`).

    Token counts of which some are estimates start with `~`.
    """
    rows: list[tuple[str, ...]] = [
        (
            arm.name,
            arm.model,
            arm.template,
            _usd(arm.cost_usd),
            _usd(arm.spent_usd),
            _tokens(arm.input_tokens, arm.output_tokens, estimated=arm.estimated > 0),
            f"{arm.latency_p50_s:.2f}s",
            f"{arm.latency_p95_s:.2f}s",
            f"{arm.from_cache}/{arm.outputs}",
        )
        for arm in (report.a, report.b)
    ]
    judge = report.judge
    if judge is not None:
        rows.append(
            (
                "judge",
                judge.model,
                "-",
                _usd(judge.cost_usd),
                _usd(judge.spent_usd),
                _tokens(judge.input_tokens, judge.output_tokens, estimated=judge.estimated > 0),
                "-",
                "-",
                f"{judge.from_cache}/{judge.samples}",
            )
        )
    return rows


def _tokens(input_tokens: int, output_tokens: int, *, estimated: bool) -> str:
    return f"{'~' if estimated else ''}{input_tokens}/{output_tokens}"


def verdict_word(verdict: Verdict) -> str:
    """The words a person reads for a verdict."""
    return _VERDICT_WORDS[verdict]


def _points(value: float) -> str:
    return f"{value:.1f}"


def _signed_points(value: float) -> str:
    return f"{value:+.1f}"


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def _signed_percent(value: float) -> str:
    return f"{100 * value:+.0f}pp"


def _detectable(kind: str, value: float) -> str:
    return f"{100 * value:.0f}pp" if kind == "pass_fail" else f"{value:.1f}"


def _odds(value: float) -> str:
    """An odds ratio: two decimals, or two significant digits when that would show 0.00."""
    return f"OR {value:.2f}" if value >= 0.01 else f"OR {value:.2g}"


def _p(value: float) -> str:
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4f}"
