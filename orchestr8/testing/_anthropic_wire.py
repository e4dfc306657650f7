"""The Anthropic Messages API's wire format, for `FakeAnthropic`: messages, errors and streams.

A scripted reply becomes what the real API sends: a JSON message; an error with the API's JSON
shape (`{"type": "error", "error": ..., "request_id": ...}`) and its `request-id` header (and the
`anthropic-ratelimit-*` headers of `rate_limit_headers`); or, when
the request asks to stream, the server-sent event sequence (`message_start`, `ping`, per content
block `content_block_start`, `content_block_delta`s of `chunk_size` characters and
`content_block_stop`, then `message_delta` and `message_stop`), each event after its delay.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

import attrs

Chunks = list[tuple[float, bytes]]
"""A body as (delay in seconds before it, bytes) pairs."""


@attrs.frozen
class ScriptedReply:
    """One scripted answer: a message (JSON or streamed), an HTTP error, or a stream error."""

    label: str
    status: int = 200
    message: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    chunk_size: int = 10
    delay: float = 0.0


@attrs.frozen
class WireResponse:
    """An answer ready to send: status, headers and the body's chunks, each after its delay."""

    status: int
    headers: Mapping[str, str]
    chunks: Chunks


REQUEST_LIMIT = 1000
"""The requests per minute the fake's `anthropic-ratelimit-requests-limit` header reports."""

TOKEN_LIMIT = 400_000
"""The tokens per minute the fake's `anthropic-ratelimit-tokens-limit` header reports."""


def rate_limit_headers(
    *, requests_left: int, tokens_left: int, reset_after: float
) -> dict[str, str]:
    """The `anthropic-ratelimit-*` headers: limits, what is left, and the reset (RFC 3339)."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=reset_after)
    reset = moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {
        "anthropic-ratelimit-requests-limit": str(REQUEST_LIMIT),
        "anthropic-ratelimit-requests-remaining": str(requests_left),
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-limit": str(TOKEN_LIMIT),
        "anthropic-ratelimit-tokens-remaining": str(tokens_left),
        "anthropic-ratelimit-tokens-reset": reset,
    }


def _sse(event: Mapping[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _pieces(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)] or [""]


def stream_events(message: Mapping[str, Any], chunk_size: int) -> list[dict[str, Any]]:
    """The event sequence the real API streams for `message`."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        first: dict[str, Any]
        if block["type"] == "text":
            first = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": piece}
                for piece in _pieces(block["text"], chunk_size)
            ]
        elif block["type"] == "tool_use":
            first = {**block, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in _pieces(json.dumps(block["input"]), chunk_size)
            ]
        else:
            first, deltas = dict(block), []
        events.append({"type": "content_block_start", "index": index, "content_block": first})
        events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        events.append({"type": "content_block_stop", "index": index})
    if message.get("stop_reason") is not None:
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            }
        )
        events.append({"type": "message_stop"})
    return events


def error_response(
    status: int, error: Mapping[str, Any], headers: Mapping[str, str], *, request_id: str
) -> WireResponse:
    """An API error: the `error` object in the API's envelope, with its `request-id`."""
    body = json.dumps({"type": "error", "error": dict(error), "request_id": request_id})
    return WireResponse(
        status,
        {"content-type": "application/json", "request-id": request_id, **headers},
        [(0.0, body.encode())],
    )


def message_response(
    reply: ScriptedReply, *, message_id: str, request_id: str, model: Any, stream: bool
) -> WireResponse:
    """The reply's message as JSON, or streamed as events (a scripted stream error last).

    `model` fills in the message's model when the script left it out (the request's model).
    """
    assert reply.message is not None
    message = {"id": message_id, **reply.message}
    if message["model"] is None:
        message["model"] = model
    headers = {"request-id": request_id, **reply.headers}
    if not stream:
        return WireResponse(
            200,
            {"content-type": "application/json", **headers},
            [(0.0, json.dumps(message).encode())],
        )
    events = stream_events(message, reply.chunk_size)
    if reply.error is not None:
        events.append({"type": "error", "error": dict(reply.error)})
    chunks = [(reply.delay if i else 0.0, _sse(event)) for i, event in enumerate(events)]
    return WireResponse(
        200,
        {"content-type": "text/event-stream", "cache-control": "no-cache", **headers},
        chunks,
    )
