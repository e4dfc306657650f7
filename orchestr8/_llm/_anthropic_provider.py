"""The Anthropic provider: Claude models through the Messages API, streamed, with tools and JSON.

`anthropic` is imported only inside the methods that call it (importing it costs about a second,
and validation must not pay for it). The client is built with ``max_retries=0`` and an explicit
timeout, because the step's resilience policy is the only retry layer; every API error is mapped
onto `RetryableError` (with the server's ``retry-after`` as `retry_after`) or `NonRetryableError`
naming the provider, and the API key never appears in an error, an event or a log record.

The key: `api_key` when given; else, when `key_variable` names an environment variable (the
built-in `anthropic` provider: `ANTHROPIC_API_KEY`), that variable's value. A provider given
neither (one declared in a config file or a workflow without an `api_key`) sends no key at all to
its own `base_url`, and refuses to call Anthropic's own API keyless (`MissingAPIKeyError`): a
key is never sent to a server it was not given for.

One client serves the calls in flight and is closed after the last of them, so no socket
outlives the runs that opened it. Tests plug in a client factory with `use_anthropic_client`
(`orchestr8.testing`), which wins over the key and `ANTHROPIC_BASE_URL`.
"""

from __future__ import annotations

import email.utils
import math
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._errors import (
    MissingAPIKeyError,
    ProviderRefusedError,
    ProviderResponseError,
    ProviderUnavailableError,
    RetryableError,
)
from ..testing._anthropic_hook import anthropic_client_factory
from ._chat import (
    ALL_CAPABILITIES,
    Capability,
    ChatMessage,
    ChatReply,
    ChatRequest,
    ToolCall,
    Usage,
)
from ._client_lease import ClientLease
from ._provider import TextCallback, UsageCallback, describe_provider

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import Message

__all__ = [
    "ANTHROPIC_KEY_VARIABLE",
    "AnthropicProvider",
    "map_status_error",
    "retry_after_seconds",
]

ANTHROPIC_KEY_VARIABLE = "ANTHROPIC_API_KEY"
_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_RETRYABLE_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
_STOP_REASONS = {"end_turn": "end_turn", "stop_sequence": "end_turn", "pause_turn": "end_turn"}


class AnthropicProvider:
    """Anthropic's Messages API as a `Provider`: streaming, tools and JSON output, all supported."""

    kind = "anthropic"

    def __init__(
        self,
        name: str = "anthropic",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        capabilities: frozenset[Capability] | None = None,
        headers: Mapping[str, str] | None = None,
        request_timeout: float = 60.0,
        key_variable: str | None = ANTHROPIC_KEY_VARIABLE,
    ) -> None:
        """Configure the provider; nothing is imported or connected until the first call.

        Without `base_url` the SDK reads `ANTHROPIC_BASE_URL`; without `api_key` the key comes
        from the environment variable `key_variable` when the first call needs it. With
        `key_variable` None no environment variable is read: no `api_key` means no key is sent
        (refused for Anthropic's own API, which needs one).
        """
        self.name = name
        self.capabilities = ALL_CAPABILITIES if capabilities is None else capabilities
        self.base_url = base_url
        self._api_key = api_key
        self._key_variable = key_variable
        self._headers = dict(headers or {})
        self._timeout = request_timeout
        self._lease: ClientLease[AsyncAnthropic] = ClientLease(self._make_client)

    def __repr__(self) -> str:
        """Name the provider, never its key."""
        return f"<AnthropicProvider {self.name!r}>"

    def describe(self) -> str:
        """How messages name this provider."""
        url = self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        return describe_provider(self.name, self.kind, url)

    async def complete(
        self,
        request: ChatRequest,
        *,
        timeout: float,  # noqa: ASYNC109 - the SDK's per-request timeout, not a trio deadline
        on_text: TextCallback | None = None,
        on_usage: UsageCallback | None = None,
    ) -> ChatReply:
        """Make one Messages API call (see `Provider.complete` for the rules it keeps)."""
        import anthropic

        usage: dict[str, int] = {}
        parameters = _parameters(request)
        async with self.hold() as client:
            where = describe_provider(self.name, self.kind, client.base_url)
            try:
                if request.stream:
                    message = await _stream(client, parameters, timeout, on_text, usage, where)
                else:
                    message = await client.messages.create(**parameters, timeout=timeout)
                    if not isinstance(message, anthropic.types.Message):
                        raise ProviderResponseError(
                            f"{where} answered malformed output: not a Messages API message"
                            f" but {type(message).__name__} {str(message)[:200]!r}"
                        )
                    usage.update(_usage_counts(message.usage))
                reply = self._reply(message, _usage_of(usage))
            except anthropic.APIStatusError as error:
                raise map_status_error(error, where) from error
            except (
                anthropic.APIResponseValidationError,
                ValueError,
                TypeError,
                AttributeError,
                KeyError,
            ) as error:
                # A body that is not the Messages API's: unparseable JSON or server-sent events
                # (json's ValueError), or fields of the wrong shape (the SDK builds its models
                # without validating them, so a wrong field fails when it is read).
                raise ProviderResponseError(
                    f"{where} answered malformed output: {type(error).__name__}: {error}"
                ) from error
            except anthropic.APITimeoutError as error:
                raise RetryableError(
                    f"{where} did not answer within the request timeout of {timeout:g} s"
                ) from error
            except anthropic.APIConnectionError as error:
                cause = error.__cause__ or error
                raise RetryableError(
                    f"could not reach {where}: {type(cause).__name__}: {cause}"
                ) from error
            finally:
                if usage and on_usage is not None:
                    on_usage(_usage_of(usage))
        return reply

    async def aclose(self) -> None:
        """Nothing to do: the client never outlives its last holder (`hold` closes it then).

        A call or holder in flight keeps its client until it ends, then closes it; dropping the
        client here instead would leave it to no one (the same rule as `OpenAIProvider`).
        """

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[AsyncAnthropic]:
        """Keep one client open for the calls inside this block; closed when the last holder ends.

        Raises:
            MissingAPIKeyError: no test hook is active and no API key is configured.
        """
        async with self._lease.hold() as client:
            yield client

    def _make_client(self) -> AsyncAnthropic:
        factory = anthropic_client_factory()
        if factory is not None:
            return factory()
        key = self._api_key
        if not key and self._key_variable is not None:
            key = os.environ.get(self._key_variable)
            if not key:
                raise MissingAPIKeyError(
                    f"{self.describe()} has no API key; set the {self._key_variable} environment"
                    " variable (no key was found there or in the configuration)"
                )
        if not key and self._official():
            raise MissingAPIKeyError(
                f"{self.describe()} has no API key: a provider declared in a config file or a"
                ' workflow gets only the key its spec names; give it "api_key":'
                ' "${env.NAME}" or "${secrets.NAME}"'
            )
        import anthropic

        headers: dict[str, Any] = dict(self._headers)
        if not key:
            # An explicit (empty) key stops the SDK reading ANTHROPIC_API_KEY and its other
            # credential sources; omitting the header sends no credential at all.
            headers["Authorization"] = anthropic.Omit()
        options: dict[str, Any] = {
            "api_key": key or "",
            "max_retries": 0,
            "timeout": self._timeout,
        }
        if self.base_url is not None:
            options["base_url"] = self.base_url
        if headers:
            options["default_headers"] = headers
        return anthropic.AsyncAnthropic(**options)

    def _official(self) -> bool:
        """Whether calls go to Anthropic's own API (no `base_url`: it or `ANTHROPIC_BASE_URL`)."""
        return self.base_url is None or urlsplit(self.base_url).hostname == "api.anthropic.com"

    def _reply(self, message: Message, usage: Usage) -> ChatReply:
        """The neutral reply of a Messages API message."""
        blocks = _content_blocks(message)
        calls = tuple(
            ToolCall(str(b["id"]), str(b["name"]), dict(b.get("input") or {}))
            for b in blocks
            if b.get("type") == "tool_use"
        )
        text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        stop = message.stop_reason or "end_turn"
        return ChatReply(
            text=text,
            tool_calls=calls,
            stop_reason=_STOP_REASONS.get(stop, stop),
            model=message.model,
            usage=usage,
            provider=self.name,
            assistant_message=ChatMessage("assistant", tuple(blocks)),
        )


async def _stream(
    client: AsyncAnthropic,
    parameters: Mapping[str, Any],
    timeout: float,  # noqa: ASYNC109 - the SDK's per-request timeout
    on_text: TextCallback | None,
    usage: dict[str, int],
    where: str,
) -> Message:
    """Stream one call, passing text deltas on and filling `usage` as the counts arrive."""
    started = False
    async with client.messages.stream(**parameters, timeout=timeout) as stream:
        async for event in stream:
            if event.type == "text":
                if on_text is not None and event.text:
                    on_text(event.text)
            elif event.type == "message_start":
                started = True
                usage.update(_usage_counts(event.message.usage))
            elif event.type == "message_delta":
                usage["output_tokens"] = event.usage.output_tokens or 0
                if event.usage.input_tokens is not None:
                    usage["input_tokens"] = event.usage.input_tokens
        if not started:
            kind = stream.response.headers.get("content-type", "no content type")
            raise ProviderResponseError(
                f"{where} answered a streaming request without a message stream "
                f"(content type {kind!r}); is the base URL an Anthropic Messages API?"
            )
        return await stream.get_final_message()


def _parameters(request: ChatRequest) -> dict[str, Any]:
    """The Messages API parameters of a neutral request."""
    parameters: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [message.to_json() for message in request.messages],
    }
    if request.system:
        parameters["system"] = request.system
    if request.temperature is not None:
        # anthropic 2.x no longer has a `temperature` argument; the API still reads the field.
        parameters["extra_body"] = {"temperature": request.temperature}
    if request.tools:
        parameters["tools"] = [
            {"name": tool.name, "input_schema": dict(tool.input_schema)}
            | ({"description": tool.description} if tool.description else {})
            for tool in request.tools
        ]
    return parameters


def _usage_counts(usage: Any) -> dict[str, int]:
    """The counts of an SDK usage object; cache reads and writes are part of the input."""
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    counts = {
        "input_tokens": (usage.input_tokens or 0) + read + written,
        "output_tokens": usage.output_tokens or 0,
    }
    if read:
        counts["cached_input_tokens"] = read
    return counts


def _usage_of(counts: Mapping[str, int]) -> Usage:
    return Usage(
        input_tokens=counts.get("input_tokens", 0),
        output_tokens=counts.get("output_tokens", 0),
        cached_input_tokens=counts.get("cached_input_tokens", 0),
    )


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    """The reply's content blocks as the next request sends them back (SDK-only fields off)."""
    blocks: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
        else:
            data = block.to_dict()
            data.pop("parsed_output", None)
            blocks.append(data)
    return blocks


def map_status_error(
    error: Any, provider: str = "the Anthropic API"
) -> ProviderUnavailableError | ProviderRefusedError:
    """Map an `anthropic.APIStatusError` onto the retry classification, with a clear message.

    The error carries the HTTP status as `status` (None for an error event inside a stream),
    which fallback reads.

    408, 409, 429 and 5xx (529 is "overloaded") are retryable, other 4xx are not; an error event
    in the middle of a stream (the HTTP status was 200) is judged by its error type. The
    `x-should-retry` header, when the API sends it, has the last word.
    """
    status: int = error.status_code
    kind: str | None = error.type
    headers = error.response.headers
    message = error.api_message or str(error)
    where = f"error {status}" if status >= 400 else "error while streaming"
    text = f"{provider}: {where} ({kind or 'unknown type'}): {message}"
    if error.request_id:
        text += f" [request-id {error.request_id}]"
    if status == 401:
        text += f"; check the API key in {ANTHROPIC_KEY_VARIABLE}"
    if status >= 400:
        retryable = status in _RETRYABLE_STATUSES or status >= 500
    else:
        retryable = kind in _RETRYABLE_TYPES
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    code = status if status >= 400 else None
    if retryable:
        return ProviderUnavailableError(text, status=code, retry_after=retry_after_seconds(headers))
    return ProviderRefusedError(text, status=code)


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
