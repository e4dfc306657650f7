"""The `http` agent: one HTTP request per attempt, with the response mapped to retry semantics.

The agent is built from a validated config (see `docs/http.md`) and makes its request with httpx,
which runs on trio through anyio. A request is bounded by the attempt's deadline
(`context.deadline`, on the trio clock) and by the config's `timeout`, whichever comes first.
Outcomes map onto the resilience pipeline: 408, 429, 5xx, connection errors and timeouts raise
`RetryableError` (with `retry_after` from a `Retry-After` header, in seconds or as an HTTP date);
any other 4xx raises `NonRetryableError` naming the status and a short excerpt of the body.

Header values that look secret (`Authorization`, names containing `token`, `key`, `secret`,
`cookie`, `password`) never appear in errors, logs or events: messages are scrubbed of them.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from typing import Any, ClassVar, Final, cast

import httpx
import trio

from orchestr8 import (
    Agent,
    AgentConfigurationError,
    AgentContext,
    NonRetryableError,
    RetryableError,
    __version__,
)

__all__ = [
    "HttpAgent",
    "excerpt",
    "is_secret_header",
    "parse_retry_after",
    "read_bounded",
    "redact_url",
    "scrub",
]

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_MAX_BYTES: Final = 1024 * 1024
DEFAULT_RESPONSE_HEADERS: Final = (
    "content-type",
    "etag",
    "last-modified",
    "location",
    "retry-after",
)
RETRYABLE_STATUSES: Final = frozenset({408, 429})
EXCERPT_CHARS: Final = 200
DRAIN_LIMIT: Final = 8 * 1024 * 1024
REDACTED: Final = "[redacted]"

_USER_AGENT: Final = f"orchestr8-http/{__version__}"
_SECRET_WORDS: Final = ("authorization", "token", "key", "secret", "cookie", "password", "auth")
_HEADER_NAME: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_JSON_TYPE: Final = re.compile(r"^application/(?:[\w.+-]+\+)?json$")


def is_secret_header(name: str) -> bool:
    """Whether a header (or query parameter) name suggests its value is a credential."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP date; else `None`.

    Args:
        value: the header value.
        now: the current wall-clock time (`time.time()` by default), for HTTP dates.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


class HttpAgent(Agent):
    """Calls an HTTP endpoint and returns `{"status", "headers", "json", "text"}`."""

    config_keys: ClassVar[frozenset[str] | None] = frozenset(
        {
            "method",
            "url",
            "headers",
            "headers_from_env",
            "params",
            "json",
            "timeout",
            "response_headers",
            "max_bytes",
            "follow_redirects",
            "idempotency_key",
        }
    )

    def __init__(
        self, config: Mapping[str, Any], *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        """Validate `config`; `transport` replaces the network (tests, embedding programs).

        Raises:
            AgentConfigurationError: an unknown key or a value of the wrong kind or range.
        """
        super().__init__(config)
        self._transport = transport
        method = self.config.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise AgentConfigurationError(
                f"method must be one of {', '.join(sorted(METHODS))}, got {method!r}"
            )
        self.method: str = method.upper()
        url = self.config.get("url")
        self.url: str | None = None if url is None else _checked_url(url, AgentConfigurationError)
        self.headers: dict[str, str] = _checked_headers(
            self.config.get("headers", {}), "headers", AgentConfigurationError
        )
        self.headers_from_env = _checked_headers(
            self.config.get("headers_from_env", {}), "headers_from_env", AgentConfigurationError
        )
        self.params: dict[str, Any] = _checked_params(
            self.config.get("params", {}), "params", AgentConfigurationError
        )
        self.has_json = "json" in self.config
        if self.has_json and self.method not in BODY_METHODS:
            raise AgentConfigurationError(f"json is a request body, which {self.method} has not")
        self.timeout = _positive_number(self.config.get("timeout"), "timeout")
        max_bytes = self.config.get("max_bytes", DEFAULT_MAX_BYTES)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise AgentConfigurationError(f"max_bytes must be an integer >= 1, got {max_bytes!r}")
        self.max_bytes: int = max_bytes
        self.response_headers = _checked_names(
            self.config.get("response_headers", DEFAULT_RESPONSE_HEADERS)
        )
        self.follow_redirects = _flag(self.config, "follow_redirects", False)
        self.idempotency_key = _flag(self.config, "idempotency_key", True)

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Make the request described by the config and `input`; return the response as JSON.

        Raises:
            RetryableError: 408, 429 or 5xx, a connection error, or a timeout.
            NonRetryableError: another 4xx, an invalid request input, a body over `max_bytes`.
        """
        request = self._request(input, context)
        secrets = [value for name, value in request.headers.items() if is_secret_header(name)]
        where = f"{request.method} {redact_url(request.url)}"
        now = trio.current_time()
        # The step policy's timeout reaches the agent as the attempt's deadline (the context's,
        # or the cancel scope the attempt runs in); the config's `timeout` may bound the request
        # more tightly, and is the bound when there is no deadline at all.
        deadline = min(context.deadline, trio.current_effective_deadline())
        limit = self.timeout
        if limit is None:
            limit = math.inf if math.isfinite(deadline) else DEFAULT_TIMEOUT
        bound = min(deadline, now + limit)
        with trio.move_on_at(bound):
            try:
                async with httpx.AsyncClient(
                    transport=self._transport,
                    timeout=None,
                    trust_env=False,
                    follow_redirects=self.follow_redirects,
                ) as client:
                    return await self._send(client, request, where, secrets)
            except httpx.TimeoutException as error:
                message, retryable = f"{where} timed out: {_describe(error)}", True
            except (httpx.UnsupportedProtocol, httpx.TooManyRedirects) as error:
                message, retryable = f"{where} failed: {_describe(error)}", False
            except httpx.TransportError as error:
                message, retryable = f"{where} failed: {_describe(error)}", True
            if retryable:
                raise RetryableError(scrub(message, secrets))
            raise NonRetryableError(scrub(message, secrets))
        raise RetryableError(f"{where} timed out after {bound - now:.3g} s")

    def _request(self, input: Any, context: AgentContext) -> httpx.Request:
        """Build the request from the config, overlaid by the input when `url` comes from it."""
        headers = httpx.Headers(self.headers)
        params = dict(self.params)
        body: Any = self.config.get("json") if self.has_json else input
        has_body = self.method in BODY_METHODS and (self.has_json or input is not None)
        url = self.url
        if url is None:
            if not isinstance(input, Mapping) or "url" not in input:
                raise NonRetryableError(
                    "the http agent has no url in its config, so its input must be an object "
                    "with a 'url' (and optionally 'json', 'params', 'headers')"
                )
            unknown = sorted(set(map(str, input)) - {"url", "json", "params", "headers"})
            if unknown:
                raise NonRetryableError(f"unknown request input keys: {', '.join(unknown)}")
            url = _checked_url(input["url"], NonRetryableError)
            headers.update(_checked_headers(input.get("headers", {}), "headers", NonRetryableError))
            params.update(_checked_params(input.get("params", {}), "params", NonRetryableError))
            if "json" in input:
                if self.method not in BODY_METHODS:
                    raise NonRetryableError(f"json is a request body, which {self.method} has not")
                body, has_body = input["json"], True
            else:
                body = self.config.get("json")
                has_body = self.has_json
        for name, variable in self.headers_from_env.items():
            value = os.environ.get(variable)
            if value is None:
                raise NonRetryableError(
                    f"header {name!r} comes from the environment variable {variable}, "
                    "which is not set"
                )
            headers[name] = value
        headers.setdefault("User-Agent", _USER_AGENT)
        headers.setdefault("Accept", "application/json, text/*;q=0.9, */*;q=0.8")
        if self.idempotency_key and self.method in {"POST", "PATCH"}:
            headers.setdefault("Idempotency-Key", context.idempotency_key)
        content: bytes | None = None
        if has_body:
            try:
                content = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
            except (TypeError, ValueError) as error:
                raise NonRetryableError(f"the request body is not JSON: {error}") from None
            headers.setdefault("Content-Type", "application/json")
        # Merged by hand: httpx would replace a query already in the url by `params`.
        target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
        return httpx.Request(self.method, target, headers=headers, content=content)

    async def _send(
        self, client: httpx.AsyncClient, request: httpx.Request, where: str, secrets: list[str]
    ) -> dict[str, Any]:
        """Send `request`, read at most `max_bytes` of the body and map the status."""
        response = await client.send(request, stream=True)
        try:
            body, longer = await read_bounded(response, self.max_bytes)
        finally:
            await response.aclose()
        status = response.status_code
        if status >= 400:
            raise _status_error(response, body, where, secrets)
        if longer:
            raise NonRetryableError(
                f"{where}: the response body is larger than "
                f"{self.max_bytes} bytes (raise max_bytes to accept it)"
            )
        headers = {
            name: response.headers[name]
            for name in self.response_headers
            if name in response.headers
        }
        output: dict[str, Any] = {"status": status, "headers": headers, "json": None, "text": None}
        if self.method == "HEAD":
            return output
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if body and _JSON_TYPE.match(content_type):
            try:
                output["json"] = json.loads(body)
            except ValueError as error:
                raise NonRetryableError(
                    scrub(
                        f"{where} answered {status} with a body that is not the JSON it declares "
                        f"({error}): {excerpt(body)}",
                        secrets,
                    )
                ) from None
        else:
            output["text"] = body.decode(response.encoding or "utf-8", errors="replace")
        return output


async def read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """The first `limit` bytes of a streamed body, and whether the body was longer.

    The rest is read and dropped (up to `DRAIN_LIMIT` more bytes) rather than left half-read:
    under trio, httpx's body iterators abandoned mid-way are only closed when garbage collected,
    with a `ResourceWarning`. A body announced larger than that is not read at all.
    """
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + DRAIN_LIMIT:
        return b"", True
    chunks: list[bytes] = []
    size = 0
    async with contextlib.aclosing(_generator(response.aiter_bytes())) as stream:
        async for chunk in stream:
            if size < limit:
                chunks.append(chunk[: limit - size])
            size += len(chunk)
            if size > limit + DRAIN_LIMIT:
                break
    return b"".join(chunks), size > limit


def _status_error(
    response: httpx.Response, body: bytes, where: str, secrets: list[str]
) -> RetryableError | NonRetryableError:
    status = response.status_code
    reason = response.reason_phrase or httpx.codes.get_reason_phrase(status)
    shown = excerpt(body)
    message = f"{where} answered {status} {reason}".rstrip() + (f": {shown}" if shown else "")
    message = scrub(message, secrets)
    if status in RETRYABLE_STATUSES or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RetryableError(message, retry_after=retry_after)
    return NonRetryableError(message)


def excerpt(body: bytes, limit: int = EXCERPT_CHARS) -> str:
    """The start of a response body as one line of at most `limit` characters."""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value (and the credential of `Bearer`-style values) redacted."""
    for secret in secrets:
        for part in {secret, secret.partition(" ")[2]}:
            if len(part) >= 4:
                text = text.replace(part, REDACTED)
    return text


def redact_url(url: httpx.URL | str) -> str:
    """`url` without user info, and with secret-looking query parameters redacted."""
    parsed = httpx.URL(str(url))
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    if parsed.query:
        params = [
            (name, REDACTED if is_secret_header(name) else value)
            for name, value in parsed.params.multi_items()
        ]
        parsed = parsed.copy_with(params=params)
    return str(parsed)


def _describe(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _checked_url(url: Any, error: type[Exception]) -> str:
    if not isinstance(url, str) or not url:
        raise error(f"url must be a non-empty string, got {url!r}")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as invalid:
        raise error(f"url {url!r} is not a valid URL: {invalid}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise error(f"url must be an absolute http:// or https:// URL, got {redact_url(url)!r}")
    return url


def _checked_headers(value: Any, key: str, error: type[Exception]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise error(f"{key} must be an object of strings, got {type(value).__name__}")
    headers: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise error(f"{key}: {name!r} is not a valid header name")
        # Values are never echoed: they may be secrets.
        if not isinstance(item, str) or "\r" in item or "\n" in item:
            raise error(f"{key}: the value of {name!r} must be a one-line string")
        headers[name] = item
    return headers


def _checked_params(value: Any, key: str, error: type[Exception]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise error(f"{key} must be an object, got {type(value).__name__}")
    params: dict[str, Any] = {}
    for name, item in value.items():
        items = item if isinstance(item, list) else [item]
        if not isinstance(name, str) or not all(
            isinstance(one, str | int | float | bool) for one in items
        ):
            raise error(f"{key}: {name!r} must map to a string, number, boolean or a list of them")
        params[name] = (
            [_param_text(one) for one in items] if isinstance(item, list) else _param_text(item)
        )
    return params


def _param_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _checked_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(name, str) for name in value):
        raise AgentConfigurationError("response_headers must be a list of header names")
    secret = [name for name in value if is_secret_header(name) or name.lower() == "set-cookie"]
    if secret:
        raise AgentConfigurationError(
            f"response_headers must not copy credentials into the output: {', '.join(secret)}"
        )
    return tuple(name.lower() for name in value)


def _positive_number(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise AgentConfigurationError(f"{key} must be a number of seconds above 0, got {value!r}")
    return float(value)


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise AgentConfigurationError(f"{key} must be true or false, got {value!r}")
    return value


def _generator(iterator: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """`Response.aiter_bytes()` is an async generator, though typed as an iterator."""
    return cast("AsyncGenerator[bytes, None]", iterator)
