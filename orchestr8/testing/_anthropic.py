"""`FakeAnthropic`: a scripted stand-in for the Anthropic Messages API, so LLM tests run offline.

A test scripts the replies in the order the calls will come (`reply_text`, `reply_json`,
`reply_tool_use`, `reply_error`, ...). Each `POST /v1/messages` takes the next one, answered as
the real API would: a JSON message, or, when the request asks to stream, the real server-sent
event sequence (`message_start`, `ping`, `content_block_start`, `content_block_delta` with
`text_delta` / `input_json_delta`, `content_block_stop`, `message_delta` with the usage and
stop reason, `message_stop`). Errors have the API's JSON shape and headers (`retry-after`,
`request-id`); every message carries the `anthropic-ratelimit-*` headers, counting down the
requests and tokens left, and a 429 reports none left. Every request is recorded without its
credentials.

A request the script does not cover (no reply left, another endpoint) gets a 400 error whose
message names it, and is remembered: `assert_all_used()`, which also checks that every scripted
reply was used, fails the test, and leaving ``with fake:`` calls it.

Plug it in-process through `transport` (an `httpx2.MockTransport`), `make_client()` and
`use_fake_anthropic(fake)`, or as a real loopback server with ``async with fake.serve() as
base_url:`` for subprocesses (``ANTHROPIC_BASE_URL``). The answers' wire format is built in
`_anthropic_wire`, the loopback server runs in `_anthropic_server`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from ._anthropic_hook import use_anthropic_client
from ._anthropic_server import serve_on_loopback
from ._anthropic_wire import (
    REQUEST_LIMIT,
    TOKEN_LIMIT,
    ScriptedReply,
    WireResponse,
    error_response,
    message_response,
    rate_limit_headers,
)
from ._scripted_fake import ScriptedFake

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = [
    "FAKE_API_KEY",
    "FAKE_BASE_URL",
    "AnthropicRequest",
    "FakeAnthropic",
    "use_fake_anthropic",
]

FAKE_BASE_URL = "http://fake-anthropic.invalid"
"""The base URL of clients made by `FakeAnthropic.make_client` (never resolved: no network)."""

FAKE_API_KEY = "sk-ant-fake-test-key"
"""The API key clients made by `FakeAnthropic.make_client` send."""

_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})
_MESSAGES_PATH = "/v1/messages"


@attrs.frozen
class AnthropicRequest:
    """A request the fake received; `headers` are lower-case and never hold credentials."""

    method: str
    path: str
    headers: Mapping[str, str]
    json: Any
    """The parsed JSON body (None when the body is empty or not JSON)."""
    has_credentials: bool
    """Whether the request carried an API key (`x-api-key` or `Authorization`)."""

    @property
    def stream(self) -> bool:
        """Whether the request asked for a streamed reply."""
        return isinstance(self.json, Mapping) and self.json.get("stream") is True

    def describe(self) -> str:
        """A short description for failure messages: method, path, model and last message."""
        text = f"{self.method} {self.path}"
        body = self.json if isinstance(self.json, Mapping) else {}
        if "model" in body:
            text += f" (model {body['model']!r}"
            messages = body.get("messages")
            if isinstance(messages, list) and messages:
                content = json.dumps(messages[-1].get("content"), ensure_ascii=False)
                text += f", last message {content[:80]}"
            text += ")"
        return text


class FakeAnthropic(ScriptedFake[ScriptedReply, AnthropicRequest]):
    """A scripted fake of the Anthropic Messages API; see the module docstring for the tour."""

    def __init__(self, *, chunk_size: int = 10, delay: float = 0.0) -> None:
        """Stream text in deltas of `chunk_size` characters, `delay` seconds apart by default."""
        super().__init__(
            name="FakeAnthropic",
            chunk_size=chunk_size,
            delay=delay,
            credential_headers=_CREDENTIAL_HEADERS,
            request_factory=AnthropicRequest,
        )

    # -- scripting ------------------------------------------------------------------------------

    def reply_message(
        self,
        content: Sequence[Mapping[str, Any]],
        *,
        stop_reason: str = "end_turn",
        input_tokens: int = 10,
        output_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        model: str | None = None,
        chunk_size: int | None = None,
        delay: float | None = None,
    ) -> None:
        """Script a reply with these content blocks (`model` defaults to the request's).

        `output_tokens` defaults to a quarter of the characters in the content, at least 1. The
        prompt-cache counts, when given, go into the usage (of the message, and of
        `message_start` when streamed), as the API reports a cache hit or write.
        """
        blocks = [dict(block) for block in content]
        if output_tokens is None:
            output_tokens = max(1, len(json.dumps(blocks)) // 4)
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        if cache_creation_input_tokens is not None:
            usage["cache_creation_input_tokens"] = cache_creation_input_tokens
        if cache_read_input_tokens is not None:
            usage["cache_read_input_tokens"] = cache_read_input_tokens
        message = {
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        kinds = ", ".join(block.get("type", "?") for block in blocks) or "empty"
        self._replies.append(
            ScriptedReply(
                f"message ({kinds})",
                message=message,
                chunk_size=chunk_size or self.chunk_size,
                delay=self.delay if delay is None else delay,
            )
        )

    def reply_text(self, text: str, **options: Any) -> None:
        """Script a plain text reply; `options` are those of `reply_message`."""
        self.reply_message([{"type": "text", "text": text}], **options)

    def reply_json(self, value: Any, *, fenced: bool = False, **options: Any) -> None:
        """Script a reply whose text is `value` as JSON, in a ```json fence if `fenced`."""
        text = json.dumps(value, indent=2)
        self.reply_text(f"```json\n{text}\n```" if fenced else text, **options)

    def reply_tool_use(
        self,
        name: str,
        input: Mapping[str, Any],
        *,
        id: str | None = None,
        text: str | None = None,
        **options: Any,
    ) -> None:
        """Script a reply asking for one tool (after `text`, if given), stop reason `tool_use`."""
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        tool_id = id or f"toolu_fake_{next(self._tool_ids):04d}"
        blocks.append({"type": "tool_use", "id": tool_id, "name": name, "input": dict(input)})
        options.setdefault("stop_reason", "tool_use")
        self.reply_message(blocks, **options)

    def reply_error(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Script an HTTP error with the API's body ``{"type": "error", "error": {...}}``."""
        self._replies.append(
            ScriptedReply(
                f"error {status} {error_type}",
                status=status,
                error={"type": error_type, "message": message},
                headers=dict(headers or {}),
            )
        )

    def reply_rate_limited(self, retry_after: float | None = 1.0) -> None:
        """Script a 429 `rate_limit_error`, with a `retry-after` header unless None.

        Its `anthropic-ratelimit-*` headers say no requests or tokens are left until the reset.
        """
        wait = 60.0 if retry_after is None else retry_after
        headers = rate_limit_headers(requests_left=0, tokens_left=0, reset_after=wait)
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        self.reply_error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            headers=headers,
        )

    def reply_overloaded(self) -> None:
        """Script a 529 `overloaded_error`."""
        self.reply_error(529, "overloaded_error", "Overloaded")

    def reply_server_error(self) -> None:
        """Script a 500 `api_error`."""
        self.reply_error(500, "api_error", "Internal server error")

    def reply_bad_request(self, message: str = "messages: field required") -> None:
        """Script a 400 `invalid_request_error` with `message`."""
        self.reply_error(400, "invalid_request_error", message)

    def reply_unauthorized(self) -> None:
        """Script a 401 `authentication_error`."""
        self.reply_error(401, "authentication_error", "invalid x-api-key")

    def reply_stream_error(
        self,
        error_type: str = "overloaded_error",
        message: str = "Overloaded",
        *,
        text: str = "",
    ) -> None:
        """Script a stream that sends `text`, then an `error` event (a 529 if not streamed)."""
        self.reply_message([{"type": "text", "text": text}] if text else [])
        reply = self._replies.pop()
        assert reply.message is not None
        self._replies.append(
            attrs.evolve(
                reply,
                label=f"stream error {error_type}",
                status=529,
                message={**reply.message, "stop_reason": None},
                error={"type": error_type, "message": message},
            )
        )

    # -- answering ------------------------------------------------------------------------------

    def _respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        """Record one request and build the answer the script holds for it."""
        request = self._record(method, path, headers, body)
        if request.method != "POST" or path != _MESSAGES_PATH:
            problem = f"only POST {_MESSAGES_PATH} is scripted"
        elif not self._replies:
            problem = "no scripted reply is left"
        else:
            return self._answer(self._replies.popleft(), request)
        message = self._unexpected_request(request, problem)
        return self._error(400, {"type": "invalid_request_error", "message": message}, {})

    def _error(
        self, status: int, error: Mapping[str, Any], headers: Mapping[str, str]
    ) -> WireResponse:
        return error_response(status, error, headers, request_id=f"req_fake_{next(self._ids):04d}")

    def _answer(self, reply: ScriptedReply, request: AnthropicRequest) -> WireResponse:
        if reply.message is None or (reply.error is not None and not request.stream):
            assert reply.error is not None
            return self._error(reply.status, reply.error, reply.headers)
        body = request.json if isinstance(request.json, Mapping) else {}
        usage = reply.message["usage"]
        self._tokens_used += usage["input_tokens"] + usage["output_tokens"]
        limits = rate_limit_headers(
            requests_left=max(0, REQUEST_LIMIT - len(self.requests)),
            tokens_left=max(0, TOKEN_LIMIT - self._tokens_used),
            reset_after=60.0,
        )
        reply = attrs.evolve(reply, headers={**limits, **reply.headers})
        message_id = f"msg_fake_{next(self._ids):04d}"
        request_id = f"req_fake_{next(self._ids):04d}"
        return message_response(
            reply,
            message_id=message_id,
            request_id=request_id,
            model=body.get("model", "claude-fake"),
            stream=request.stream,
        )

    # -- in process -----------------------------------------------------------------------------

    def make_client(self, **options: Any) -> AsyncAnthropic:
        """Build an `anthropic.AsyncAnthropic` talking to this fake in process, never retrying.

        `options` override the defaults (``api_key=FAKE_API_KEY``, ``base_url=FAKE_BASE_URL``,
        ``max_retries=0``, ``timeout=60.0``).
        """
        import anthropic
        from anthropic._base_client import get_platform

        client = anthropic.AsyncAnthropic(
            **self._client_settings(FAKE_API_KEY, FAKE_BASE_URL, options)
        )
        # The SDK works out its platform headers in a worker thread on a client's first request,
        # which an autojumping MockClock takes for idleness (and jumps to the next deadline).
        client._platform = get_platform()
        return client

    # -- over the network -----------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1") -> AbstractAsyncContextManager[str]:
        """Serve the fake over HTTP on a free port of `host`; yield its base URL.

        Subprocesses reach it with ``ANTHROPIC_BASE_URL=<base URL>`` (and any API key). Do not
        combine it with a `MockClock` that autojumps: waiting for the network looks idle to it.
        """
        return serve_on_loopback(self._respond, host)


@contextmanager
def use_fake_anthropic(fake: FakeAnthropic) -> Iterator[FakeAnthropic]:
    """Make `llm` agents that create their client inside this block talk to `fake` in process.

    It sets the `use_anthropic_client` hook (a context variable, inherited by tasks
    started inside the block) to `fake.make_client`; no API key is needed meanwhile.
    """
    with use_anthropic_client(fake.make_client):
        yield fake
