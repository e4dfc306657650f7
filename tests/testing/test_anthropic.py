"""FakeAnthropic: scripted replies in the wire format, recording, failing on the unscripted."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest
import trio
import trio.testing

from orchestr8.testing import FakeAnthropic
from orchestr8.testing._anthropic import FAKE_API_KEY

MESSAGE: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}


def sse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Parse a server-sent-event body into (event name, data) pairs."""
    events = []
    for block in body.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def post(fake: FakeAnthropic, body: dict[str, Any], path: str = "/v1/messages") -> Any:
    async with httpx2.AsyncClient(transport=fake.transport, base_url="http://fake") as client:
        return await client.post(path, json=body, headers={"x-api-key": "sk-secret-1"})


async def test_text_reply_as_json_message_through_the_sdk() -> None:
    with FakeAnthropic() as fake:
        fake.reply_text("Hello there", input_tokens=12, output_tokens=3)
        client = fake.make_client()
        message = await client.messages.create(**MESSAGE)
        await client.close()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello there"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 3)
    assert message.model == "claude-test"  # the request's model, as the real API answers
    assert message.stop_reason == "end_turn"
    [request] = fake.requests
    assert (request.method, request.path, request.stream) == ("POST", "/v1/messages", False)
    assert request.json == MESSAGE
    assert request.has_credentials
    assert "authorization" not in request.headers
    assert FAKE_API_KEY not in json.dumps(dict(request.headers))


async def test_streamed_text_has_the_real_event_sequence() -> None:
    fake = FakeAnthropic(chunk_size=4)
    fake.reply_text("Hello world", input_tokens=7, output_tokens=2)
    response = await post(fake, {**MESSAGE, "stream": True})
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(response.content)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 7
    assert [data["delta"] for _, data in events[3:6]] == [
        {"type": "text_delta", "text": piece} for piece in ("Hell", "o wo", "rld")
    ]
    assert events[7][1]["delta"]["stop_reason"] == "end_turn"
    assert events[7][1]["usage"] == {"output_tokens": 2}
    fake.assert_all_used()


async def test_streamed_tool_use_sends_input_json_deltas() -> None:
    fake = FakeAnthropic(chunk_size=5)
    fake.reply_tool_use("lookup", {"query": "bees"}, id="toolu_1", text="Checking.")
    response = await post(fake, {**MESSAGE, "stream": True})
    events = sse_events(response.content)
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert starts == [
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}},
    ]
    partial = "".join(
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == {"query": "bees"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_the_sdk_stream_helper_rebuilds_the_scripted_message() -> None:
    with FakeAnthropic(chunk_size=3) as fake:
        fake.reply_tool_use("lookup", {"query": "bees", "n": [1, 2]}, text="Let me see")
        client = fake.make_client()
        async with client.messages.stream(**MESSAGE) as stream:
            texts = [event.text async for event in stream if event.type == "text"]
            message = await stream.get_final_message()
        await client.close()
    assert "".join(texts) == "Let me see"
    tool = message.content[1]
    assert tool.type == "tool_use"
    assert (tool.name, tool.input) == ("lookup", {"query": "bees", "n": [1, 2]})


async def test_stream_delay_spaces_events_on_the_trio_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeAnthropic(delay=0.5)
    fake.reply_text("abc")
    client = fake.make_client()
    start = trio.current_time()
    async with client.messages.stream(**MESSAGE) as stream:
        times = [trio.current_time() - start async for _ in stream]
    await client.close()
    assert times[-1] == pytest.approx(0.5 * 6)  # 7 raw events (with the ping), 6 gaps


@pytest.mark.parametrize(
    ("script", "status", "error_type", "sdk_error"),
    [
        (
            lambda fake: fake.reply_rate_limited(retry_after=7),
            429,
            "rate_limit_error",
            anthropic.RateLimitError,
        ),
        (
            lambda fake: fake.reply_overloaded(),
            529,
            "overloaded_error",
            anthropic.InternalServerError,
        ),
        (lambda fake: fake.reply_server_error(), 500, "api_error", anthropic.InternalServerError),
        (
            lambda fake: fake.reply_bad_request("max_tokens: too big"),
            400,
            "invalid_request_error",
            anthropic.BadRequestError,
        ),
        (
            lambda fake: fake.reply_unauthorized(),
            401,
            "authentication_error",
            anthropic.AuthenticationError,
        ),
    ],
)
async def test_errors_have_the_api_shape(
    script: Any, status: int, error_type: str, sdk_error: type[Exception]
) -> None:
    fake = FakeAnthropic()
    script(fake)
    response = await post(fake, MESSAGE)
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str)
    assert body["request_id"] == response.headers["request-id"]
    if status == 429:
        assert response.headers["retry-after"] == "7"
    script(fake)
    client = fake.make_client()
    with pytest.raises(sdk_error) as caught:
        await client.messages.create(**MESSAGE)
    await client.close()
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    fake.assert_all_used()


async def test_stream_error_arrives_after_the_text() -> None:
    fake = FakeAnthropic()
    fake.reply_stream_error("overloaded_error", "Overloaded", text="partial")
    events = sse_events((await post(fake, {**MESSAGE, "stream": True})).content)
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    assert "message_stop" not in [name for name, _ in events]


async def test_unscripted_request_is_answered_with_an_error_and_fails_the_check() -> None:
    fake = FakeAnthropic()
    response = await post(fake, MESSAGE)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "unexpected request #1 POST /v1/messages (model 'claude-test'" in message
    assert "no scripted reply is left" in message
    with pytest.raises(AssertionError, match=r"unexpected request #1 POST /v1/messages"):
        fake.assert_all_used()
    with pytest.raises(AssertionError, match="no scripted reply"), fake:
        pass


async def test_other_endpoints_are_unexpected() -> None:
    fake = FakeAnthropic()
    fake.reply_text("never sent")
    response = await post(fake, {"text": "x"}, path="/v1/messages/count_tokens")
    assert response.status_code == 400
    assert fake.unexpected == [
        "#1 POST /v1/messages/count_tokens: only POST /v1/messages is scripted"
    ]
    assert fake.pending == 1
    with pytest.raises(AssertionError, match="scripted reply never requested: message"):
        fake.assert_all_used()


def test_unused_replies_fail_the_check() -> None:
    fake = FakeAnthropic()
    fake.reply_text("one")
    fake.reply_overloaded()
    with pytest.raises(AssertionError) as caught:
        fake.assert_all_used()
    assert "never requested: message (text)" in str(caught.value)
    assert "never requested: error 529 overloaded_error" in str(caught.value)


def test_the_block_does_not_mask_its_own_failure() -> None:
    fake = FakeAnthropic()
    fake.reply_text("unused")
    with pytest.raises(KeyError), fake:
        raise KeyError("the test's own failure")


async def test_serve_answers_over_loopback_http_without_recording_the_key() -> None:
    fake = FakeAnthropic(chunk_size=2)
    fake.reply_text("over the wire")
    fake.reply_rate_limited(retry_after=3)
    async with fake.serve() as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        client = anthropic.AsyncAnthropic(
            api_key="sk-ant-secret-9", base_url=base_url, max_retries=0, timeout=10
        )
        async with client.messages.stream(**MESSAGE) as stream:
            text = await stream.get_final_text()
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(**MESSAGE)
        await client.close()
    assert text == "over the wire"
    assert caught.value.response.headers["retry-after"] == "3"
    assert [request.stream for request in fake.requests] == [True, False]
    assert all(request.has_credentials for request in fake.requests)
    assert "sk-ant-secret-9" not in repr(fake.requests)
    fake.assert_all_used()


def test_rejects_bad_stream_settings() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        FakeAnthropic(chunk_size=0)


async def test_cache_usage_fields_reach_the_sdk_in_json_and_streamed_messages() -> None:
    """Prompt-cache counts are in the message's usage and in `message_start` when streamed."""
    fake = FakeAnthropic()
    options = {"cache_read_input_tokens": 30, "cache_creation_input_tokens": 5}
    fake.reply_text("cached", input_tokens=4, **options)
    fake.reply_text("cached", input_tokens=4, **options)
    client = fake.make_client()
    message = await client.messages.create(**MESSAGE)
    async with client.messages.stream(**MESSAGE) as stream:
        streamed = await stream.get_final_message()
    await client.close()
    for usage in (message.usage, streamed.usage):
        assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (30, 5)
        assert usage.input_tokens == 4
    fake.reply_text("plain")
    start = sse_events((await post(fake, {**MESSAGE, "stream": True})).content)[0][1]
    assert start["message"]["usage"] == {"input_tokens": 10, "output_tokens": 1}


async def test_replies_carry_rate_limit_headers_that_count_down() -> None:
    """Every message reports the requests and tokens left and when they reset (RFC 3339)."""
    fake = FakeAnthropic()
    fake.reply_text("one", input_tokens=10, output_tokens=5)
    fake.reply_text("two", input_tokens=10, output_tokens=5)
    first = (await post(fake, MESSAGE)).headers
    second = (await post(fake, MESSAGE)).headers
    assert first["anthropic-ratelimit-requests-limit"] == "1000"
    assert int(first["anthropic-ratelimit-requests-remaining"]) - 1 == int(
        second["anthropic-ratelimit-requests-remaining"]
    )
    assert int(first["anthropic-ratelimit-tokens-remaining"]) - 15 == int(
        second["anthropic-ratelimit-tokens-remaining"]
    )
    assert first["anthropic-ratelimit-tokens-reset"].endswith("Z")


async def test_a_rate_limit_reports_nothing_left() -> None:
    """A 429 keeps its `retry-after` and says no requests or tokens are left."""
    fake = FakeAnthropic()
    fake.reply_rate_limited(retry_after=2)
    fake.reply_rate_limited(retry_after=None)
    headers = (await post(fake, MESSAGE)).headers
    assert headers["retry-after"] == "2"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "0"
    assert "retry-after" not in (await post(fake, MESSAGE)).headers


async def test_a_fake_client_never_waits_for_a_thread(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The SDK's platform headers are worked out at once, so MockClock sees no idle thread wait."""
    fake = FakeAnthropic()
    fake.reply_text("at once")
    client = fake.make_client()
    assert client._platform is not None
    with trio.fail_after(5):
        await client.messages.create(**MESSAGE)
    assert trio.current_time() == 0
    await client.close()
