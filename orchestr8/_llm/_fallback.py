"""Fallback across providers: one call tries the primary model, then each fallback in order.

`complete_with_fallback` makes one API call of the `llm` agent (one turn of its conversation).
It tries the candidates (`config.model`, then `config.fallback`) in order, starting with the one
that last answered in the attempt (so a conversation that fell back stays there), and moves to
the next one when the current one:

- fails with a retryable error (429, overload, 5xx, a timeout, a connection error, a malformed
  reply: `RetryableError`), or
- has its circuit breaker open (`CircuitOpenError`; no call is made), or
- refuses the caller for good in a way another provider may not: 401 (bad key), 403 (not
  allowed), 404 (no such model), or no key at all (`MissingAPIKeyError`).

Any other non-retryable error (400: the request itself is bad; a budget that cannot cover the
call) is raised at once: another provider would refuse the same request, or must not be paid.
When the last candidate fails too, the error names every candidate's failure and is retryable
when any of them was (the step's retry policy may then try the whole chain again).

Each provider has one circuit breaker per runtime (`llm-provider:NAME`, reached through
`LLMSession.provider_guard`): a failure that falls back counts against it, success closes it,
and any other error or a cancellation leaves it as it was. Every call that reached a provider,
answered or failed, is journaled as `llm.called` through `LLMSession.record_call`, with which
provider it was, the usage, the cost when the price is known, the latency and the candidate's
index (`fallback_index`, 0 for the primary), and gets a span with the `gen_ai.*` attributes.
A candidate skipped because its breaker is open is journaled too, as an `llm.called` with
`outcome: "skipped"` and `reason: "circuit open"` (no usage, no cost), so `inspect` can say why
the primary did not answer; so is one whose spec'd key is not set (`reason: "no API key"`).

Whether a non-retryable error falls back is read from its `status` attribute (the providers
raise `ProviderRefusedError` with the HTTP status), never from its message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import trio

from .._errors import (
    AllProvidersFailedError,
    BudgetExhaustedError,
    CircuitOpenError,
    MissingAPIKeyError,
    NonRetryableError,
    RetryableError,
    message_of,
)
from .._json import JSON
from .._observability._telemetry import llm_call_span, record_llm_response
from .._workflow._provider_specs import ModelPrice
from ._budget_ledger import call_spend, worst_case_spend
from ._catalog import ProviderCatalog, ResolvedModel
from ._chat import ChatReply, ChatRequest, Usage
from ._model_names import ModelName
from ._prices import price_entry
from ._provider import TextCallback, UsageCallback
from ._session import LLMSession, Spend

__all__ = [
    "FALLBACK_STATUSES",
    "PROVIDER_BREAKER_PREFIX",
    "SKIPPED_CIRCUIT_OPEN",
    "SKIPPED_NO_KEY",
    "FallbackReply",
    "complete_with_fallback",
    "cost_of_call",
    "falls_back",
]

#: The HTTP statuses of a non-retryable error that still falls back: bad key, not allowed, no
#: such model. Another provider may well accept the same request.
FALLBACK_STATUSES: Final = frozenset({401, 403, 404})

#: The shared breaker registry's key of a provider's breaker: `llm-provider:local`.
PROVIDER_BREAKER_PREFIX: Final = "llm-provider:"

#: The `reason` of an `llm.called` whose candidate was skipped because its breaker is open.
SKIPPED_CIRCUIT_OPEN: Final = "circuit open"

#: The `reason` of an `llm.called` whose candidate was skipped because its spec'd key is not set.
SKIPPED_NO_KEY: Final = "no API key"


@attrs.frozen
class FallbackReply:
    """A call's reply and the index of the candidate that answered (0: the primary)."""

    reply: ChatReply
    index: int


def falls_back(error: BaseException) -> bool:
    """Whether a call that failed with `error` moves on to the next candidate (see the module)."""
    if isinstance(error, BudgetExhaustedError):
        return False
    if isinstance(error, RetryableError | CircuitOpenError | MissingAPIKeyError):
        return True
    if isinstance(error, NonRetryableError):
        return _status_of(error) in FALLBACK_STATUSES
    return False


def _status_of(error: BaseException) -> int | None:
    """The HTTP status an error carries (`ProviderRefusedError.status`), else None."""
    status = getattr(error, "status", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def cost_of_call(usage: Usage, price: ModelPrice | None) -> float | None:
    """What a call cost in US dollars at `price` (per million tokens), or None without a price.

    `input_tokens` include the cached ones (`Usage`): those are priced at `cached_input` (else
    the input price), the rest at `input`.
    """
    if price is None:
        return None
    cached_price = price.cached_input if price.cached_input is not None else price.input
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    return (
        (usage.input_tokens - cached) * price.input
        + cached * cached_price
        + usage.output_tokens * price.output
    ) / 1_000_000


async def complete_with_fallback(
    candidates: Sequence[ModelName],
    request: ChatRequest,
    *,
    catalog: ProviderCatalog,
    session: LLMSession,
    context: Any,
    request_timeout: Callable[[], float],
    on_text: TextCallback | None = None,
    on_usage: UsageCallback | None = None,
    start: int = 0,
    extra: Mapping[str, JSON] | None = None,
) -> FallbackReply:
    """Make one call on the first candidate from `start` that answers (see the module doc).

    Args:
        candidates: the primary model, then the fallbacks.
        request: the call; its `model` is replaced by each candidate's.
        catalog: resolves the candidates to providers.
        session: the execution's session: breakers, and where calls are journaled.
        context: the calling agent's context (for the session).
        request_timeout: the request timeout to give a call, asked just before it is made.
        on_text: each text delta of a streamed reply.
        on_usage: each call's usage, as soon as it is known (failed calls too).
        start: the candidate to start from (the one that last answered).
        extra: more fields for every `llm.called` event (a template's provenance).

    Raises:
        ValueError: there is no candidate from `start` on.
        AllProvidersFailedError: every candidate failed and one of them retryably.
        NonRetryableError: every candidate failed for good, or one failed in a way that does not
            fall back (its own error, when it was the only candidate tried).
        RetryableError: the only candidate tried failed retryably.
    """
    if not candidates:
        raise ValueError("complete_with_fallback needs at least one candidate")
    failures: list[tuple[int, ModelName, BaseException]] = []
    for index in range(start, len(candidates)):
        name = candidates[index]
        try:
            answered = await _call_one(
                index,
                name,
                request,
                catalog=catalog,
                session=session,
                context=context,
                request_timeout=request_timeout,
                on_text=on_text,
                on_usage=on_usage,
                extra=extra,
            )
        except Exception as error:
            failures.append((index, name, error))
            if falls_back(error) and index + 1 < len(candidates):
                context.logger.warning(
                    "%s failed (%s); falling back to %s",
                    name,
                    message_of(error),
                    candidates[index + 1],
                )
                continue
            if len(failures) == 1 and not isinstance(error, CircuitOpenError):
                raise
            raise _failure(failures) from error
        return FallbackReply(answered, index)
    raise ValueError(f"no candidate from {start}: there are {len(candidates)}")


async def _call_one(
    index: int,
    name: ModelName,
    request: ChatRequest,
    *,
    catalog: ProviderCatalog,
    session: LLMSession,
    context: Any,
    request_timeout: Callable[[], float],
    on_text: TextCallback | None,
    on_usage: UsageCallback | None,
    extra: Mapping[str, JSON] | None,
) -> ChatReply:
    """One call to one candidate, under its provider's breaker, journaled and traced.

    Its worst case is reserved on the execution's budgets first (`BudgetExhaustedError` when
    they cannot cover it: the call is not made) and settled with what it spent once it ends,
    failed or not (no usage known: the hold is released).
    """
    try:
        resolved = catalog.resolve(str(name))
    except MissingAPIKeyError as error:
        session.record_call(context, _skipped(index, name, error, SKIPPED_NO_KEY, extra=extra))
        raise
    call = attrs.evolve(request, model=name.model)
    price = None if resolved.price is None else price_entry(resolved.price)
    reservation = await session.reserve(context, worst_case_spend(call, price), model=str(name))
    spent: list[Usage] = []
    try:
        return await _guarded_call(
            index,
            name,
            call,
            resolved,
            session=session,
            context=context,
            request_timeout=request_timeout,
            on_text=on_text,
            on_usage=on_usage,
            extra=extra,
            spent=spent,
        )
    finally:
        used = call_spend(_sum(spent), price) if spent else Spend()
        session.settle(context, reservation, used)


async def _guarded_call(
    index: int,
    name: ModelName,
    call: ChatRequest,
    resolved: ResolvedModel,
    *,
    session: LLMSession,
    context: Any,
    request_timeout: Callable[[], float],
    on_text: TextCallback | None,
    on_usage: UsageCallback | None,
    extra: Mapping[str, JSON] | None,
    spent: list[Usage],
) -> ChatReply:
    """The call itself, under the provider's breaker; `spent` gathers its usage."""
    guard = session.provider_guard(name.provider)
    try:
        ticket = guard.admit() if guard is not None else 0
    except CircuitOpenError as error:
        session.record_call(
            context, _skipped(index, name, error, SKIPPED_CIRCUIT_OPEN, extra=extra)
        )
        raise

    def usage_seen(usage: Usage) -> None:
        spent.append(usage)
        if on_usage is not None:
            on_usage(usage)

    started = trio.current_time()
    with llm_call_span(name.provider, resolved.provider.kind, name.model) as span:
        try:
            reply = await resolved.provider.complete(
                call,
                timeout=request_timeout(),
                on_text=on_text,
                on_usage=usage_seen,
            )
        except Exception as error:
            if guard is not None:
                if falls_back(error):
                    guard.record_failure(ticket, error)
                else:
                    guard.record_neutral(ticket)
            usage = _sum(spent)
            record_llm_response(span, None, usage.input_tokens, usage.output_tokens)
            session.record_call(
                context, _record(index, name, resolved, usage, started, error=error, extra=extra)
            )
            raise
        except BaseException:
            if guard is not None:
                guard.record_neutral(ticket)
            raise
        if guard is not None:
            guard.record_success(ticket)
        record_llm_response(span, reply.model, reply.usage.input_tokens, reply.usage.output_tokens)
    session.record_call(context, _record(index, name, resolved, reply.usage, started, extra=extra))
    return reply


def _sum(spent: Sequence[Usage]) -> Usage:
    total = Usage()
    for usage in spent:
        total = total + usage
    return total


def _record(
    index: int,
    name: ModelName,
    resolved: ResolvedModel,
    usage: Usage,
    started: float,
    *,
    error: BaseException | None = None,
    extra: Mapping[str, JSON] | None = None,
) -> dict[str, JSON]:
    """The data of one `llm.called` event."""
    record: dict[str, JSON] = {
        "provider": name.provider,
        "model": name.model,
        "usage": usage.to_json(),
        "cost_usd": cost_of_call(usage, resolved.price),
        "latency_s": max(0.0, trio.current_time() - started),
        "fallback_index": index,
        "outcome": "failed" if error is not None else "succeeded",
    }
    if error is not None:
        record["error"] = {"type": type(error).__name__, "message": message_of(error)}
    if extra:
        record.update(extra)
    return record


def _skipped(
    index: int,
    name: ModelName,
    error: Exception,
    reason: str,
    *,
    extra: Mapping[str, JSON] | None,
) -> dict[str, JSON]:
    """The data of the `llm.called` event of a candidate skipped without a request, and why."""
    record: dict[str, JSON] = {
        "provider": name.provider,
        "model": name.model,
        "usage": Usage().to_json(),
        "cost_usd": None,
        "latency_s": 0.0,
        "fallback_index": index,
        "outcome": "skipped",
        "reason": reason,
        "error": {"type": type(error).__name__, "message": message_of(error)},
    }
    if extra:
        record.update(extra)
    return record


def _failure(failures: Sequence[tuple[int, ModelName, BaseException]]) -> Exception:
    """The error of a call whose candidates all failed, naming each failure.

    Retryable when any failure was (an open breaker counts: it closes again), with the shortest
    wait any of them asked for; else non-retryable.
    """
    parts = [
        f"{name} ({'primary' if index == 0 else f'fallback {index}'}): {message_of(error)}"
        for index, name, error in failures
    ]
    message = "every provider failed: " + "; ".join(parts)
    if len(failures) == 1:
        message = f"{failures[0][1]}: {message_of(failures[0][2])}"
    retryable = [
        error
        for _, _, error in failures
        if isinstance(error, RetryableError)
        or (isinstance(error, CircuitOpenError) and math.isfinite(error.retry_after))
    ]
    if retryable:
        waits = [
            error.retry_after
            for error in retryable
            if error.retry_after is not None and error.retry_after >= 0
        ]
        return AllProvidersFailedError(message, retry_after=min(waits) if waits else None)
    return NonRetryableError(message)
