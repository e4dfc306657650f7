"""FakeOpenAI: scripted replies the real `openai` SDK parses; recording; failing on surprises."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
import trio
import trio.testing

from orchestr8.testing import FakeOpenAI, openai_client_factory, use_fake_openai
from orchestr8.testing._openai import FAKE_API_KEY

REQUEST: dict[str, Any] = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
STREAM: dict[str, Any] = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}

SDK_STREAM_LEAKS = pytest.mark.filterwarnings("ignore:Async generator:ResourceWarning")
"""The SDK's stream stops reading at `[DONE]` and leaves its async generators to the garbage
collector, which trio reports as a ResourceWarning (so `OpenAIProvider` reads the lines itself)."""


def sse_data(body: bytes) -> list[Any]:
    """Parse a server-sent-event body into its `data:` payloads (JSON, or the raw `[DONE]`)."""
    payloads = []
    for block in body.decode().strip().split("\n\n"):
        assert block.startswith("data: "), block
        text = block.removeprefix("data: ")
        payloads.append(text if text == "[DONE]" else json.loads(text))
    return payloads


async def post(fake: FakeOpenAI, body: Any, path: str = "/v1/chat/completions") -> Any:
    """POST `body` to the fake in process, with a bearer key."""
    async with httpx2.AsyncClient(transport=fake.transport, base_url="http://fake") as client:
        return await client.post(path, json=body, headers={"Authorization": "Bearer sk-secret-1"})


async def test_text_reply_as_a_completion_through_the_sdk() -> None:
    """A JSON completion the SDK parses: text, usage with its details, the request's model."""
    with FakeOpenAI() as fake:
        fake.reply_text(
            "Hello there",
            prompt_tokens=12,
            completion_tokens=3,
            cached_tokens=4,
            reasoning_tokens=2,
        )
        client = fake.make_client()
        completion = await client.chat.completions.create(**REQUEST)
        await client.close()
    [choice] = completion.choices
    assert (choice.message.content, choice.finish_reason) == ("Hello there", "stop")
    assert completion.model == "gpt-test"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 3, 15)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 2
    [request] = fake.requests
    assert (request.method, request.path, request.stream) == ("POST", "/v1/chat/completions", False)
    assert request.json == REQUEST
    assert request.has_credentials
    assert "authorization" not in request.headers
    assert FAKE_API_KEY not in json.dumps(dict(request.headers))


async def test_streamed_text_has_the_real_chunk_sequence() -> None:
    """Role chunk, text deltas, finish chunk, usage chunk (empty choices), then `[DONE]`."""
    fake = FakeOpenAI(chunk_size=4)
    fake.reply_text("Hello world", prompt_tokens=7, completion_tokens=2)
    response = await post(fake, STREAM)
    assert response.headers["content-type"] == "text/event-stream"
    *chunks, done = sse_data(response.content)
    assert done == "[DONE]"
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [chunk["choices"][0]["delta"] for chunk in chunks[1:4]] == [
        {"content": piece} for piece in ("Hell", "o wo", "rld")
    ]
    assert chunks[4]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert chunks[5]["choices"] == []
    assert chunks[5]["usage"]["prompt_tokens"] == 7
    assert all(chunk["usage"] is None for chunk in chunks[:5])
    fake.assert_all_used()


async def test_the_usage_chunk_comes_only_when_asked_for() -> None:
    """Without `stream_options.include_usage` no chunk carries usage, as the real API does."""
    fake = FakeOpenAI()
    fake.reply_text("hi")
    *chunks, _ = sse_data((await post(fake, {**REQUEST, "stream": True})).content)
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_usage_none_sends_no_usage_even_when_asked() -> None:
    """`usage=None` imitates servers that send no usage: no usage chunk, none in the JSON."""
    fake = FakeOpenAI()
    fake.reply_text("streamed", usage=None)
    fake.reply_text("whole", usage=None)
    *chunks, _ = sse_data((await post(fake, STREAM)).content)
    assert [chunk["usage"] for chunk in chunks] == [None] * len(chunks)
    assert "usage" not in (await post(fake, REQUEST)).json()


async def test_a_verbatim_usage_mapping_is_sent_as_given() -> None:
    """A usage mapping goes out unchanged, so odd servers' usage shapes can be imitated."""
    fake = FakeOpenAI()
    fake.reply_text("odd", usage={"prompt_tokens": 3, "completion_tokens": 1})
    assert (await post(fake, REQUEST)).json()["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 1,
    }


async def test_streamed_tool_calls_send_argument_deltas() -> None:
    """Each tool call opens with its id and name, then streams its arguments in pieces."""
    fake = FakeOpenAI(chunk_size=5)
    fake.reply_tool_calls(
        [{"name": "lookup", "arguments": {"query": "bees"}, "id": "call_1"}, {"name": "time"}],
        text="Checking.",
    )
    *chunks, _ = sse_data((await post(fake, STREAM)).content)
    calls = [
        call
        for chunk in chunks
        if chunk["choices"]
        for call in chunk["choices"][0]["delta"].get("tool_calls", [])
    ]
    openings = [call for call in calls if "id" in call]
    assert [(c["index"], c["id"], c["function"]["name"]) for c in openings] == [
        (0, "call_1", "lookup"),
        (1, "call_fake_0001", "time"),
    ]
    arguments = [
        "".join(c["function"]["arguments"] for c in calls if c["index"] == i) for i in (0, 1)
    ]
    assert [json.loads(text) for text in arguments] == [{"query": "bees"}, {}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


@SDK_STREAM_LEAKS
async def test_the_sdk_rebuilds_streamed_tool_calls() -> None:
    """The SDK's stream helper accumulates the fake's chunks into the scripted tool calls."""
    with FakeOpenAI(chunk_size=3) as fake:
        fake.reply_tool_calls([{"name": "lookup", "arguments": {"q": "bees", "n": [1, 2]}}])
        client = fake.make_client()
        async with client.chat.completions.stream(**REQUEST) as stream:
            completion = await stream.get_final_completion()
        await client.close()
    [call] = completion.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "lookup",
        {"q": "bees", "n": [1, 2]},
    )
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_raw_tool_arguments_go_out_unparsed() -> None:
    """A string of arguments is sent as is, so malformed tool-call JSON can be scripted."""
    fake = FakeOpenAI()
    fake.reply_tool_calls([{"name": "broken", "arguments": '{"q": '}])
    message = (await post(fake, REQUEST)).json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == '{"q": '
    assert message["content"] is None


async def test_json_reply_fenced_or_plain() -> None:
    """`reply_json` sends the value as JSON text, fenced on request."""
    fake = FakeOpenAI()
    fake.reply_json({"a": 1})
    fake.reply_json([1], fenced=True)
    first = (await post(fake, REQUEST)).json()["choices"][0]["message"]["content"]
    second = (await post(fake, REQUEST)).json()["choices"][0]["message"]["content"]
    assert json.loads(first) == {"a": 1}
    assert second.startswith("```json\n")
    assert second.endswith("\n```")


@SDK_STREAM_LEAKS
async def test_stream_delay_spaces_chunks_on_the_trio_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Chunks after the first wait `delay` seconds each, on the trio clock."""
    fake = FakeOpenAI(delay=0.5)
    fake.reply_text("abc")
    client = fake.make_client()
    start = trio.current_time()
    stream = await client.chat.completions.create(**STREAM)
    times = [trio.current_time() - start async for _ in stream]
    await client.close()
    assert times[-1] == pytest.approx(0.5 * 3)  # role, text, finish, usage chunks: 3 gaps


@pytest.mark.parametrize(
    ("script", "status", "error_type", "sdk_error"),
    [
        (lambda fake: fake.reply_rate_limited(7), 429, "requests", openai.RateLimitError),
        (lambda fake: fake.reply_server_error(), 500, "server_error", openai.InternalServerError),
        (
            lambda fake: fake.reply_bad_request("max_tokens too big"),
            400,
            "invalid_request_error",
            openai.BadRequestError,
        ),
        (
            lambda fake: fake.reply_unauthorized(),
            401,
            "invalid_request_error",
            openai.AuthenticationError,
        ),
        (
            lambda fake: fake.reply_model_not_found("gpt-9"),
            404,
            "invalid_request_error",
            openai.NotFoundError,
        ),
    ],
)
async def test_errors_have_the_api_shape(
    script: Any, status: int, error_type: str, sdk_error: type[openai.APIStatusError]
) -> None:
    """Each error has the API's envelope and request id, and the SDK raises its own class."""
    fake = FakeOpenAI()
    script(fake)
    response = await post(fake, REQUEST)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == error_type
    assert isinstance(error["message"], str)
    assert {"param", "code"} <= error.keys()
    assert response.headers["x-request-id"].startswith("req_fake_")
    script(fake)
    client = fake.make_client()
    with pytest.raises(sdk_error) as caught:
        await client.chat.completions.create(**REQUEST)
    await client.close()
    assert caught.value.status_code == status
    fake.assert_all_used()


async def test_a_rate_limit_carries_retry_after_and_exhausted_limits() -> None:
    """A 429 says when to retry and that no requests or tokens are left."""
    fake = FakeOpenAI()
    fake.reply_rate_limited(retry_after=2.5)
    fake.reply_rate_limited(retry_after=None)
    headers = (await post(fake, REQUEST)).headers
    assert headers["retry-after"] == "2.5"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "2.5s"
    response = await post(fake, REQUEST)
    assert "retry-after" not in response.headers
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


async def test_replies_carry_rate_limit_headers_that_count_down() -> None:
    """Every completion reports the requests and tokens left, as the real API does."""
    fake = FakeOpenAI()
    fake.reply_text("one", prompt_tokens=10, completion_tokens=5)
    fake.reply_text("two", prompt_tokens=10, completion_tokens=5)
    first = (await post(fake, REQUEST)).headers
    second = (await post(fake, REQUEST)).headers
    assert first["x-ratelimit-limit-requests"] == "500"
    assert int(second["x-ratelimit-remaining-requests"]) == 498
    assert int(first["x-ratelimit-remaining-tokens"]) - 15 == int(
        second["x-ratelimit-remaining-tokens"]
    )


@SDK_STREAM_LEAKS
async def test_a_stream_error_arrives_after_the_text() -> None:
    """A scripted stream error is an error chunk after the text, with no finish and no `[DONE]`."""
    fake = FakeOpenAI()
    fake.reply_stream_error("server_error", "boom", text="partial")
    payloads = sse_data((await post(fake, STREAM)).content)
    assert payloads[-1]["error"]["message"] == "boom"
    assert "[DONE]" not in payloads
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in payloads[:-1])
    fake.reply_stream_error()
    client = fake.make_client()
    stream = await client.chat.completions.create(**STREAM)
    with pytest.raises(openai.APIError, match="Stream broke"):
        async for _ in stream:
            pass
    fake.reply_stream_error()
    assert (await post(fake, REQUEST)).status_code == 500
    await client.close()


async def test_malformed_json_body_to_a_stream_request_gives_the_sdk_no_chunks() -> None:
    """A JSON completion answering a stream request: the SDK's stream is simply empty."""
    with FakeOpenAI() as fake:
        fake.reply_malformed("json_body")
        client = fake.make_client()
        stream = await client.chat.completions.create(**STREAM)
        assert [chunk async for chunk in stream] == []
        await client.close()


async def test_malformed_chunks_without_choices() -> None:
    """`no_choices` drops the `choices` field of every chunk, or of the JSON completion."""
    fake = FakeOpenAI()
    fake.reply_malformed("no_choices")
    fake.reply_malformed("no_choices")
    *chunks, done = sse_data((await post(fake, STREAM)).content)
    assert done == "[DONE]"
    assert chunks
    assert all("choices" not in chunk for chunk in chunks)
    assert "choices" not in (await post(fake, REQUEST)).json()


async def test_malformed_truncated_stream_and_body() -> None:
    """`truncated` ends the stream before the finish chunk and `[DONE]`; halves a JSON body."""
    fake = FakeOpenAI()
    fake.reply_malformed("truncated", text="cut off here")
    fake.reply_malformed("truncated")
    payloads = sse_data((await post(fake, STREAM)).content)
    assert "[DONE]" not in payloads
    assert all(
        chunk["choices"] and chunk["choices"][0]["finish_reason"] is None for chunk in payloads
    )
    with pytest.raises(json.JSONDecodeError, match=r"Unterminated|Expecting"):
        json.loads((await post(fake, REQUEST)).content)


async def test_malformed_not_json() -> None:
    """`not_json` sends a chunk, or a body, that is not JSON; the SDK's parser fails on it."""
    fake = FakeOpenAI()
    fake.reply_malformed("not_json")
    fake.reply_malformed("not_json")
    body = (await post(fake, STREAM)).content.decode()
    assert "data: {not json" in body
    assert (await post(fake, REQUEST)).content.startswith(b"<html>")


async def test_models_lists_known_and_scripted_models_without_taking_a_reply() -> None:
    """`GET /v1/models` answers the constructor's and the scripted models; nothing is used up."""
    with FakeOpenAI(models=["llama3.1"]) as fake:
        fake.reply_text("hi", model="qwen2.5")
        client = fake.make_client()
        page = await client.models.list()
        await client.chat.completions.create(**REQUEST)
        await client.close()
    assert [model.id for model in page.data] == ["llama3.1", "qwen2.5"]
    assert [request.path for request in fake.requests] == ["/v1/models", "/v1/chat/completions"]


async def test_unscripted_request_is_answered_with_an_error_and_fails_the_check() -> None:
    """A request with no reply left gets a 400 naming it, and the check fails."""
    fake = FakeOpenAI()
    response = await post(fake, REQUEST)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "unexpected request #1 POST /v1/chat/completions (model 'gpt-test'" in message
    assert "no scripted reply is left" in message
    with pytest.raises(AssertionError, match=r"unexpected request #1 POST /v1/chat/completions"):
        fake.assert_all_used()
    with pytest.raises(AssertionError, match="no scripted reply"), fake:
        pass


async def test_other_endpoints_are_unexpected() -> None:
    """Only chat completions and the model list are served; other paths are unexpected."""
    fake = FakeOpenAI()
    fake.reply_text("never sent")
    response = await post(fake, {"input": "x"}, path="/v1/embeddings")
    assert response.status_code == 400
    assert fake.unexpected == [
        "#1 POST /v1/embeddings: only POST /v1/chat/completions and GET /v1/models are scripted"
    ]
    assert fake.pending == 1
    with pytest.raises(
        AssertionError, match=r"scripted reply never requested: completion \(text\)"
    ):
        fake.assert_all_used()


def test_the_block_does_not_mask_its_own_failure() -> None:
    """Leaving `with fake:` by an exception does not replace it with the check's failure."""
    fake = FakeOpenAI()
    fake.reply_text("unused")
    with pytest.raises(KeyError), fake:
        raise KeyError("the test's own failure")


async def test_use_fake_openai_sets_the_client_hook() -> None:
    """Inside `use_fake_openai` the hook makes clients of the fake; outside there is none."""
    fake = FakeOpenAI()
    assert openai_client_factory() is None
    with use_fake_openai(fake) as same:
        factory = openai_client_factory()
        assert same is fake
        assert factory is not None
        client = factory()
        assert str(client.base_url).startswith("http://fake-openai.invalid/v1")
        await client.close()
    assert openai_client_factory() is None


@SDK_STREAM_LEAKS
async def test_serve_answers_over_loopback_http_without_recording_the_key() -> None:
    """Served on loopback, the SDK reaches the fake under `/v1`; keys are never recorded."""
    fake = FakeOpenAI(chunk_size=2)
    fake.reply_text("over the wire")
    fake.reply_rate_limited(retry_after=3)
    async with fake.serve() as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        client = openai.AsyncOpenAI(
            api_key="sk-secret-9", base_url=base_url, max_retries=0, timeout=10
        )
        stream = await client.chat.completions.create(**STREAM)
        text = "".join(
            [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        )
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(**REQUEST)
        await client.close()
    assert text == "over the wire"
    assert caught.value.response.headers["retry-after"] == "3"
    assert [request.stream for request in fake.requests] == [True, False]
    assert all(request.has_credentials for request in fake.requests)
    assert "sk-secret-9" not in repr(fake.requests)
    fake.assert_all_used()


def test_rejects_bad_stream_settings() -> None:
    """A chunk size below 1 or a negative or infinite delay is refused."""
    with pytest.raises(ValueError, match="chunk_size"):
        FakeOpenAI(chunk_size=0)
    with pytest.raises(ValueError, match="delay"):
        FakeOpenAI(delay=float("inf"))


def test_describe_names_the_model_and_last_message() -> None:
    """A request's description shows the model and the start of the last message."""
    fake = FakeOpenAI()
    fake._respond("POST", "/v1/chat/completions", {}, b"not json")
    fake._respond("POST", "/v1/chat/completions", {}, json.dumps(REQUEST).encode())
    assert fake.unexpected[0].startswith("#1 POST /v1/chat/completions: ")
    assert "(model 'gpt-test', last message \"hi\")" in fake.unexpected[1]
    assert fake.requests[0].json is None
    assert not fake.requests[0].include_usage


async def test_a_fake_client_never_waits_for_a_thread(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The SDK's platform headers are worked out at once, so MockClock sees no idle thread wait."""
    fake = FakeOpenAI()
    fake.reply_text("at once")
    client = fake.make_client()
    assert client._platform is not None
    with trio.fail_after(5):
        await client.chat.completions.create(**REQUEST)
    assert trio.current_time() == 0
    await client.close()
