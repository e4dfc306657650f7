"""The arms of an eval made real: a template file, a model of the provider catalog, expectations.

`evaluate` is `orchestr8 eval` without its view: it prepares both arms of a checked `EvalSpec`
(`prepare_arms`), loads the dataset and hands both to the runner (`_eval_run`). Preparing an arm
loads its template (`load_template`; a relative path is taken from the working directory, the
spec's own paths being already relative to the spec's directory), resolves its `provider:model`
in the catalog, and compiles the expectations it is scored by: the spec's `expect` when it has
one (both arms scored by the same rules), else the template's own. The spec's `judge`, if any,
becomes the completeness judge of both. Every problem is an `EvalSpecError` at the spec's JSON
path, raised before the dataset is read or anything is called.

A `TemplateArm` renders an input with its template (examples, system and messages; the
template's `output_schema` asks for JSON), makes non-streaming requests of the spec's
`max_tokens` and `temperature`, prices a call by the provider's price override or else the
vendored table (`_prices`; None when neither knows the model), and scores a reply with
`score_reply`: every declared dimension, `overall`, and pass/fail (every check passed). A
judge's calls go through the eval's cache, each of the k samples of a reply under its own key; an
answer that is not a verdict is retried like a failed call and never cached, and every sample
(made now or read from the cache) is added up in the eval's `JudgeTally` for the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs

from .._errors import (
    EvalSpecError,
    Orchestr8Error,
    Problem,
    ProviderResponseError,
    TemplateError,
)
from .._json import JSON
from ._chat import ChatMessage, ChatReply, ChatRequest, Usage
from ._eval_cache import CachedReply, EvalCache
from ._eval_report import EvalReport, JudgeSummary
from ._eval_run import ArmScore, EvalProgress, call_cached, request_key, run_eval
from ._eval_spec import EvalArm, EvalSpec, load_dataset
from ._judge import ModelJudge, verdict_of
from ._prices import cost_of, price_for
from ._provider import Provider
from ._scoring import Expectations, JudgeSpec, compile_expect, score_reply
from ._templates import PromptTemplateFile, load_template

__all__ = [
    "JudgeTally",
    "ModelCatalog",
    "ResolvedModel",
    "TemplateArm",
    "evaluate",
    "prepare_arms",
]


_PREVIEW = 200
"""How much of a judge's answer that is not a verdict the error shows."""


class ResolvedModel(Protocol):
    """A model name resolved by the catalog: the provider, the bare model id, its price."""

    @property
    def provider(self) -> Provider:
        """Where calls to the model go."""
        ...

    @property
    def model(self) -> str:
        """The model id the provider is sent."""
        ...

    @property
    def price(self) -> Any:
        """The provider spec's price override for the model, or None."""
        ...


class ModelCatalog(Protocol):
    """Resolves `provider:model` names: the provider catalog (`ProviderCatalog`) fits it."""

    def resolve(self, model_name: str, *, bare_allowed: bool = True) -> ResolvedModel:
        """The provider, bare model and price override of `model_name`, or raise why not."""
        ...


@attrs.define
class JudgeTally:
    """The judges' samples of an eval added up (calls, cache, tokens, cost) for its report."""

    models: list[str] = attrs.field(factory=list)
    providers: list[Provider] = attrs.field(factory=list)
    samples: int = 0
    from_cache: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: int = 0
    costs: list[float | None] = attrs.field(factory=list)
    spent: list[float | None] = attrs.field(factory=list)

    def add_judge(self, model: str, provider: Provider) -> None:
        """An arm is judged by `model` (`provider:model`) through `provider`."""
        if model not in self.models:
            self.models.append(model)
        if all(provider is not known for known in self.providers):
            self.providers.append(provider)

    def add(self, reply: CachedReply, *, from_cache: bool) -> None:
        """One sample, made now or read from the cache."""
        self.samples += 1
        self.from_cache += from_cache
        self.input_tokens += reply.input_tokens
        self.output_tokens += reply.output_tokens
        self.estimated += reply.estimated
        self.costs.append(reply.cost_usd)
        if not from_cache:
            self.spent.append(reply.cost_usd)

    def summary(self) -> JudgeSummary | None:
        """The samples added up; None when no arm has a judge."""
        if not self.models:
            return None
        return JudgeSummary(
            model=", ".join(self.models),
            samples=self.samples,
            from_cache=self.from_cache,
            cost_usd=_sum(self.costs),
            spent_usd=_sum(self.spent),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            estimated=self.estimated,
        )


def _sum(costs: list[float | None]) -> float | None:
    """The total, or None when any cost is unknown (a partial sum would under-count)."""
    if any(cost is None for cost in costs):
        return None
    return math.fsum(cost for cost in costs if cost is not None)


@attrs.frozen
class TemplateArm:
    """One arm of an eval: a prompt template on a model, scored against expectations."""

    name: str
    model: str
    template: str
    file: PromptTemplateFile
    resolved: ResolvedModel
    expect: Expectations
    max_tokens: int
    temperature: float | None
    cache: EvalCache
    judge: ResolvedModel | None = None
    tally: JudgeTally = attrs.field(factory=JudgeTally)

    @property
    def provider(self) -> Provider:
        """Where the arm's calls go."""
        return self.resolved.provider

    def request(self, variables: Mapping[str, JSON]) -> ChatRequest:
        """The arm's request for one input.

        Raises:
            TemplateInputError: a variable has no value, or one of the wrong type.
        """
        rendered = self.file.render(variables)
        return ChatRequest(
            model=self.resolved.model,
            messages=rendered.messages,
            system=rendered.system,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            json_schema=rendered.json_schema,
            stream=False,
        )

    def cost(self, usage: Usage) -> float | None:
        """What a call cost in USD, or None when the model has no known price."""
        return _cost(self.resolved, usage)

    async def score(self, text: str) -> ArmScore:
        """Score one reply: its declared dimensions, overall, and whether every check passed."""
        judge = None
        if self.judge is not None:
            calls = _CachedJudgeCalls(self.judge, self.cache, self.tally)
            judge = ModelJudge(calls, self.judge.model)
        score = await score_reply(self.expect, text, judge=judge)
        dimensions = {
            "structure": score.structure,
            "constraints": score.constraints,
            "completeness": score.completeness,
            "overall": score.overall,
        }
        return ArmScore(
            {name: value for name, value in dimensions.items() if value is not None},
            all(check.passed for check in score.details) if score.details else None,
        )


def _cost(resolved: ResolvedModel, usage: Usage) -> float | None:
    """Price `usage`: the provider's override for the model, else the vendored table."""
    overrides = None if resolved.price is None else {"*": resolved.price}
    entry = price_for(resolved.provider.kind, resolved.model, overrides)
    return None if entry is None else cost_of(usage, entry)


@attrs.define
class _JudgeArm:
    """The judge model seen as an arm by `call_cached`: its provider and its price."""

    resolved: ResolvedModel

    @property
    def provider(self) -> Provider:
        return self.resolved.provider

    def cost(self, usage: Usage) -> float | None:
        return _cost(self.resolved, usage)


@attrs.define
class _CachedJudgeCalls:
    """A judge's `complete`: sample n of the same request is cached under its own key."""

    resolved: ResolvedModel
    cache: EvalCache
    tally: JudgeTally
    samples: dict[str, int] = attrs.field(factory=dict)

    async def __call__(self, request: ChatRequest) -> ChatReply:
        provider = self.resolved.provider
        first = request_key(provider, request)
        sample = self.samples[first] = self.samples.get(first, 0) + 1
        key = request_key(provider, request, sample)
        cached = self.cache.load(key)
        sections = [str(name) for name in (request.json_schema or {}).get("required") or ()]

        def check(text: str) -> None:
            if verdict_of(text, sections) is None:
                shown = text if len(text) <= _PREVIEW else text[:_PREVIEW] + "..."
                raise ProviderResponseError(
                    f"provider {provider.name!r}: the judge model {request.model!r} answered "
                    f"{shown!r}, not a true/false verdict for each section ({', '.join(sections)})"
                )

        reply = cached or await call_cached(
            _JudgeArm(self.resolved), request, key, self.cache, check=check
        )
        self.tally.add(reply, from_cache=cached is not None)
        return ChatReply(
            text=reply.text,
            model=request.model,
            usage=Usage(input_tokens=reply.input_tokens, output_tokens=reply.output_tokens),
            provider=provider.name,
            assistant_message=ChatMessage(role="assistant", content=reply.text),
        )


def prepare_arms(
    spec: EvalSpec, catalog: ModelCatalog, cache: EvalCache
) -> tuple[TemplateArm, TemplateArm]:
    """Both arms of `spec`, ready to run.

    Raises:
        EvalSpecError: a template is unusable, a model or the judge's cannot be resolved, the
            expectations do not compile, or there is nothing to score.
    """
    shared = None if spec.expect is None else _compile(spec, spec.expect)
    tally = JudgeTally()
    prepared: list[TemplateArm] = []
    problems: list[Problem] = []
    for arm in (spec.a, spec.b):
        try:
            prepared.append(_prepare(spec, arm, shared, catalog, cache, tally))
        except EvalSpecError as error:
            problems += [problem for problem in error.problems if problem not in problems]
    if problems:
        raise EvalSpecError(problems, spec.source)
    return prepared[0], prepared[1]


def _prepare(
    spec: EvalSpec,
    arm: EvalArm,
    shared: Expectations | None,
    catalog: ModelCatalog,
    cache: EvalCache,
    tally: JudgeTally,
) -> TemplateArm:
    """Load one arm's template, resolve its model and settle its expectations."""
    where = f"$.arms.{arm.name}"
    try:
        file = load_template(arm.template, directory=Path.cwd())
    except TemplateError as error:
        raise spec.problem(f"{where}.template", str(error)) from None
    resolved = _resolve(spec, catalog, arm.model, arm.model_path or f"{where}.model")
    expect = shared if shared is not None else file.expect
    if expect is None:
        raise spec.problem(
            "$.expect",
            f"nothing to score: the spec has no expect and template {arm.template} declares none",
        )
    if spec.judge is not None:
        if expect.completeness is None:
            raise spec.problem("$.judge", "the expectations declare no completeness sections")
        judged = JudgeSpec(str(spec.judge["model"]), int(spec.judge.get("k", 3)))
        expect = attrs.evolve(expect, completeness=attrs.evolve(expect.completeness, judge=judged))
    judge = None
    if expect.judge is not None:
        judge = _resolve(spec, catalog, expect.judge.model, "$.judge.model")
        tally.add_judge(expect.judge.model, judge.provider)
    return TemplateArm(
        name=arm.name,
        model=arm.model,
        template=str(arm.template),
        file=file,
        resolved=resolved,
        expect=expect,
        max_tokens=spec.max_tokens,
        temperature=spec.temperature,
        cache=cache,
        judge=judge,
        tally=tally,
    )


def _compile(spec: EvalSpec, expect: Mapping[str, Any]) -> Expectations:
    """The compiled `expect` of the spec, or an `EvalSpecError` with a problem per dimension.

    Each dimension is compiled on its own first, so a problem in `structure` does not hide one
    in `constraints`.
    """
    problems: list[Problem] = []
    for name, value in expect.items():
        try:
            compile_expect({name: value}, "$.expect")
        except TemplateError as error:
            path, _, problem = str(error).partition(": ")
            problems.append(Problem(path, problem))
    try:
        if not problems:
            return compile_expect(expect, "$.expect")
    except TemplateError as error:
        path, _, problem = str(error).partition(": ")
        problems.append(Problem(path, problem))
    raise EvalSpecError(problems, spec.source)


def _resolve(spec: EvalSpec, catalog: ModelCatalog, model: str, where: str) -> ResolvedModel:
    """Resolve `model`, or an `EvalSpecError` at `where` saying why it cannot be."""
    try:
        return catalog.resolve(model, bare_allowed=False)
    except Orchestr8Error as error:
        # An eval has no workflow: its providers come from --providers alone.
        message = str(error).replace(
            "declare it in the workflow's providers or in a provider config file (--providers)",
            "declare it in a provider config file (--providers, or $ORCHESTR8_PROVIDERS)",
        )
        raise spec.problem(where, message) from None


async def evaluate(
    spec: EvalSpec,
    *,
    catalog: ModelCatalog,
    cache: EvalCache,
    concurrency: int | None = None,
    allow_small: bool = False,
    progress: EvalProgress | None = None,
) -> EvalReport:
    """Run the eval `spec` describes: prepare its arms, read its dataset, call, score, report.

    Raises:
        EvalSpecError: the arms cannot be prepared.
        EvalDatasetError: the dataset is unusable, or a line does not render in a template.
        EvalCallsFailedError: calls failed for good (the others are cached).
        OSError: the cache cannot be written.
    """
    arms = prepare_arms(spec, catalog, cache)
    inputs = load_dataset(spec.dataset, allow_small=allow_small or spec.allow_small)
    return await run_eval(
        arms,
        inputs,
        dataset=str(spec.dataset),
        seed=spec.seed,
        cache=cache,
        concurrency=concurrency or spec.concurrency,
        progress=progress,
        judge=arms[0].tally,
    )
