"""The OpenAI Chat Completions wire format, for `FakeOpenAI`: completions, errors and streams.

A scripted reply becomes what the real API sends: a `chat.completion` JSON object; an error with
the API's JSON shape (`{"error": {"message", "type", "param", "code"}}`) and its `x-request-id`
header; or, when the request asks to stream, server-sent events each holding one
`chat.completion.chunk` (`data: {...}`): the role, the text in deltas of `chunk_size`
characters, each tool call (its id and name, then its arguments in deltas), the finish reason,
the usage chunk (empty `choices`) only when the request set `stream_options.include_usage`, and
`data: [DONE]`, each after its delay. Replies also carry the `x-ratelimit-*` headers.
A *malformed* reply breaks one of these rules on purpose, so a client's handling can be tested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._anthropic_wire import Chunks, WireResponse

__all__ = [
    "MalformedKind",
    "ScriptedCompletion",
    "completion_response",
    "error_response",
    "models_response",
    "rate_limit_headers",
    "stream_chunks",
]

MalformedKind = Literal["json_body", "no_choices", "truncated", "not_json"]
"""How a malformed reply breaks the format (see `FakeOpenAI.reply_malformed`)."""

CREATED = 1_700_000_000
"""The `created` timestamp of every fake completion (fixed, so answers are reproducible)."""

_REQUEST_LIMIT = 500
_TOKEN_LIMIT = 200_000


@attrs.frozen
class ScriptedCompletion:
    """One scripted answer: a completion (JSON or streamed), an HTTP error, or a stream error.

    `completion` is the `chat.completion` object without `id` (its `model` None for the
    request's); with an `error` too, it streams (without a finish reason) before the error event.
    `malformed` names the rule a deliberately broken answer breaks.
    """

    label: str
    status: int = 200
    completion: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    chunk_size: int = 10
    delay: float = 0.0
    malformed: MalformedKind | None = None


def rate_limit_headers(*, requests_left: int, tokens_left: int, reset: str) -> dict[str, str]:
    """The `x-ratelimit-*` headers the API sends with every answer."""
    return {
        "x-ratelimit-limit-requests": str(_REQUEST_LIMIT),
        "x-ratelimit-limit-tokens": str(_TOKEN_LIMIT),
        "x-ratelimit-remaining-requests": str(requests_left),
        "x-ratelimit-remaining-tokens": str(tokens_left),
        "x-ratelimit-reset-requests": reset,
        "x-ratelimit-reset-tokens": reset,
    }


def _sse(data: Mapping[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


def _pieces(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def _chunk(completion: Mapping[str, Any], choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "system_fingerprint": completion.get("system_fingerprint"),
        "choices": choices,
    }


def _delta(delta: Mapping[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}]


def stream_chunks(
    completion: Mapping[str, Any], chunk_size: int, *, include_usage: bool
) -> list[dict[str, Any]]:
    """The chunks the real API streams for `completion` (without the final `[DONE]`).

    Without a finish reason (a stream cut short) there is no finish chunk.
    """
    message = completion["choices"][0]["message"]
    text = message.get("content") or ""
    tool_calls = message.get("tool_calls") or []
    first: dict[str, Any] = {"role": "assistant", "content": "" if text else None}
    first["refusal"] = None
    chunks = [_chunk(completion, _delta(first))]
    chunks += [_chunk(completion, _delta({"content": p})) for p in _pieces(text, chunk_size)]
    for index, call in enumerate(tool_calls):
        opening = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        chunks.append(_chunk(completion, _delta({"tool_calls": [opening]})))
        for piece in _pieces(call["function"]["arguments"], chunk_size):
            argument = {"index": index, "function": {"arguments": piece}}
            chunks.append(_chunk(completion, _delta({"tool_calls": [argument]})))
    finish_reason = completion["choices"][0]["finish_reason"]
    if finish_reason is not None:
        chunks.append(_chunk(completion, _delta({}, finish_reason)))
    usage = completion.get("usage")
    if include_usage:
        for chunk in chunks:
            chunk["usage"] = None
        if usage is not None:
            chunks.append({**_chunk(completion, []), "usage": usage})
    return chunks


def error_response(
    status: int, error: Mapping[str, Any], headers: Mapping[str, str], *, request_id: str
) -> WireResponse:
    """An API error: the `error` object in the API's envelope, with its `x-request-id`."""
    body = json.dumps({"error": {"param": None, "code": None, **error}})
    return WireResponse(
        status,
        {"content-type": "application/json", "x-request-id": request_id, **headers},
        [(0.0, body.encode())],
    )


def models_response(models: list[str], *, request_id: str) -> WireResponse:
    """The `GET /v1/models` list of `models`."""
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "fake"} for m in models]
    body = json.dumps({"object": "list", "data": data})
    return WireResponse(
        200,
        {"content-type": "application/json", "x-request-id": request_id},
        [(0.0, body.encode())],
    )


def _malformed_chunks(
    reply: ScriptedCompletion, completion: Mapping[str, Any], *, stream: bool, include_usage: bool
) -> tuple[str, Chunks]:
    """The content type and body of a deliberately broken answer."""
    whole = json.dumps(completion).encode()
    if reply.malformed == "json_body":
        return "application/json", [(0.0, whole)]
    if not stream:
        if reply.malformed == "no_choices":
            body = {key: value for key, value in completion.items() if key != "choices"}
            return "application/json", [(0.0, json.dumps(body).encode())]
        if reply.malformed == "truncated":
            return "application/json", [(0.0, whole[: len(whole) // 2])]
        return "application/json", [(0.0, b"<html>502 Bad Gateway</html>")]
    if reply.malformed == "truncated":
        choice = {**completion["choices"][0], "finish_reason": None}
        completion = {**completion, "choices": [choice], "usage": None}
    chunks = stream_chunks(completion, reply.chunk_size, include_usage=include_usage)
    events = [_sse(chunk) for chunk in chunks]
    if reply.malformed == "no_choices":
        events = [_sse({k: v for k, v in chunk.items() if k != "choices"}) for chunk in chunks]
    elif reply.malformed == "not_json":
        events = [*events[:1], b"data: {not json\n\n"]
    if reply.malformed != "truncated":
        events.append(_sse("[DONE]"))
    return "text/event-stream", [(reply.delay if i else 0.0, e) for i, e in enumerate(events)]


def completion_response(
    reply: ScriptedCompletion,
    *,
    completion_id: str,
    request_id: str,
    model: Any,
    stream: bool,
    include_usage: bool,
    headers: Mapping[str, str],
) -> WireResponse:
    """The reply's completion as JSON, or streamed as chunks (a scripted stream error last).

    `model` fills in the completion's model when the script left it out (the request's model);
    `headers` (the rate-limit headers) come before the reply's own.
    """
    assert reply.completion is not None
    completion = {"id": completion_id, **reply.completion}
    if completion["model"] is None:
        completion["model"] = model
    all_headers = {"x-request-id": request_id, **headers, **reply.headers}
    if reply.malformed is not None:
        content_type, chunks = _malformed_chunks(
            reply, completion, stream=stream, include_usage=include_usage
        )
        return WireResponse(200, {"content-type": content_type, **all_headers}, chunks)
    if not stream:
        if completion.get("usage") is None:
            completion.pop("usage", None)
        return WireResponse(
            200,
            {"content-type": "application/json", **all_headers},
            [(0.0, json.dumps(completion).encode())],
        )
    events = [
        _sse(chunk)
        for chunk in stream_chunks(completion, reply.chunk_size, include_usage=include_usage)
    ]
    if reply.error is not None:
        events.append(_sse({"error": {"param": None, "code": None, **reply.error}}))
    else:
        events.append(_sse("[DONE]"))
    return WireResponse(
        200,
        {"content-type": "text/event-stream", "cache-control": "no-cache", **all_headers},
        [(reply.delay if i else 0.0, event) for i, event in enumerate(events)],
    )
