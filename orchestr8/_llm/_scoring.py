"""The adherence score: how well one reply meets a template's declared expectations, 0-100 each.

An `expect` object declares up to three dimensions, compiled once by `compile_expect`:

- `structure`: `json_schema` (the reply is JSON valid against it) and/or `required_tags` (XML
  element names the reply opens and closes);
- `constraints`: deterministic checkers by name (`max_words`, `min_words`, `max_chars`,
  `must_include`, `must_not_include`, `json_keys`, `regex`; see `_checkers`);
- `completeness`: required `sections`, each judged present by its heading, label, tag or JSON
  key, or, with `judge: {"model": "provider:model", "k": 3}`, by a model asked k times for a
  verdict per section.

A dimension's score is 100 times the share of its checks that passed (a judged section counts as
the share of samples that found it); an undeclared dimension is `None`, not 0, and `overall` is
the mean of the declared ones. With a judge, each of the k samples gives a completeness score;
the dimension is their mean and their variance is reported beside it, so a noisy judge shows.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from .._errors import TemplateError
from .._json import JSON
from ._checkers import (
    CheckResult,
    Constraint,
    JsonSchemaCheck,
    compile_constraint,
    compile_tags,
    parse_reply_json,
    required_tag_checks,
    section_present,
)

__all__ = [
    "Completeness",
    "Expectations",
    "Judge",
    "JudgeSpec",
    "JudgeSummary",
    "Score",
    "Structure",
    "compile_expect",
    "score_reply",
]

DEFAULT_JUDGE_SAMPLES = 3
MAX_JUDGE_SAMPLES = 20
_DIMENSIONS = ("structure", "constraints", "completeness")


class Judge(Protocol):
    """Gives one sample of per-section verdicts on a reply: is each section there and complete."""

    async def verdicts(self, sections: Sequence[str], reply_text: str) -> Mapping[str, bool]:
        """One verdict per section name: True when the reply covers it."""
        ...


@attrs.frozen
class JudgeSpec:
    """The `judge` of `completeness`: which model judges, and how many samples it gives."""

    model: str
    """A `provider:model` name."""
    samples: int = DEFAULT_JUDGE_SAMPLES


@attrs.frozen
class Structure:
    """The compiled `structure` expectation: a JSON Schema check and/or required XML tags."""

    json_schema: JsonSchemaCheck | None = attrs.field(default=None, eq=False)
    required_tags: tuple[str, ...] = ()

    def checks(self, text: str) -> list[CheckResult]:
        """The structure checks of one reply."""
        results = [] if self.json_schema is None else [self.json_schema.run(text)]
        return results + required_tag_checks(self.required_tags, text)


@attrs.frozen
class Completeness:
    """The compiled `completeness` expectation: required sections and an optional judge."""

    sections: tuple[str, ...]
    judge: JudgeSpec | None = None


@attrs.frozen
class Expectations:
    """A compiled `expect` object: what a reply must meet, per dimension (None: not declared)."""

    structure: Structure | None = None
    constraints: tuple[Constraint, ...] = ()
    completeness: Completeness | None = None

    @property
    def judge(self) -> JudgeSpec | None:
        """The completeness judge, when one is declared."""
        return None if self.completeness is None else self.completeness.judge


@attrs.frozen
class JudgeSummary:
    """What the judge said over its samples: per-sample scores, their mean and variance."""

    samples: tuple[float, ...]
    """Each sample's completeness score, 0-100."""
    sections: Mapping[str, float]
    """Per section, the share of samples that found it, 0-1."""

    @property
    def mean(self) -> float:
        """The mean of the samples' scores: the completeness score."""
        return statistics.fmean(self.samples)

    @property
    def variance(self) -> float:
        """The samples' variance (n - 1 in the denominator; 0 for a single sample)."""
        return statistics.variance(self.samples) if len(self.samples) > 1 else 0.0

    def to_json(self) -> dict[str, JSON]:
        """The `judge` member of a `step.scored` event."""
        return {
            "samples": len(self.samples),
            "scores": list(self.samples),
            "mean": self.mean,
            "variance": self.variance,
            "sections": dict(self.sections),
        }


@attrs.frozen
class Score:
    """The adherence score of one reply: each declared dimension 0-100, and every check."""

    structure: float | None
    constraints: float | None
    completeness: float | None
    details: tuple[CheckResult, ...]
    judge: JudgeSummary | None = None

    @property
    def overall(self) -> float | None:
        """The mean of the declared dimensions, or None when none is declared."""
        dimensions = (self.structure, self.constraints, self.completeness)
        declared = [value for value in dimensions if value is not None]
        return statistics.fmean(declared) if declared else None

    def to_json(self) -> dict[str, JSON]:
        """The score as the payload of a `step.scored` event (and the agent's `score` output)."""
        data: dict[str, JSON] = {
            "structure": self.structure,
            "constraints": self.constraints,
            "completeness": self.completeness,
            "overall": self.overall,
            "details": [check.to_json() for check in self.details],
        }
        if self.judge is not None:
            data["judge"] = self.judge.to_json()
        return data


def _share(results: Sequence[CheckResult]) -> float:
    return 100.0 * sum(result.passed for result in results) / len(results)


def _fail(where: str, problem: str) -> TemplateError:
    return TemplateError(f"{where}: {problem}")


def _object(value: Any, where: str, keys: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be an object, got {value!r}")
    unknown = sorted(set(value) - keys)
    if unknown:
        known = ", ".join(sorted(keys))
        raise _fail(where, f"unknown key {unknown[0]!r} (known: {known})")
    return value


def _structure(value: Any, where: str) -> Structure:
    spec = _object(value, where, frozenset({"json_schema", "required_tags"}))
    if not spec:
        raise _fail(where, "declare json_schema, required_tags or both")
    schema = None
    try:
        if "json_schema" in spec:
            schema = JsonSchemaCheck(spec["json_schema"])
    except ValueError as error:
        raise _fail(f"{where}.json_schema", str(error)) from None
    try:
        tags = compile_tags(spec["required_tags"]) if "required_tags" in spec else ()
    except ValueError as error:
        raise _fail(f"{where}.required_tags", str(error)) from None
    return Structure(schema, tags)


def _constraints(value: Any, where: str) -> tuple[Constraint, ...]:
    if not isinstance(value, Mapping) or not value:
        raise _fail(where, f"must be a non-empty object of checkers, got {value!r}")
    constraints = []
    for name, argument in value.items():
        try:
            constraints.append(compile_constraint(name, argument))
        except ValueError as error:
            place = where if str(error).startswith("unknown checker") else f"{where}.{name}"
            raise _fail(place, str(error)) from None
    return tuple(constraints)


def _judge(value: Any, where: str) -> JudgeSpec:
    spec = _object(value, where, frozenset({"model", "k"}))
    model = spec.get("model")
    if not isinstance(model, str) or ":" not in model.strip(":"):
        raise _fail(
            f"{where}.model",
            f"must name a provider and a model, e.g. 'anthropic:claude-haiku-4-5', got {model!r}",
        )
    samples = spec.get("k", DEFAULT_JUDGE_SAMPLES)
    if isinstance(samples, bool) or not isinstance(samples, int):
        samples = 0
    if not 1 <= samples <= MAX_JUDGE_SAMPLES:
        raise _fail(
            f"{where}.k",
            f"must be a whole number from 1 to {MAX_JUDGE_SAMPLES}, got {spec.get('k')!r}",
        )
    return JudgeSpec(model, samples)


def _completeness(value: Any, where: str) -> Completeness:
    spec = _object(value, where, frozenset({"sections", "judge"}))
    sections = spec.get("sections")
    if (
        not isinstance(sections, list)
        or not sections
        or not all(isinstance(item, str) and item.strip() for item in sections)
    ):
        raise _fail(f"{where}.sections", f"must be a non-empty list of names, got {sections!r}")
    if len(set(sections)) != len(sections):
        raise _fail(f"{where}.sections", "names a section twice")
    judge = _judge(spec["judge"], f"{where}.judge") if "judge" in spec else None
    return Completeness(tuple(sections), judge)


def compile_expect(value: Any, where: str = "expect") -> Expectations:
    """Compile an `expect` object; `where` is its location, prefixed to every problem.

    Raises:
        TemplateError: an unknown key or checker (the message lists the known ones), or a value
            that does not fit; the message starts with the JSON path of the problem.
    """
    spec = _object(value, where, frozenset(_DIMENSIONS))
    if not spec:
        raise _fail(where, "declare at least one of structure, constraints, completeness")
    return Expectations(
        structure=_structure(spec["structure"], f"{where}.structure")
        if "structure" in spec
        else None,
        constraints=_constraints(spec["constraints"], f"{where}.constraints")
        if "constraints" in spec
        else (),
        completeness=_completeness(spec["completeness"], f"{where}.completeness")
        if "completeness" in spec
        else None,
    )


def _present(sections: Sequence[str], text: str) -> list[CheckResult]:
    parsed, value, _ = parse_reply_json(text)
    results = []
    for section in sections:
        found, how = section_present(section, text, value if parsed else None)
        detail = f"found as a {how}" if found else "missing"
        results.append(CheckResult("completeness", f"section: {section}", found, detail))
    return results


async def _judged(
    completeness: Completeness, samples: int, text: str, judge: Judge
) -> tuple[list[CheckResult], JudgeSummary]:
    sections = completeness.sections
    found = dict.fromkeys(sections, 0)
    scores = []
    for _ in range(samples):
        verdicts = await judge.verdicts(sections, text)
        present = [section for section in sections if verdicts.get(section) is True]
        for section in present:
            found[section] += 1
        scores.append(100.0 * len(present) / len(sections))
    shares = {section: found[section] / samples for section in sections}
    results = [
        CheckResult(
            "completeness",
            f"section: {section}",
            shares[section] >= 0.5,
            f"judged present in {found[section]} of {samples} samples",
        )
        for section in sections
    ]
    return results, JudgeSummary(tuple(scores), shares)


async def score_reply(
    expect: Expectations | Mapping[str, Any], text: str, *, judge: Judge | None = None
) -> Score:
    """Score one reply against `expect` (compiled, or an `expect` object compiled here).

    Sections are judged by `judge` when `expect` declares a completeness judge and one is given
    (its `k` samples are asked one after the other), else by their presence in the text. Only
    the judge awaits; without one the score is computed without a checkpoint.

    Raises:
        TemplateError: `expect` is an object that does not compile.
        Exception: whatever the judge raises (a provider error, a malformed verdict).
    """
    expectations = expect if isinstance(expect, Expectations) else compile_expect(expect)
    details: list[CheckResult] = []
    structure = constraints = completeness = None
    if expectations.structure is not None:
        checks = expectations.structure.checks(text)
        structure = _share(checks)
        details += checks
    if expectations.constraints:
        checks = [check for item in expectations.constraints for check in item.run(text)]
        constraints = _share(checks)
        details += checks
    summary = None
    if expectations.completeness is not None:
        spec = expectations.completeness
        if spec.judge is not None and judge is not None:
            checks, summary = await _judged(spec, spec.judge.samples, text, judge)
            completeness = summary.mean
        else:
            checks = _present(spec.sections, text)
            completeness = _share(checks)
        details += checks
    return Score(structure, constraints, completeness, tuple(details), summary)
