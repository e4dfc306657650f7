"""`OpenAIProvider`: models behind any OpenAI-compatible Chat Completions API, one client each.

OpenAI itself, Azure OpenAI, and local servers (Ollama, vLLM, llama.cpp, LM Studio) speak the
same API; a provider is one of them, named in the catalog (`openai`, `local`, ...). It talks
through the official `openai` SDK (the optional extra ``orchestr8[openai]``, imported only when
the first call makes the client) with ``max_retries=0``, since the step's resilience policy is
the only retry layer. The client is made lazily (the `use_openai_client` test hook wins when set),
shared by the calls in flight and the holders of `hold()`, and closed after the last of them.

A call streams when the request asks (``stream_options.include_usage`` so the server reports
usage), reading the server-sent events itself: the SDK's own stream iterator stops at
``[DONE]`` and leaves its async generators to the garbage collector, which trio reports. Usage is
passed to `on_usage` once, as soon as it is known, even when the call then fails; a server that
sends none gets an estimate (``estimated=True``, `estimate_tokens` of the prompt's and the
reply's characters).
Every SDK error becomes a `RetryableError` (429, 408, 409, 5xx, connection failures, timeouts,
with the server's ``retry-after``) or a `NonRetryableError` (other 4xx), and malformed output a
`ProviderResponseError`, each message naming the provider and its base URL. Keys never appear
in a message.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from .._errors import (
    MissingAPIKeyError,
    MissingPackageError,
    NonRetryableError,
    ProviderRefusedError,
    ProviderResponseError,
    ProviderUnavailableError,
    RetryableError,
)
from ..testing._openai_hook import openai_client_factory
from ._anthropic_provider import retry_after_seconds
from ._chat import ALL_CAPABILITIES, Capability, ChatReply, ChatRequest, Usage, estimate_tokens
from ._client_lease import ClientLease
from ._openai_messages import chat_completion_body
from ._openai_replies import StreamedCompletion, completion_reply, reply_characters, usage_of
from ._provider import TextCallback, UsageCallback, describe_provider

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "NO_KEY",
    "OFFICIAL_BASE_URL",
    "OPENAI_KEY_VARIABLE",
    "OpenAIProvider",
    "require_openai",
]

OPENAI_KEY_VARIABLE = "OPENAI_API_KEY"
"""Where the key of OpenAI's own API comes from when the provider is given none."""

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
"""OpenAI's own API, used when neither the provider nor `OPENAI_BASE_URL` names another."""

NO_KEY = "no-key-needed"
"""The key sent to a server that needs none (local servers ignore it; the SDK insists on one)."""

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_NOT_RETRYABLE_STREAM_ERRORS = frozenset({"invalid_request_error", "invalid_api_key"})
_DRAIN_TIMEOUT = 1.0


def require_openai(provider: str = "openai") -> None:
    """Check that the `openai` package is installed, without importing it (validation stays fast).

    Raises:
        MissingPackageError: it is not installed (an `AgentConfigurationError`, not retried);
            the message names the provider and what to install.
    """
    if importlib.util.find_spec("openai") is None:
        raise MissingPackageError(
            f"provider {provider!r} is of kind openai, which needs the openai package: "
            "pip install 'orchestr8[openai]'"
        )


def _is_official(base_url: str) -> bool:
    return urlsplit(base_url).hostname == "api.openai.com"


class OpenAIProvider:
    """One OpenAI-compatible Chat Completions server as a `Provider` (see the module docstring)."""

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
        key_variable: str | None = OPENAI_KEY_VARIABLE,
    ) -> None:
        """Configure the provider; nothing is imported or connected until the first call.

        `base_url` None means `OPENAI_BASE_URL`, else OpenAI's own API; either needs a key, as
        does any `base_url` on api.openai.com. The key is `api_key`, else the environment
        variable `key_variable` (None: none is read; the catalog passes None for every provider
        but the built-in `openai`, so a declared provider gets only its own key). A server that
        needs no key gets a placeholder when there is none (local servers ignore it).
        `capabilities` None means all of them; `headers` go with every request.
        """
        self.name = name
        self.capabilities = ALL_CAPABILITIES if capabilities is None else capabilities
        url = base_url or os.environ.get("OPENAI_BASE_URL") or OFFICIAL_BASE_URL
        self.base_url = url.rstrip("/")
        self._needs_key = base_url is None or _is_official(url)
        self._api_key = api_key
        self._key_variable = key_variable
        self._headers = dict(headers or {})
        self._timeout = request_timeout
        self._lease: ClientLease[AsyncOpenAI] = ClientLease(self._make_client)

    def __repr__(self) -> str:
        """Name the provider and its server, never its key."""
        return f"<OpenAIProvider {self.name!r} at {self.base_url}>"

    def describe(self) -> str:
        """How messages name this provider: ``provider 'local' (openai at http://...)``."""
        return describe_provider(self.name, self.kind, self.base_url)

    # -- the client -----------------------------------------------------------------------------

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[AsyncOpenAI]:
        """Keep one client open for the calls inside this block; closed when the last holder ends.

        Raises:
            MissingPackageError: the `openai` package is not installed.
            MissingAPIKeyError: OpenAI's own API and no key in the config or `OPENAI_API_KEY`.
        """
        async with self._lease.hold() as client:
            yield client

    async def aclose(self) -> None:
        """Nothing to do: the client never outlives its last holder (`hold` closes it then).

        A call or holder in flight keeps its client until it ends, then closes it; dropping the
        client here instead would leave it to no one.
        """

    def _make_client(self) -> AsyncOpenAI:
        factory = openai_client_factory()
        if factory is not None:
            return factory()
        require_openai(self.name)
        key = self._api_key
        if not key and self._needs_key:
            if self._key_variable is None:
                raise MissingAPIKeyError(
                    f"{self.describe()} has no API key: a provider declared in a config file or"
                    ' a workflow gets only the key its spec names; give it "api_key":'
                    ' "${env.NAME}" or "${secrets.NAME}"'
                )
            key = os.environ.get(self._key_variable)
            if not key:
                raise MissingAPIKeyError(
                    f"{self.describe()} has no API key; set the {self._key_variable} "
                    "environment variable (no key was found there or in the configuration)"
                )
        import openai

        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=key or NO_KEY,
            max_retries=0,
            timeout=self._timeout,
        )

    # -- a call ---------------------------------------------------------------------------------

    async def complete(
        self,
        request: ChatRequest,
        *,
        timeout: float,  # noqa: ASYNC109 - the SDK's per-request timeout, not a trio deadline
        on_text: TextCallback | None = None,
        on_usage: UsageCallback | None = None,
    ) -> ChatReply:
        """Make one Chat Completions call (see `Provider.complete` for the rules it keeps)."""
        import httpx2
        import openai

        body = chat_completion_body(
            request, capabilities=self.capabilities, official_api=_is_official(self.base_url)
        )
        call = _Call(self.name, self.describe(), request, on_text, on_usage)
        async with self.hold() as client:
            try:
                async with client.chat.completions.with_streaming_response.create(
                    **body, timeout=timeout, extra_headers=self._headers or None
                ) as response:
                    if request.stream:
                        return await call.read_stream(response)
                    return call.read_completion(await response.read())
            except openai.APIStatusError as error:
                raise self._status_error(error) from error
            except openai.APITimeoutError as error:
                raise RetryableError(
                    f"{self.describe()} did not answer within the request timeout of {timeout:g} s"
                ) from error
            except openai.APIConnectionError as error:
                cause = error.__cause__ or error
                raise RetryableError(
                    f"could not reach {self.describe()}: {type(cause).__name__}: {cause}"
                ) from error
            except httpx2.TransportError as error:
                # The SDK wraps errors of sending, not of reading the body: a server that drops
                # the connection mid-reply surfaces here, and is as retryable as a refusal.
                raise RetryableError(
                    f"could not reach {self.describe()}: the connection broke while the reply "
                    f"was read: {type(error).__name__}: {error}"
                ) from error

    def _status_error(self, error: Any) -> ProviderUnavailableError | ProviderRefusedError:
        """Map an `openai.APIStatusError` onto the retry classification, with a clear message.

        408, 409, 429 and 5xx are retryable (with the server's `retry-after`), other 4xx are
        not; the `x-should-retry` header, when the server sends it, has the last word.
        """
        status: int = error.status_code
        body = error.body if isinstance(error.body, dict) else {}
        kind = "/".join(str(p) for p in (body.get("type"), body.get("code")) if p)
        message = body.get("message") or error.message
        text = f"{self.describe()}: error {status} ({kind or 'unknown type'}): {message}"
        if error.request_id:
            text += f" [request-id {error.request_id}]"
        if status == 401 and self._needs_key and not self._api_key and self._key_variable:
            text += f"; check the API key in {self._key_variable}"
        headers = error.response.headers
        retryable = status in _RETRYABLE_STATUSES or status >= 500
        should_retry = headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        if retryable:
            return ProviderUnavailableError(
                text, status=status, retry_after=retry_after_seconds(headers)
            )
        return ProviderRefusedError(text, status=status)


class _Call:
    """One call's reading of the answer: the usage reported once, malformed output named."""

    def __init__(
        self,
        provider: str,
        where: str,
        request: ChatRequest,
        on_text: TextCallback | None,
        on_usage: UsageCallback | None,
    ) -> None:
        self._provider = provider
        self._where = where
        self._request = request
        self._on_text = on_text
        self._on_usage = on_usage
        self._reported = False

    def problem(self, what: str) -> ProviderResponseError:
        """The error for malformed output: the provider and what was wrong."""
        return ProviderResponseError(f"{self._where} answered malformed output: {what}")

    def report(self, usage: Usage) -> Usage:
        """Pass `usage` to `on_usage` unless a usage was reported already; return it."""
        if not self._reported:
            self._reported = True
            if self._on_usage is not None:
                self._on_usage(usage)
        return usage

    def estimate(self, output_characters: int) -> Usage:
        """The usage worked out from characters, for a server that sent none."""
        return Usage(
            input_tokens=self._request.estimated_input_tokens(),
            output_tokens=estimate_tokens(output_characters),
            estimated=True,
        )

    async def read_stream(self, response: Any) -> ChatReply:
        """Read a streamed answer line by line into the reply."""
        reader = StreamedCompletion(self.problem, model=self._request.model, on_text=self._on_text)
        failure: RetryableError | NonRetryableError | None = None
        lines = response.iter_lines()
        try:
            async with aclosing(lines):
                async for line in lines:
                    try:
                        error = reader.feed(line)
                    except ProviderResponseError as malformed:
                        failure = malformed
                        break
                    if error is not None:
                        failure = self._stream_error(error)
                        break
                    if reader.usage is not None:
                        self.report(reader.usage)
                if failure is not None:
                    # Read the rest for a moment: a body left half-read leaves the HTTP client's
                    # async generators to the garbage collector (cancelling the read ends them).
                    with trio.move_on_after(_DRAIN_TIMEOUT):
                        async for _ in lines:
                            pass
        finally:
            usage = self.report(reader.usage or self.estimate(reader.output_characters))
        if failure is not None:
            raise failure
        return reader.reply(self._provider, usage)

    def read_completion(self, content: bytes) -> ChatReply:
        """Read a whole JSON answer into the reply."""
        try:
            body = json.loads(content)
        except ValueError:
            self.report(self.estimate(0))
            text = content[:200].decode(errors="replace")
            raise self.problem(f"the completion is not JSON: {text!r}") from None
        usage_field = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage_field, dict):
            usage = self.report(usage_of(usage_field))
        else:
            usage = self.report(self.estimate(reply_characters(body)))
        return completion_reply(
            body, self.problem, model=self._request.model, provider=self._provider, usage=usage
        )

    def _stream_error(self, error: Mapping[str, Any]) -> RetryableError | NonRetryableError:
        kind = str(error.get("type") or error.get("code") or "unknown type")
        text = f"{self._where}: error while streaming ({kind}): {error.get('message')}"
        if kind in _NOT_RETRYABLE_STREAM_ERRORS:
            return ProviderRefusedError(text, status=None)
        return ProviderUnavailableError(text, status=None)
