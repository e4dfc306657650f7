"""Tests for the Anthropic wire format the fake answers in: messages, errors and event streams."""

from __future__ import annotations

import json
from typing import Any

from orchestr8.testing._anthropic_wire import (
    ScriptedReply,
    error_response,
    message_response,
    stream_events,
)

MESSAGE: dict[str, Any] = {
    "type": "message",
    "role": "assistant",
    "model": None,
    "content": [
        {"type": "text", "text": "hello"},
        {"type": "tool_use", "id": "t1", "name": "look", "input": {"q": "x"}},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 3, "output_tokens": 7},
}


def test_a_message_streams_as_the_api_event_sequence() -> None:
    """Each block opens, streams its deltas in chunks and closes; usage and stop come last."""
    events = stream_events(MESSAGE, chunk_size=3)
    assert [event["type"] for event in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    text = "".join(e["delta"]["text"] for e in events if e.get("index") == 0 and "delta" in e)
    tool = "".join(
        e["delta"]["partial_json"] for e in events if e.get("index") == 1 and "delta" in e
    )
    assert (text, json.loads(tool)) == ("hello", {"q": "x"})
    assert events[-2]["usage"] == {"output_tokens": 7}


def test_an_error_has_the_api_envelope_and_request_id() -> None:
    """Errors carry `{"type": "error", ...}`, the request id in body and header, extra headers."""
    response = error_response(
        429, {"type": "rate_limit_error", "message": "slow"}, {"retry-after": "1"}, request_id="r1"
    )
    assert response.status == 429
    assert response.headers["request-id"] == "r1"
    assert response.headers["retry-after"] == "1"
    (_, body), *rest = response.chunks
    assert rest == []
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow"},
        "request_id": "r1",
    }


def test_a_scripted_stream_error_comes_after_the_message_events() -> None:
    """A stream error is the last event, and later events wait for the reply's delay."""
    reply = ScriptedReply(
        label="stream error",
        message=MESSAGE,
        error={"type": "overloaded_error", "message": "busy"},
        delay=0.5,
    )
    response = message_response(
        reply, message_id="m1", request_id="r1", model="claude-x", stream=True
    )
    delays = [delay for delay, _ in response.chunks]
    assert delays[0] == 0.0
    assert set(delays[1:]) == {0.5}
    last = response.chunks[-1][1].decode()
    assert last.startswith("event: error\n")
    first = json.loads(response.chunks[0][1].decode().split("data: ", 1)[1])
    assert first["message"]["model"] == "claude-x"
    assert first["message"]["id"] == "m1"
