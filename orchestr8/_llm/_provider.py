"""The provider protocol: what every model service offers the `llm` agent, eval and the judge.

A provider is one configured service (`anthropic`, `openai`, a `local` Ollama, ...) of one kind
(its wire protocol). It turns a neutral `ChatRequest` into a `ChatReply` and owns everything
specific to its API: the SDK client, streaming, tool-call and JSON-output translation, usage
normalisation and the mapping of its errors onto the retry classification. The rules every
implementation keeps, because budgets, fallback and the journal rely on them:

- `on_usage` is called exactly once per call as soon as the usage is known, **even when the call
  fails afterwards** (the tokens were spent); a stream that ends without usage reports an
  estimate (`Usage.estimated`).
- Every error is a `RetryableError` (with the server's `retry_after` when it sent one) or a
  `NonRetryableError`, its message naming the provider (`provider 'local' (openai at URL): ...`);
  malformed output is a `ProviderResponseError`, never a bare `AssertionError` or `KeyError`.
  `trio.Cancelled` passes through untouched.
- The SDK is imported inside the methods that use it, and one client serves every call of the
  provider until `aclose`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from ._chat import Capability, ChatReply, ChatRequest, Usage

__all__ = ["Provider", "ProviderGuard", "TextCallback", "UsageCallback", "describe_provider"]

TextCallback = Callable[[str], None]
"""Called with each text delta of a streamed reply, synchronously; must not block."""

UsageCallback = Callable[[Usage], None]
"""Called once with a call's usage as soon as it is known; must not block."""


@runtime_checkable
class Provider(Protocol):
    """One configured model service: its catalog name, its kind, what it can do, and the call."""

    name: str
    """The catalog name workflows use before the colon: `anthropic`, `openai`, `local`, ..."""
    kind: str
    """The wire protocol: `anthropic` or `openai`."""
    capabilities: frozenset[Capability]
    """What this provider supports; a step needing more fails validation at load."""

    async def complete(
        self,
        request: ChatRequest,
        *,
        timeout: float,  # noqa: ASYNC109 - the SDK's per-request timeout, not a trio deadline
        on_text: TextCallback | None = None,
        on_usage: UsageCallback | None = None,
    ) -> ChatReply:
        """Make one call, streamed when `request.stream`; see the module doc for the rules.

        Raises:
            RetryableError: rate limits, overloads, server and connection errors, timeouts,
                malformed output (`ProviderResponseError`).
            NonRetryableError: bad requests, authentication, permissions, unknown models.
        """
        ...

    def hold(self) -> AbstractAsyncContextManager[object]:
        """Keep one client (its connection pool) open across the calls made inside the block.

        An agent holds its provider for its turns; the client closes when the last holder and
        the last call in flight end, so no socket outlives the runs that opened it.
        """
        ...

    async def aclose(self) -> None:
        """Close the client and its connections; the provider makes a new one if used again."""
        ...


class ProviderGuard(Protocol):
    """A provider's circuit breaker as the `llm` agent uses it (`CircuitBreaker` fits it).

    `admit` raises `CircuitOpenError` while the breaker is open; every admitted call is settled
    with `record_success` or `record_failure` and its ticket.
    """

    def admit(self) -> int:
        """Let one call through, or raise `CircuitOpenError`; returns the call's ticket."""
        ...

    def record_success(self, ticket: int) -> None:
        """Settle an admitted call that succeeded."""
        ...

    def record_failure(self, ticket: int, error: BaseException) -> None:
        """Settle an admitted call that failed with `error`."""
        ...

    def record_neutral(self, ticket: int) -> None:
        """Settle an admitted call with no verdict on the provider (cancelled, or a bad request)."""
        ...


def describe_provider(name: str, kind: str, base_url: object) -> str:
    """How error messages name a provider: `provider 'local' (openai at http://...)`."""
    return f"provider {name!r} ({kind} at {base_url})"
