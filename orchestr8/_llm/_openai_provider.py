"""`OpenAIProvider`: models behind any OpenAI-compatible Chat Completions API, one client each.

OpenAI itself, Azure OpenAI, and local servers (Ollama, vLLM, llama.cpp, LM Studio) speak the
same API; a provider is one of them, named in the catalog (`openai`, `local`, ...). It talks
through the official `openai` SDK (the optional extra ``orchestr8[openai]``, imported only when
the first call makes the client) with ``max_retries=0``, since the step's resilience policy is
the only retry layer. The client is made lazily, once per provider instance (the
`use_openai_client` test hook wins when set), and closed by `aclose`.

A call streams when the request asks (``stream_options.include_usage`` so the server reports
usage), reading the server-sent events itself: the SDK's own stream iterator stops at
``[DONE]`` and leaves its async generators to the garbage collector, which trio reports. Usage is
passed to `on_usage` once, as soon as it is known, even when the call then fails; a server that
sends none gets an estimate (``estimated=True``, characters / 4 of the prompt and the reply).
Every SDK error becomes a `RetryableError` (429, 408, 409, 5xx, connection failures, timeouts,
with the server's ``retry-after``) or a `NonRetryableError` (other 4xx), and malformed output a
`ProviderResponseError`, each message naming the provider and its base URL. Keys never appear
in a message.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from .._errors import (
    AgentConfigurationError,
    NonRetryableError,
    ProviderResponseError,
    RetryableError,
)
from ..testing._openai_hook import openai_client_factory
from ._chat import Capability, ChatReply, ChatRequest, Usage
from ._openai_messages import chat_completion_body, estimate_prompt_characters
from ._openai_replies import StreamedCompletion, completion_reply, usage_of
from ._retry_after import retry_after_seconds

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "OPENAI_API_KEY_VARIABLE",
    "MissingOpenAIKeyError",
    "OpenAIProvider",
    "require_openai",
]

OPENAI_API_KEY_VARIABLE = "OPENAI_API_KEY"
"""Where the key of OpenAI's own API comes from when the provider is given none."""

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
"""OpenAI's own API, used when neither the provider nor `OPENAI_BASE_URL` names another."""

NO_KEY = "no-key-needed"
"""The key sent to a server that needs none (local servers ignore it; the SDK insists on one)."""

ALL_CAPABILITIES = frozenset(Capability)
"""What an OpenAI-compatible server is assumed to support unless its spec says otherwise."""

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_NOT_RETRYABLE_STREAM_ERRORS = frozenset({"invalid_request_error", "invalid_api_key"})
_CLOSE_TIMEOUT = 5.0
_CHARACTERS_PER_TOKEN = 4


class MissingOpenAIKeyError(AgentConfigurationError, NonRetryableError):
    """OpenAI's own API needs a key and none is configured; another attempt cannot find one."""


def require_openai(provider: str = "openai") -> None:
    """Check that the `openai` package is installed, without importing it (validation stays fast).

    Raises:
        AgentConfigurationError: it is not installed; the message says what to install.
    """
    if importlib.util.find_spec("openai") is None:
        raise AgentConfigurationError(
            f"provider {provider!r} (kind openai) needs the openai package, which is not "
            "installed: pip install 'orchestr8[openai]'"
        )


def _is_official(base_url: str) -> bool:
    return urlsplit(base_url).hostname == "api.openai.com"


class OpenAIProvider:
    """One OpenAI-compatible server: `complete` makes a Chat Completions call on it."""

    kind = "openai"

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None,
        api_key: str | None,
        capabilities: frozenset[Capability] | None = None,
        headers: Mapping[str, str] | None = None,
        request_timeout: float = 60.0,
    ) -> None:
        """Name the provider and its server; nothing is imported or connected until a call.

        `base_url` None means `OPENAI_BASE_URL`, else OpenAI's own API, which needs a key:
        `api_key`, else `OPENAI_API_KEY`. Any other server needs a key only if it says so (a
        placeholder is sent otherwise). `capabilities` None means all of them; `headers` are
        sent with every request.
        """
        self.name = name
        self.capabilities = ALL_CAPABILITIES if capabilities is None else capabilities
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OFFICIAL_BASE_URL).rstrip(
            "/"
        )
        self._api_key = api_key
        self._headers = dict(headers or {})
        self._request_timeout = request_timeout
        self._client: AsyncOpenAI | None = None

    def __repr__(self) -> str:
        """The name and the server, never the key."""
        return f"OpenAIProvider({self.name!r}, base_url={self.base_url!r})"

    @property
    def description(self) -> str:
        """How messages name the provider: ``provider 'local' (openai at http://...)``."""
        return f"provider {self.name!r} (openai at {self.base_url})"

    # -- the client -----------------------------------------------------------------------------

    def _make_client(self) -> AsyncOpenAI:
        factory = openai_client_factory()
        if factory is not None:
            return factory()
        require_openai(self.name)
        key = self._api_key
        if not key and _is_official(self.base_url):
            key = os.environ.get(OPENAI_API_KEY_VARIABLE)
            if not key:
                raise MissingOpenAIKeyError(
                    f"{self.description} has no API key; set the {OPENAI_API_KEY_VARIABLE} "
                    "environment variable (or the provider's api_key to a ${secrets.NAME} "
                    "reference)"
                )
        import openai

        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=key or NO_KEY,
            max_retries=0,
            timeout=self._request_timeout,
            default_headers=self._headers or None,
        )

    def _client_for_call(self) -> AsyncOpenAI:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    async def aclose(self) -> None:
        """Close the client, if one was made (shielded and bounded, so it always ends)."""
        client, self._client = self._client, None
        if client is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                await client.close()

    # -- a call ---------------------------------------------------------------------------------

    def _problem(self, what: str) -> ProviderResponseError:
        return ProviderResponseError(f"{self.description} answered malformed output: {what}")

    async def complete(
        self,
        request: ChatRequest,
        *,
        timeout: float,  # noqa: ASYNC109 - the SDK's per-request timeout, not a trio deadline
        on_text: Callable[[str], None] | None = None,
        on_usage: Callable[[Usage], None] | None = None,
    ) -> ChatReply:
        """Make one Chat Completions call; stream it when `request.stream`.

        Raises:
            RetryableError: a rate limit, a server or connection error, a timeout, an error
                chunk in the stream; `ProviderResponseError` for malformed output.
            NonRetryableError: any other API error (bad request, authentication, not found).
            AgentConfigurationError: the `openai` package is missing, or OpenAI's key.
        """
        import openai

        client = self._client_for_call()
        body = chat_completion_body(
            request, capabilities=self.capabilities, official_api=_is_official(self.base_url)
        )
        prompt_characters = estimate_prompt_characters(body)
        usage_sent: list[Usage] = []

        def report(usage: Usage) -> None:
            if not usage_sent:
                usage_sent.append(usage)
                if on_usage is not None:
                    on_usage(usage)

        def estimate(output_characters: int) -> Usage:
            return Usage(
                input_tokens=-(-prompt_characters // _CHARACTERS_PER_TOKEN),
                output_tokens=-(-output_characters // _CHARACTERS_PER_TOKEN),
                estimated=True,
            )

        raw = client.chat.completions.with_streaming_response
        try:
            async with raw.create(**body, timeout=timeout) as response:
                if request.stream:
                    reader = StreamedCompletion(self._problem, model=request.model, on_text=on_text)
                    try:
                        await self._read_stream(response, reader, report)
                    finally:
                        report(reader.usage or estimate(reader.output_characters))
                    return reader.reply(self.name, usage_sent[0])
                return await self._read_completion(response, request, report, estimate)
        except openai.APIStatusError as error:
            raise self._status_error(error) from error
        except openai.APITimeoutError as error:
            raise RetryableError(
                f"{self.description} did not answer within the request timeout of {timeout:g} s"
            ) from error
        except openai.APIConnectionError as error:
            cause = error.__cause__ or error
            raise RetryableError(
                f"{self.description} could not be reached: {type(cause).__name__}: {cause}"
            ) from error

    async def _read_stream(
        self, response: Any, reader: StreamedCompletion, report: Callable[[Usage], None]
    ) -> None:
        async with aclosing(response.iter_lines()) as lines:
            async for line in lines:
                error = reader.feed(line)
                if error is not None:
                    raise self._stream_error(error)
                if reader.usage is not None:
                    report(reader.usage)

    async def _read_completion(
        self,
        response: Any,
        request: ChatRequest,
        report: Callable[[Usage], None],
        estimate: Callable[[int], Usage],
    ) -> ChatReply:
        content = await response.read()
        try:
            body = json.loads(content)
        except ValueError:
            report(estimate(0))
            raise self._problem(
                f"the completion is not JSON: {content[:200].decode(errors='replace')!r}"
            ) from None
        usage_field = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage_field, dict):
            usage = usage_of(usage_field)
        else:
            message = (body.get("choices") or [{}])[0] if isinstance(body, dict) else {}
            text = json.dumps(message, ensure_ascii=False) if isinstance(message, dict) else ""
            usage = estimate(len(text))
        report(usage)
        return completion_reply(
            body, self._problem, model=request.model, provider=self.name, usage=usage
        )

    # -- errors ---------------------------------------------------------------------------------

    def _stream_error(self, error: Mapping[str, Any]) -> RetryableError | NonRetryableError:
        kind = error.get("type") or error.get("code") or "unknown type"
        text = f"{self.description}: error while streaming ({kind}): {error.get('message')}"
        if kind in _NOT_RETRYABLE_STREAM_ERRORS:
            return NonRetryableError(text)
        return RetryableError(text)

    def _status_error(self, error: Any) -> RetryableError | NonRetryableError:
        """Map an `openai.APIStatusError` onto the retry classification, with a clear message.

        408, 409, 429 and 5xx are retryable (with the server's `retry-after`), other 4xx are
        not; the `x-should-retry` header, when the server sends it, has the last word.
        """
        status: int = error.status_code
        body = error.body if isinstance(error.body, dict) else {}
        kind = "/".join(str(p) for p in (body.get("type"), body.get("code")) if p) or "no type"
        message = body.get("message") or error.message
        text = f"{self.description}: error {status} ({kind}): {message}"
        if error.request_id:
            text += f" [request-id {error.request_id}]"
        if status == 401 and _is_official(self.base_url) and not self._api_key:
            text += f"; check the API key in {OPENAI_API_KEY_VARIABLE}"
        headers = error.response.headers
        retryable = status in _RETRYABLE_STATUSES or status >= 500
        should_retry = headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        if retryable:
            return RetryableError(text, retry_after=retry_after_seconds(headers))
        return NonRetryableError(text)
