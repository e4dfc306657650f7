"""The `llm` agent's side of the Anthropic Messages API: the client, one streamed call, its errors.

`anthropic` is imported only inside these functions: importing it costs about a second, and
`orchestr8 --help` and workflow validation (which builds every agent) must not pay for it.

The client is built with ``max_retries=0`` and an explicit timeout, because the step's resilience
policy is the only retry layer; every API error is mapped onto `RetryableError` (with the server's
``retry-after`` as `retry_after`) or `NonRetryableError`, so that policy decides what happens next.
The API key never appears in an error, an event or a log record.
"""

from __future__ import annotations

import email.utils
import math
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from orchestr8 import (
    AgentConfigurationError,
    AgentContext,
    NonRetryableError,
    RetryableError,
)
from orchestr8.testing import (
    AnthropicClientFactory,
    anthropic_client_factory,
    use_anthropic_client,
)

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import Message

__all__ = [
    "AnthropicClientFactory",
    "ClientLease",
    "MissingAPIKeyError",
    "ProgressCoalescer",
    "stream_message",
    "use_anthropic_client",
]

API_KEY_VARIABLE = "ANTHROPIC_API_KEY"
_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_RETRYABLE_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
_CLOSE_TIMEOUT = 5.0


class MissingAPIKeyError(AgentConfigurationError, NonRetryableError):
    """No Anthropic API key is configured; not retried, since another attempt cannot find one."""


def _default_factory(api_key: str | None, timeout: float) -> AnthropicClientFactory:
    """The factory used without a hook: the SDK's client, honouring `ANTHROPIC_BASE_URL`.

    Raises:
        MissingAPIKeyError: there is no key in the config or in `ANTHROPIC_API_KEY`.
    """
    key = api_key or os.environ.get(API_KEY_VARIABLE)
    if not key:
        raise MissingAPIKeyError(
            f"the llm agent has no Anthropic API key; set the {API_KEY_VARIABLE} environment "
            "variable (no key was found there or in the agent's 'api_key' config)"
        )

    def create() -> AsyncAnthropic:
        import anthropic

        # No base_url: the SDK reads ANTHROPIC_BASE_URL itself, which must keep working.
        return anthropic.AsyncAnthropic(api_key=key, max_retries=0, timeout=timeout)

    return create


class ClientLease:
    """One client per agent instance, shared by the calls in flight and closed after the last.

    Tool turns and concurrent runs of the agent reuse one connection pool; closing it when no
    call needs it any more means no socket outlives the runs that opened it.
    """

    def __init__(self, api_key: str | None, timeout: float) -> None:
        """Lease clients that send `api_key` (else `ANTHROPIC_API_KEY`) with this timeout."""
        self._api_key = api_key
        self._timeout = timeout
        self._client: AsyncAnthropic | None = None
        self._users = 0

    @asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncAnthropic]:
        """Yield the shared client, making it (via the hook, or from the key) if there is none.

        Raises:
            MissingAPIKeyError: no hook is active and no API key is configured.
        """
        if self._client is None:
            factory = anthropic_client_factory() or _default_factory(self._api_key, self._timeout)
            self._client = factory()
        client = self._client
        self._users += 1
        try:
            yield client
        finally:
            self._users -= 1
            if self._users == 0 and self._client is client:
                self._client = None
                # Shielded and bounded, so a cancelled run still releases its connections.
                with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                    await client.close()


class ProgressCoalescer:
    """Turns a stream of text deltas into few progress events: one per interval or size step.

    A delta is published with those buffered before it once `interval` seconds (trio clock)
    passed since the last event or `max_chars` characters are waiting; `flush` publishes the
    rest. Each event is ``{"text_delta": text, "chars": total characters streamed so far}``.
    """

    def __init__(self, context: AgentContext, *, interval: float = 0.1, max_chars: int = 200):
        """Publish through `context.progress`."""
        self._context = context
        self._interval = interval
        self._max_chars = max_chars
        self._buffer: list[str] = []
        self._pending = 0
        self._last = trio.current_time()
        self.chars = 0
        """Characters received so far."""

    def add(self, text: str) -> None:
        """Take one delta, publishing the buffer if it is big or old enough."""
        if not text:
            return
        self._buffer.append(text)
        self._pending += len(text)
        self.chars += len(text)
        if self._pending >= self._max_chars or trio.current_time() - self._last >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Publish whatever is buffered."""
        if self._pending:
            self._context.progress({"text_delta": "".join(self._buffer), "chars": self.chars})
            self._buffer.clear()
            self._pending = 0
        self._last = trio.current_time()


async def stream_message(
    client: AsyncAnthropic,
    request: Mapping[str, Any],
    *,
    context: AgentContext,
    timeout: float,  # noqa: ASYNC109 - the SDK's per-request timeout, not a trio deadline
    progress: ProgressCoalescer,
) -> Message:
    """Make one streamed Messages API call; publish its text as progress, record its usage.

    Usage is recorded once per call, as soon as it is known, even when the call fails later:
    the tokens were spent either way.

    Raises:
        RetryableError: a rate limit, an overload, a server or connection error, a timeout.
        NonRetryableError: any other API error (bad request, authentication, permission, ...).
    """
    import anthropic

    usage: dict[str, int] = {}
    try:
        async with client.messages.stream(**request, timeout=timeout) as stream:
            async for event in stream:
                if event.type == "text":
                    progress.add(event.text)
                elif event.type == "message_start":
                    usage["input_tokens"] = event.message.usage.input_tokens or 0
                    usage["output_tokens"] = event.message.usage.output_tokens or 0
                elif event.type == "message_delta":
                    usage["output_tokens"] = event.usage.output_tokens or 0
                    if event.usage.input_tokens is not None:
                        usage["input_tokens"] = event.usage.input_tokens
            message = await stream.get_final_message()
    except anthropic.APIStatusError as error:
        raise map_status_error(error) from error
    except anthropic.APITimeoutError as error:
        raise RetryableError(
            f"the Anthropic API did not answer within the request timeout of {timeout:g} s"
        ) from error
    except anthropic.APIConnectionError as error:
        cause = error.__cause__ or error
        raise RetryableError(
            f"could not reach the Anthropic API at {client.base_url}: "
            f"{type(cause).__name__}: {cause}"
        ) from error
    finally:
        progress.flush()
        if usage:
            context.record_usage(**usage)
    return message


def map_status_error(error: Any) -> RetryableError | NonRetryableError:
    """Map an `anthropic.APIStatusError` onto the retry classification, with a clear message.

    408, 409, 429 and 5xx (529 is "overloaded") are retryable, other 4xx are not; an error event
    in the middle of a stream (the HTTP status was 200) is judged by its error type. The
    `x-should-retry` header, when the API sends it, has the last word.
    """
    status: int = error.status_code
    kind: str | None = error.type
    headers = error.response.headers
    message = error.api_message or str(error)
    where = f"error {status}" if status >= 400 else "error while streaming"
    text = f"Anthropic API {where} ({kind or 'unknown type'}): {message}"
    if error.request_id:
        text += f" [request-id {error.request_id}]"
    if status == 401:
        text += f"; check the API key in {API_KEY_VARIABLE}"
    if status >= 400:
        retryable = status in _RETRYABLE_STATUSES or status >= 500
    else:
        retryable = kind in _RETRYABLE_TYPES
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    if retryable:
        return RetryableError(text, retry_after=retry_after_seconds(headers))
    return NonRetryableError(text)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait the server asks for: `retry-after-ms`, else `retry-after` (seconds or a date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    seconds = headers.get("retry-after")
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(seconds)
        except (TypeError, ValueError):
            return None
        value = moment.timestamp() - time.time()
        return max(value, 0.0)
    return value if math.isfinite(value) and value >= 0 else None
