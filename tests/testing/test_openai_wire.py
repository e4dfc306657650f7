"""The OpenAI wire format the fake answers in: completions, chunks, errors and model lists."""

from __future__ import annotations

import json
from typing import Any

from orchestr8.testing._openai_wire import (
    ScriptedCompletion,
    completion_response,
    error_response,
    models_response,
    rate_limit_headers,
    stream_chunks,
)

USAGE = {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}
COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "hello",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": USAGE,
}


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The delta of each chunk that has a choice."""
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def test_a_completion_streams_as_role_text_tool_calls_finish_and_usage() -> None:
    """The role first, text pieces, each tool call opened then its arguments, finish, usage."""
    chunks = stream_chunks(COMPLETION, 3, include_usage=True)
    assert deltas(chunks) == [
        {"role": "assistant", "content": "", "refusal": None},
        {"content": "hel"},
        {"content": "lo"},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert (chunks[-1]["choices"], chunks[-1]["usage"]) == ([], USAGE)
    assert all(chunk["id"] == "chatcmpl-1" for chunk in chunks)


def test_without_include_usage_no_chunk_has_a_usage_field() -> None:
    """Only `include_usage` adds the `usage` field (null, then the usage chunk)."""
    chunks = stream_chunks(COMPLETION, 100, include_usage=False)
    assert all("usage" not in chunk for chunk in chunks)


def test_an_error_has_the_api_envelope_and_request_id() -> None:
    """Errors carry `{"error": {...}}` with `param` and `code`, the request id, extra headers."""
    response = error_response(
        429, {"type": "requests", "message": "slow"}, {"retry-after": "1"}, request_id="r1"
    )
    assert (response.status, response.headers["x-request-id"]) == (429, "r1")
    assert response.headers["retry-after"] == "1"
    [(_, body)] = response.chunks
    assert json.loads(body) == {
        "error": {"type": "requests", "message": "slow", "param": None, "code": None}
    }


def test_models_are_listed_as_model_objects() -> None:
    """`GET /v1/models` is a list object of model objects."""
    [(_, body)] = models_response(["a", "b"], request_id="r").chunks
    listed = json.loads(body)
    assert listed["object"] == "list"
    assert [(m["id"], m["object"]) for m in listed["data"]] == [("a", "model"), ("b", "model")]


def test_rate_limit_headers_report_limits_left_and_reset() -> None:
    """The six `x-ratelimit-*` headers, limits fixed, what is left and the reset as given."""
    headers = rate_limit_headers(requests_left=4, tokens_left=9, reset="1s")
    assert headers["x-ratelimit-remaining-requests"] == "4"
    assert headers["x-ratelimit-remaining-tokens"] == "9"
    assert headers["x-ratelimit-reset-tokens"] == "1s"
    assert len(headers) == 6


def test_reply_headers_win_over_the_defaults_and_delays_space_the_chunks() -> None:
    """A reply's own headers override the rate-limit ones; chunks after the first wait."""
    completion = {key: value for key, value in COMPLETION.items() if key != "id"}
    reply = ScriptedCompletion("c", completion=completion, headers={"x-a": "1"}, delay=0.25)
    response = completion_response(
        reply,
        completion_id="id9",
        request_id="r",
        model="m",
        stream=True,
        include_usage=False,
        headers={"x-a": "0", "x-b": "2"},
    )
    assert (response.headers["x-a"], response.headers["x-b"]) == ("1", "2")
    assert [delay for delay, _ in response.chunks][:2] == [0.0, 0.25]
    assert response.chunks[-1][1] == b"data: [DONE]\n\n"
