"""`FakeOpenAI`: a scripted stand-in for the OpenAI Chat Completions API, so LLM tests run offline.

The twin of `FakeAnthropic` for OpenAI-compatible servers (OpenAI, Azure, Ollama, vLLM, ...). A
test scripts the replies in the order the calls will come (`reply_text`, `reply_json`,
`reply_tool_calls`, `reply_error`, `reply_rate_limited`, `reply_malformed`, ...). Each
`POST /v1/chat/completions` takes the next one, answered as the real API would: a
`chat.completion` JSON object, or, when the request asks to stream, the real server-sent events
(`data: {chunk}` lines with text and tool-call argument deltas, the finish reason, the usage
chunk only when `stream_options.include_usage` is set, `data: [DONE]`). Errors have the API's
JSON shape; every answer carries `x-request-id` and the `x-ratelimit-*` headers, and a 429 a
`retry-after`. `GET /v1/models` lists the known models (the constructor's and those the
scripted replies name) without taking a reply. Every request is recorded without its
credentials.

A request the script does not cover (no reply left, another endpoint) gets a 400 error whose
message names it, and is remembered: `assert_all_used()`, which also checks that every scripted
reply was used, fails the test, and leaving ``with fake:`` calls it.

Plug it in-process through `transport` (an `httpx2.MockTransport`), `make_client()` and
`use_fake_openai(fake)`, or as a real loopback server with ``async with fake.serve() as
base_url:`` for subprocesses (``OPENAI_BASE_URL``, or a provider's `base_url`). The answers'
wire format is built in `_openai_wire`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._anthropic_server import serve_on_loopback
from ._anthropic_wire import WireResponse
from ._openai_hook import use_openai_client
from ._openai_wire import (
    CREATED,
    MalformedKind,
    ScriptedCompletion,
    completion_response,
    error_response,
    models_response,
    rate_limit_headers,
)
from ._scripted_fake import ScriptedFake

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "FAKE_API_KEY",
    "FAKE_BASE_URL",
    "FakeOpenAI",
    "OpenAIRequest",
    "use_fake_openai",
]

FAKE_BASE_URL = "http://fake-openai.invalid/v1"
"""The base URL of clients made by `FakeOpenAI.make_client` (never resolved: no network)."""

FAKE_API_KEY = "sk-fake-openai-test-key"
"""The API key clients made by `FakeOpenAI.make_client` send."""

_CREDENTIAL_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})
_COMPLETIONS_PATH = "/v1/chat/completions"
_MODELS_PATH = "/v1/models"
_TOKEN_LIMIT = 200_000
_REQUEST_LIMIT = 500

ReplyUsage = Mapping[str, Any] | Literal["counted"] | None
"""A reply's usage: counted from the token options, sent verbatim, or None (none sent)."""


@attrs.frozen
class OpenAIRequest:
    """A request the fake received; `headers` are lower-case and never hold credentials."""

    method: str
    path: str
    headers: Mapping[str, str]
    json: Any
    """The parsed JSON body (None when the body is empty or not JSON)."""
    has_credentials: bool
    """Whether the request carried an API key (`Authorization`, or Azure's `api-key`)."""

    @property
    def body(self) -> Mapping[str, Any]:
        """The JSON body if it is an object, else an empty mapping."""
        return self.json if isinstance(self.json, Mapping) else {}

    @property
    def stream(self) -> bool:
        """Whether the request asked for a streamed reply."""
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        """Whether a streamed request asked for the final usage chunk."""
        options = self.body.get("stream_options")
        return isinstance(options, Mapping) and options.get("include_usage") is True

    def describe(self) -> str:
        """A short description for failure messages: method, path, model and last message."""
        text = f"{self.method} {self.path}"
        if "model" in self.body:
            text += f" (model {self.body['model']!r}"
            messages = self.body.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[-1], Mapping):
                content = json.dumps(messages[-1].get("content"), ensure_ascii=False)
                text += f", last message {content[:80]}"
            text += ")"
        return text


def _usage_object(prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class FakeOpenAI(ScriptedFake[ScriptedCompletion, OpenAIRequest]):
    """A scripted fake of the OpenAI Chat Completions API; see the module docstring for the tour."""

    def __init__(
        self, *, chunk_size: int = 10, delay: float = 0.0, models: Sequence[str] = ()
    ) -> None:
        """Stream in deltas of `chunk_size` characters, `delay` seconds apart; know `models`."""
        super().__init__(
            name="FakeOpenAI",
            chunk_size=chunk_size,
            delay=delay,
            credential_headers=_CREDENTIAL_HEADERS,
            request_factory=OpenAIRequest,
        )
        self.models: list[str] = list(models)
        """The models `GET /v1/models` lists (scripted replies naming a model add it)."""

    # -- scripting ------------------------------------------------------------------------------

    def reply_completion(
        self,
        content: str | None,
        *,
        tool_calls: Sequence[Mapping[str, Any]] = (),
        finish_reason: str = "stop",
        prompt_tokens: int = 10,
        completion_tokens: int | None = None,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        usage: ReplyUsage = "counted",
        model: str | None = None,
        chunk_size: int | None = None,
        delay: float | None = None,
    ) -> None:
        """Script a completion with this text and tool calls (`model` defaults to the request's).

        Each tool call is ``{"name", "arguments", "id"?}``; `arguments` is a mapping (sent as
        JSON) or a string sent as is (malformed JSON included). `completion_tokens` defaults to
        a quarter of the characters in the reply, at least 1. ``usage=None`` sends no usage at
        all (as some servers do while streaming); a mapping is sent verbatim.
        """
        calls = [self._tool_call(call) for call in tool_calls]
        if completion_tokens is None:
            size = len(content or "") + sum(len(json.dumps(call)) for call in calls)
            completion_tokens = max(1, size // 4)
        if usage == "counted":
            usage = _usage_object(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        completion = {
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": None if usage is None else dict(usage),
        }
        if model is not None and model not in self.models:
            self.models.append(model)
        kinds = ", ".join([*(["text"] if content else []), *(["tool_calls"] if calls else [])])
        self._replies.append(
            ScriptedCompletion(
                f"completion ({kinds or 'empty'})",
                completion=completion,
                chunk_size=chunk_size or self.chunk_size,
                delay=self.delay if delay is None else delay,
            )
        )

    def _tool_call(self, call: Mapping[str, Any]) -> dict[str, Any]:
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        return {
            "id": call.get("id") or f"call_fake_{next(self._tool_ids):04d}",
            "type": "function",
            "function": {"name": call["name"], "arguments": arguments},
        }

    def reply_text(self, text: str, **options: Any) -> None:
        """Script a plain text reply; `options` are those of `reply_completion`."""
        self.reply_completion(text, **options)

    def reply_json(self, value: Any, *, fenced: bool = False, **options: Any) -> None:
        """Script a reply whose text is `value` as JSON, in a ```json fence if `fenced`."""
        text = json.dumps(value, indent=2)
        self.reply_text(f"```json\n{text}\n```" if fenced else text, **options)

    def reply_tool_calls(
        self, calls: Sequence[Mapping[str, Any]], *, text: str | None = None, **options: Any
    ) -> None:
        """Script a reply asking for these tools (after `text`), finish reason `tool_calls`.

        Each call is ``{"name": ..., "arguments": {...} or "raw string", "id": optional}``.
        """
        options.setdefault("finish_reason", "tool_calls")
        self.reply_completion(text, tool_calls=calls, **options)

    def reply_error(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Script an HTTP error with the API's body ``{"error": {"message", "type", ...}}``."""
        self._replies.append(
            ScriptedCompletion(
                f"error {status} {error_type}",
                status=status,
                error={"message": message, "type": error_type, "code": code},
                headers=dict(headers or {}),
            )
        )

    def reply_rate_limited(self, retry_after: float | None = 1.0) -> None:
        """Script a 429 `rate_limit_exceeded`, with `retry-after` (unless None) and limits at 0."""
        reset = "1s" if retry_after is None else f"{retry_after:g}s"
        headers = rate_limit_headers(requests_left=0, tokens_left=0, reset=reset)
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        self.reply_error(
            429,
            "requests",
            "Rate limit reached for requests per min (RPM): Limit 500, Used 500",
            code="rate_limit_exceeded",
            headers=headers,
        )

    def reply_server_error(self) -> None:
        """Script a 500 `server_error`."""
        self.reply_error(500, "server_error", "The server had an error processing your request")

    def reply_bad_request(self, message: str = "'messages' is a required property") -> None:
        """Script a 400 `invalid_request_error` with `message`."""
        self.reply_error(400, "invalid_request_error", message)

    def reply_unauthorized(self) -> None:
        """Script a 401 `invalid_api_key`."""
        self.reply_error(
            401, "invalid_request_error", "Incorrect API key provided", code="invalid_api_key"
        )

    def reply_model_not_found(self, model: str = "gpt-fake") -> None:
        """Script a 404 `model_not_found` for `model`."""
        self.reply_error(
            404,
            "invalid_request_error",
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    def reply_stream_error(
        self, error_type: str = "server_error", message: str = "Stream broke", *, text: str = ""
    ) -> None:
        """Script a stream that sends `text`, then an error chunk (a 500 if not streamed)."""
        self.reply_completion(text or None, usage=None)
        reply = self._replies.pop()
        assert reply.completion is not None
        [choice] = reply.completion["choices"]
        self._replies.append(
            attrs.evolve(
                reply,
                label=f"stream error {error_type}",
                status=500,
                completion={**reply.completion, "choices": [{**choice, "finish_reason": None}]},
                error={"message": message, "type": error_type},
            )
        )

    def reply_malformed(self, kind: MalformedKind, *, text: str = "malformed") -> None:
        """Script an answer that breaks the format on purpose, with `text` where text goes.

        - ``"json_body"``: a JSON completion even to a stream request (so a streaming client
          sees no chunk at all).
        - ``"no_choices"``: the completion, or every chunk, has no ``choices`` field.
        - ``"truncated"``: the stream stops before the finish chunk and ``[DONE]``; a JSON body
          is cut in half.
        - ``"not_json"``: a chunk (or the body) that is not JSON.
        """
        self.reply_text(text)
        reply = self._replies.pop()
        self._replies.append(attrs.evolve(reply, label=f"malformed {kind}", malformed=kind))

    # -- answering ------------------------------------------------------------------------------

    def _respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        """Record one request and build the answer the script holds for it."""
        request = self._record(method, path, headers, body)
        if request.method == "GET" and path == _MODELS_PATH:
            return models_response(self.models, request_id=self._request_id())
        if request.method != "POST" or path != _COMPLETIONS_PATH:
            problem = f"only POST {_COMPLETIONS_PATH} and GET {_MODELS_PATH} are scripted"
        elif not self._replies:
            problem = "no scripted reply is left"
        else:
            return self._answer(self._replies.popleft(), request)
        message = self._unexpected_request(request, problem)
        return error_response(
            400,
            {"message": message, "type": "invalid_request_error"},
            {},
            request_id=self._request_id(),
        )

    def _request_id(self) -> str:
        return f"req_fake_{next(self._ids):04d}"

    def _answer(self, reply: ScriptedCompletion, request: OpenAIRequest) -> WireResponse:
        if reply.completion is None or (reply.error is not None and not request.stream):
            assert reply.error is not None
            return error_response(
                reply.status, reply.error, reply.headers, request_id=self._request_id()
            )
        usage = reply.completion.get("usage")
        if isinstance(usage, Mapping):
            for field in ("prompt_tokens", "completion_tokens"):
                count = usage.get(field)
                self._tokens_used += count if isinstance(count, int) else 0
        limits = rate_limit_headers(
            requests_left=max(0, _REQUEST_LIMIT - len(self.requests)),
            tokens_left=max(0, _TOKEN_LIMIT - self._tokens_used),
            reset="120ms",
        )
        return completion_response(
            reply,
            completion_id=f"chatcmpl-fake{next(self._ids):04d}",
            request_id=self._request_id(),
            model=request.body.get("model", "gpt-fake"),
            stream=request.stream,
            include_usage=request.include_usage,
            headers=limits,
        )

    # -- in process -----------------------------------------------------------------------------

    def make_client(self, **options: Any) -> AsyncOpenAI:
        """Build an `openai.AsyncOpenAI` talking to this fake in process, never retrying.

        `options` override the defaults (``api_key=FAKE_API_KEY``, ``base_url=FAKE_BASE_URL``,
        ``max_retries=0``, ``timeout=60.0``).
        """
        import openai
        from openai._base_client import get_platform

        client = openai.AsyncOpenAI(**self._client_settings(FAKE_API_KEY, FAKE_BASE_URL, options))
        # The SDK works out its platform headers in a worker thread on a client's first request,
        # which an autojumping MockClock takes for idleness (and jumps to the next deadline).
        client._platform = get_platform()
        return client

    # -- over the network -----------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1") -> AbstractAsyncContextManager[str]:
        """Serve the fake over HTTP on a free port of `host`; yield its base URL (ending `/v1`).

        Subprocesses reach it with ``OPENAI_BASE_URL=<base URL>`` or a provider's `base_url`.
        Do not combine it with a `MockClock` that autojumps: waiting for the network looks idle.
        """
        return _serve_v1(self, host)


@asynccontextmanager
async def _serve_v1(fake: FakeOpenAI, host: str) -> AsyncIterator[str]:
    """Serve `fake` on loopback; yield the base URL the SDK expects (with the `/v1` prefix)."""
    async with serve_on_loopback(fake._respond, host) as base_url:
        yield f"{base_url}/v1"


@contextmanager
def use_fake_openai(fake: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """Make OpenAI-kind providers that create their client inside this block talk to `fake`.

    It sets the `use_openai_client` hook (a context variable, inherited by tasks started inside
    the block) to `fake.make_client`; no API key or base URL is needed meanwhile.
    """
    with use_openai_client(fake.make_client):
        yield fake
