"""The runner of `orchestr8 eval`: every input to both arms, in a seeded order, cached, scored.

An arm (`EvalArmRunner`, made from a template and a model by `_eval_arms`) renders an input into
a request for its provider, scores a reply and prices a call. The runner first renders every
(input, arm) request, so a line that does not render is an `EvalDatasetError` naming it before
anything is spent. Then each call is looked up in the cache (`_eval_cache`); the rest are made in
the order `call_order` draws from the seed, A's and B's calls shuffled together, so drift in a
provider (load, a deployment) hits both arms alike, with at most `concurrency` calls at once. A
call that fails retryably is tried up to `CALL_ATTEMPTS` times, after the provider's
`retry_after` or a pause that doubles from `FIRST_PAUSE_SECONDS`; a call that still fails does not
stop the others, and once all have ended `EvalCallsFailedError` says how many failed and why (the
outputs that succeeded are cached, so running again only pays for the failures). Then every
reply is scored, in dataset order, and the report (`_eval_report`) is built from the scores.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

import attrs
import trio

from .._errors import EvalCallsFailedError, EvalDatasetError, Orchestr8Error, RetryableError
from .._json import JSON
from ._chat import ChatRequest, Usage
from ._eval_cache import CachedReply, EvalCache, cache_key
from ._eval_report import ArmOutput, EvalReport, build_report
from ._eval_spec import DatasetInput
from ._provider import Provider

__all__ = [
    "CALL_ATTEMPTS",
    "CALL_TIMEOUT_SECONDS",
    "FIRST_PAUSE_SECONDS",
    "ArmScore",
    "EvalArmRunner",
    "EvalProgress",
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
) -> EvalReport:
    """Give every input to both arms, cached, and report how B compares with A.

    Raises:
        EvalDatasetError: an input does not render in an arm's template (named by its line).
        EvalCallsFailedError: calls failed for good (raised once every call has ended).
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
    for job in jobs:
        cached = cache.load(job.key)
        outcomes[job.index, job.arm.name] = _Outcome(cached, from_cache=cached is not None)
        if cached is None:
            to_call.append(job)
    if progress is not None:
        progress.calls_planned(len(jobs), len(jobs) - len(to_call))
    await _call_all(to_call, outcomes, cache, concurrency, progress)
    failures = [
        (job, error)
        for job in to_call
        if (error := outcomes[job.index, job.arm.name].error) is not None
    ]
    if failures:
        raise EvalCallsFailedError(_failure_message(failures, len(jobs)))
    outputs: dict[str, list[ArmOutput]] = {"a": [], "b": []}
    for index in range(len(inputs)):
        for arm in arms:
            outcome = outcomes[index, arm.name]
            if outcome.reply is not None:
                score = await arm.score(outcome.reply.text)
                outputs[arm.name].append(_output(score, outcome.reply, outcome.from_cache))
    return build_report(
        outputs["a"],
        outputs["b"],
        seed=seed,
        arms={arm.name: (arm.model, arm.template) for arm in arms},
    )


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
    arm: PricedProvider, request: ChatRequest, key: str, cache: EvalCache
) -> CachedReply:
    """The reply to `request` from the cache, else from one call (with retries), then cached.

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
    )
