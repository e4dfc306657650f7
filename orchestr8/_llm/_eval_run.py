"""The runner of `orchestr8 eval`: every input to both arms, in a seeded order, cached, scored.

An arm (`EvalArmRunner`, made from a template and a model by `_eval_arms`) renders an input into
a request for its provider, scores a reply and prices a call. The runner first renders every
(input, arm) request, so a line that does not render is an `EvalDatasetError` naming it before
anything is spent. Then each call is looked up in the cache (`_eval_cache`); a request that is
byte-identical to another one (the same cache key: both arms rendered the same prompt for the same
model) is made once and its reply shared, counted as from the cache. Before the first call the
cache is checked (`EvalCache.check`) and every provider that will be called, the judge's
included, is made ready (`Provider.hold`: a missing API key stops the eval before anything is
paid for, and one client serves all of a provider's calls). The rest are made in
the order `call_order` draws from the seed, A's and B's calls shuffled together, so drift in a
provider (load, a deployment) hits both arms alike, with at most `concurrency` calls at once. A
call that fails retryably is tried up to `CALL_ATTEMPTS` times, after the provider's
`retry_after` or a pause that doubles from `FIRST_PAUSE_SECONDS`; a call that still fails does not
stop the others, and once all have ended `EvalCallsFailedError` says how many failed and why (the
outputs that succeeded are cached, so running again only pays for the failures). Then every
reply is scored, at most `concurrency` at once; a judge's answer that is not a verdict is
retried like a failed call (`call_cached`'s `check`), and a reply that still cannot be scored
does not stop the others: `EvalCallsFailedError` names them once all are scored. The report
(`_eval_report`) is built from the scores, with the judge's calls (`JudgeCalls`) in a row of
their own.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Protocol

import attrs
import trio

from .._errors import EvalCallsFailedError, EvalDatasetError, Orchestr8Error, RetryableError
from .._json import JSON
from ._chat import ChatRequest, Usage
from ._eval_cache import CachedReply, EvalCache, cache_key
from ._eval_report import ArmOutput, EvalReport, JudgeSummary, build_report
from ._eval_spec import DatasetInput
from ._provider import Provider

__all__ = [
    "CALL_ATTEMPTS",
    "CALL_TIMEOUT_SECONDS",
    "FIRST_PAUSE_SECONDS",
    "ArmScore",
    "EvalArmRunner",
    "EvalProgress",
    "JudgeCalls",
    "PricedProvider",
    "call_cached",
    "call_order",
    "request_key",
    "run_eval",
]

CALL_ATTEMPTS: Final = 3
"""How many times one call is tried when it fails retryably (a rate limit, an overload)."""

CALL_TIMEOUT_SECONDS: Final = 300.0
"""The provider timeout of one call."""

FIRST_PAUSE_SECONDS: Final = 1.0
"""The pause before the second attempt when the provider gives no `retry_after`; it doubles."""


@attrs.frozen
class ArmScore:
    """One reply's scores: 0-100 per declared dimension, and whether every check passed."""

    scores: Mapping[str, float]
    passed: bool | None


class PricedProvider(Protocol):
    """A provider and how its calls are priced: what `call_cached` needs of an arm or a judge."""

    @property
    def provider(self) -> Provider:
        """Where the calls go."""
        ...

    def cost(self, usage: Usage) -> float | None:
        """What a call with `usage` cost in USD, or None when the model's price is unknown."""
        ...


class EvalArmRunner(PricedProvider, Protocol):
    """One arm as the runner drives it: its name, requests and scores, beside its provider."""

    @property
    def name(self) -> str:
        """`a` or `b`."""
        ...

    @property
    def model(self) -> str:
        """The `provider:model` name, for the report."""
        ...

    @property
    def template(self) -> str:
        """The template's path, for the report."""
        ...

    def request(self, variables: Mapping[str, JSON]) -> ChatRequest:
        """The request for one input; raises an `Orchestr8Error` when it does not render."""
        ...

    async def score(self, text: str) -> ArmScore:
        """Score one reply against the arm's expectations."""
        ...


class JudgeCalls(Protocol):
    """An eval's completeness judges as the runner sees them: who is called, what it cost."""

    @property
    def providers(self) -> Sequence[Provider]:
        """The judges' providers, made ready before the first call."""
        ...

    def summary(self) -> JudgeSummary | None:
        """The judges' samples added up, or None when no judge was asked anything."""
        ...


class EvalProgress(Protocol):
    """Told how the calls go, so a view can show progress; each method must return at once."""

    def calls_planned(self, total: int, from_cache: int) -> None:
        """Every output is accounted for: `from_cache` of `total` need no call."""
        ...

    def call_finished(self, done: int, to_call: int) -> None:
        """Another call ended (succeeded, or failed for good)."""
        ...


@attrs.frozen
class _Job:
    """One call of the eval: the input's index, the arm, the request and its cache key."""

    index: int
    arm: EvalArmRunner
    request: ChatRequest
    key: str


@attrs.define
class _Outcome:
    """What a job produced: the cached or fresh reply, or the error that ended it."""

    reply: CachedReply | None = None
    from_cache: bool = False
    error: Orchestr8Error | None = None


def call_order(count: int, seed: int) -> list[tuple[int, str]]:
    """The order of an eval's calls: (input index, arm) pairs of both arms, shuffled by `seed`.

    `random.Random(seed).shuffle` of `[(0, "a"), (0, "b"), (1, "a"), ...]`: documented so that
    a scripted fake can answer the calls of a sequential eval (`concurrency` 1) in order.
    """
    order = [(index, arm) for index in range(count) for arm in ("a", "b")]
    random.Random(seed).shuffle(order)
    return order


def request_key(provider: Provider, request: ChatRequest, sample: int | None = None) -> str:
    """The cache key of `request` sent to `provider` (and of a judge's sample number)."""
    rendered: dict[str, JSON] = {
        "system": request.system,
        "messages": [message.to_json() for message in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "json_schema": None if request.json_schema is None else dict(request.json_schema),
        "tools": [attrs.asdict(tool) for tool in request.tools],
    }
    if sample is not None:
        rendered["sample"] = sample
    base_url = getattr(provider, "base_url", None)
    return cache_key(
        kind=provider.kind,
        base_url=None if base_url is None else str(base_url),
        model=request.model,
        request=rendered,
    )


async def run_eval(
    arms: tuple[EvalArmRunner, EvalArmRunner],
    inputs: Sequence[DatasetInput],
    *,
    dataset: str,
    seed: int,
    cache: EvalCache,
    concurrency: int,
    progress: EvalProgress | None = None,
    judge: JudgeCalls | None = None,
) -> EvalReport:
    """Give every input to both arms, cached, and report how B compares with A.

    Raises:
        EvalDatasetError: an input does not render in an arm's template (named by its line).
        EvalCacheError: the cache cannot hold the replies (checked before any call).
        MissingAPIKeyError: a provider to be called has no API key (before any call).
        EvalCallsFailedError: calls failed, or replies could not be scored, for good (raised
            once every call and score has ended).
        OSError: the cache cannot be written.
    """
    by_name = {arm.name: arm for arm in arms}
    requests = {
        (index, arm.name): _request(arm, entry, dataset)
        for index, entry in enumerate(inputs)
        for arm in arms
    }
    jobs = [
        _Job(index, by_name[name], request, request_key(by_name[name].provider, request))
        for (index, name), request in (
            (key, requests[key]) for key in call_order(len(inputs), seed)
        )
    ]
    outcomes: dict[tuple[int, str], _Outcome] = {}
    to_call: list[_Job] = []
    first_of_key: dict[str, _Job] = {}
    shared: list[_Job] = []
    for job in jobs:
        cached = cache.load(job.key)
        outcomes[job.index, job.arm.name] = _Outcome(cached, from_cache=cached is not None)
        if cached is not None:
            continue
        if job.key in first_of_key:
            shared.append(job)
        else:
            first_of_key[job.key] = job
            to_call.append(job)
    cache.check(job.key for job in to_call)
    if progress is not None:
        progress.calls_planned(len(jobs), len(jobs) - len(to_call))
    providers = [job.arm.provider for job in to_call]
    providers += judge.providers if judge is not None else []
    async with contextlib.AsyncExitStack() as ready:
        for provider in {id(provider): provider for provider in providers}.values():
            await ready.enter_async_context(provider.hold())
        await _call_all(to_call, outcomes, cache, concurrency, progress)
        failures = [
            (job, error)
            for job in to_call
            if (error := outcomes[job.index, job.arm.name].error) is not None
        ]
        if failures:
            raise EvalCallsFailedError(_failure_message(failures, len(jobs)))
        for job in shared:
            first = first_of_key[job.key]
            reply = outcomes[first.index, first.arm.name].reply
            outcomes[job.index, job.arm.name] = _Outcome(reply, from_cache=True)
        scores = await _score_all(arms, len(inputs), outcomes, concurrency)
    outputs: dict[str, list[ArmOutput]] = {"a": [], "b": []}
    for index in range(len(inputs)):
        for arm in arms:
            outcome = outcomes[index, arm.name]
            if outcome.reply is not None:
                score = scores[index, arm.name]
                outputs[arm.name].append(_output(score, outcome.reply, outcome.from_cache))
    return build_report(
        outputs["a"],
        outputs["b"],
        seed=seed,
        arms={arm.name: (arm.model, arm.template) for arm in arms},
        judge=None if judge is None else judge.summary(),
    )


async def _score_all(
    arms: Sequence[EvalArmRunner],
    count: int,
    outcomes: Mapping[tuple[int, str], _Outcome],
    concurrency: int,
) -> dict[tuple[int, str], ArmScore]:
    """Score every reply in dataset order, A then B, at most `concurrency` at once.

    A reply that cannot be scored does not stop the others; they are named at the end.

    Raises:
        EvalCallsFailedError: some replies could not be scored (a judge that never answered
            with a verdict, a judge call that failed for good); the others were all scored.
    """
    scores: dict[tuple[int, str], ArmScore] = {}
    failures: list[tuple[int, str, Orchestr8Error]] = []
    replies = [
        (index, arm, reply.text)
        for index in range(count)
        for arm in arms
        if (reply := outcomes[index, arm.name].reply) is not None
    ]
    send, receive = trio.open_memory_channel[tuple[int, EvalArmRunner, str]](len(replies))
    for item in replies:
        send.send_nowait(item)
    send.close()

    async def worker() -> None:
        async for index, arm, text in receive:
            try:
                scores[index, arm.name] = await arm.score(text)
            except Orchestr8Error as error:
                failures.append((index, arm.name, error))

    async with trio.open_nursery() as nursery:
        for _ in range(min(concurrency, len(replies))):
            nursery.start_soon(worker)
    if failures:
        index, name, error = min(failures, key=lambda failure: failure[:2])
        raise EvalCallsFailedError(
            f"{len(failures)} of {2 * count} outputs could not be scored (first: input "
            f"{index + 1}, arm {name}: {error}); the outputs and the judge's samples that "
            "succeeded are cached: run again to retry only what failed"
        )
    return scores


def _request(arm: EvalArmRunner, entry: DatasetInput, dataset: str) -> ChatRequest:
    """The arm's request for one input; a rendering error names the dataset line."""
    try:
        return arm.request(entry.variables)
    except Orchestr8Error as error:
        raise EvalDatasetError(
            f"{dataset}:{entry.line}: arm {arm.name} ({arm.template}): {error}"
        ) from None


async def _call_all(
    jobs: Sequence[_Job],
    outcomes: dict[tuple[int, str], _Outcome],
    cache: EvalCache,
    concurrency: int,
    progress: EvalProgress | None,
) -> None:
    """Make the jobs' calls in their order, at most `concurrency` at once, caching each reply."""
    if not jobs:
        return
    send, receive = trio.open_memory_channel[_Job](len(jobs))
    for job in jobs:
        send.send_nowait(job)
    send.close()
    done = 0

    async def worker() -> None:
        nonlocal done
        async for job in receive:
            outcome = outcomes[job.index, job.arm.name]
            try:
                outcome.reply = await call_cached(job.arm, job.request, job.key, cache)
            except Orchestr8Error as error:
                outcome.error = error
            done += 1
            if progress is not None:
                progress.call_finished(done, len(jobs))

    async with trio.open_nursery() as nursery:
        for _ in range(min(concurrency, len(jobs))):
            nursery.start_soon(worker)


async def call_cached(
    arm: PricedProvider,
    request: ChatRequest,
    key: str,
    cache: EvalCache,
    *,
    check: Callable[[str], object] | None = None,
) -> CachedReply:
    """The reply to `request` from the cache, else from one call (with retries), then cached.

    `check`, when given, is called with a fresh reply's text before it is cached; the
    `RetryableError` it raises for an answer that is not what was asked (a judge's verdict that
    is not one) is retried like a failed call, and such a reply is never cached.

    Raises:
        RetryableError: the last of `CALL_ATTEMPTS` attempts failed retryably.
        NonRetryableError: an attempt failed for good (a bad request, authentication).
    """
    cached = cache.load(key)
    if cached is not None:
        return cached
    pause = FIRST_PAUSE_SECONDS
    attempt = 1
    while True:
        started = trio.current_time()
        try:
            reply = await arm.provider.complete(request, timeout=CALL_TIMEOUT_SECONDS)
            if check is not None:
                check(reply.text)
        except RetryableError as error:
            if attempt == CALL_ATTEMPTS:
                raise
            await trio.sleep(pause if error.retry_after is None else error.retry_after)
            pause *= 2
            attempt += 1
            continue
        fresh = CachedReply(
            text=reply.text,
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            cost_usd=arm.cost(reply.usage),
            latency_s=trio.current_time() - started,
            estimated=reply.usage.estimated,
        )
        cache.store(key, fresh)
        return fresh


def _failure_message(failures: Sequence[tuple[_Job, Orchestr8Error]], total: int) -> str:
    """How many calls failed, the first error, and that a rerun pays only for those."""
    job, error = failures[0]
    return (
        f"{len(failures)} of {total} calls failed (first: input {job.index + 1}, arm "
        f"{job.arm.name}: {error}); the {total - len(failures)} outputs that succeeded are "
        "cached: run again to retry only the failed calls"
    )


def _output(score: ArmScore, reply: CachedReply, from_cache: bool) -> ArmOutput:
    """The report's view of one scored reply."""
    return ArmOutput(
        scores=score.scores,
        passed=score.passed,
        latency_s=reply.latency_s,
        cost_usd=reply.cost_usd,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        from_cache=from_cache,
        estimated=reply.estimated,
    )
