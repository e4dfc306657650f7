"""The OpenAI-compatible provider against FakeOpenAI: calls, streams, usage, errors, the client."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from key_spy import KeySpy

from orchestr8 import (
    AgentConfigurationError,
    Capability,
    ChatMessage,
    ChatRequest,
    MissingAPIKeyError,
    NonRetryableError,
    OpenAIProvider,
    Provider,
    RetryableError,
    ToolSpec,
    Usage,
)
from orchestr8._errors import (
    MissingPackageError,
    ProviderRefusedError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from orchestr8._llm._openai_provider import NO_KEY, require_openai
from orchestr8.testing import FakeOpenAI, use_fake_openai, use_openai_client

LOCAL = "http://127.0.0.1:11434/v1"
OFFICIAL = "https://api.openai.com/v1"
WHERE = f"provider 'local' (openai at {LOCAL})"


def request(**changes: Any) -> ChatRequest:
    """A small request to `llama3.1`, with `changes`."""
    base: dict[str, Any] = {"model": "llama3.1", "messages": [ChatMessage("user", "hi")]}
    return ChatRequest(**(base | changes))


def local(**options: Any) -> OpenAIProvider:
    """The `local` provider (Ollama's default URL, no key)."""
    return OpenAIProvider("local", base_url=LOCAL, api_key=None, **options)


async def call(
    fake: FakeOpenAI, chat: ChatRequest, provider: OpenAIProvider | None = None
) -> tuple[Any, list[str], list[Usage]]:
    """One `complete` through `fake`: the reply (or the error raised), text deltas, usages."""
    texts: list[str] = []
    usages: list[Usage] = []
    with use_fake_openai(fake):
        try:
            reply: Any = await (provider or local()).complete(
                chat, timeout=10, on_text=texts.append, on_usage=usages.append
            )
        except (RetryableError, NonRetryableError) as error:
            reply = error
    return reply, texts, usages


def test_it_is_a_provider_of_kind_openai_with_every_capability() -> None:
    """It fits the `Provider` protocol; capabilities default to all, a spec may narrow them."""
    provider = local()
    assert isinstance(provider, Provider)
    assert (provider.name, provider.kind) == ("local", "openai")
    assert provider.capabilities == frozenset(Capability)
    assert local(capabilities=frozenset({Capability.TOOLS})).capabilities == {Capability.TOOLS}
    assert provider.describe() == WHERE
    assert repr(provider) == f"<OpenAIProvider 'local' at {LOCAL}>"


async def test_a_streamed_call_passes_text_on_and_reports_the_usage_chunk() -> None:
    """Text deltas go to `on_text`; the usage chunk (cached, reasoning) is reported once."""
    with FakeOpenAI(chunk_size=4) as fake:
        fake.reply_text(
            "Bees make honey.",
            prompt_tokens=20,
            completion_tokens=5,
            cached_tokens=8,
            reasoning_tokens=2,
            model="llama3.1:8b",
        )
        reply, texts, usages = await call(fake, request(system="Be brief."))
    assert "".join(texts) == "Bees make honey."
    assert len(texts) == 4
    assert reply.text == "Bees make honey."
    assert (reply.stop_reason, reply.provider, reply.model) == ("end_turn", "local", "llama3.1:8b")
    expected = Usage(input_tokens=20, output_tokens=5, cached_input_tokens=8, reasoning_tokens=2)
    assert reply.usage == expected
    assert usages == [expected]
    assert reply.assistant_message == ChatMessage(
        "assistant", ({"type": "text", "text": "Bees make honey."},)
    )
    sent = fake.requests[0].json
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert sent["max_tokens"] == 1024
    assert "max_completion_tokens" not in sent


async def test_a_plain_call_reads_the_json_completion() -> None:
    """Not streamed: one JSON completion, its usage, the temperature sent."""
    with FakeOpenAI() as fake:
        fake.reply_text("Bees.", prompt_tokens=7, completion_tokens=2)
        reply, texts, usages = await call(fake, request(stream=False, temperature=0.2))
    assert (reply.text, texts) == ("Bees.", [])
    assert reply.model == "llama3.1"
    assert usages == [reply.usage] == [Usage(input_tokens=7, output_tokens=2)]
    sent = fake.requests[0].json
    assert "stream" not in sent
    assert sent["temperature"] == 0.2


@pytest.mark.parametrize("stream", [True, False])
async def test_without_usage_from_the_server_the_usage_is_estimated(stream: bool) -> None:
    """A server that sends no usage: characters / 4 of prompt and reply, marked estimated."""
    with FakeOpenAI() as fake:
        fake.reply_text("x" * 40, usage=None)
        chat = request(messages=[ChatMessage("user", "y" * 80)], stream=stream)
        reply, _, usages = await call(fake, chat)
    assert reply.usage.estimated
    assert reply.usage.input_tokens == chat.estimated_input_tokens() == 20
    assert reply.usage.output_tokens == 10  # the reply's 40 characters, never the JSON around
    assert usages == [reply.usage]


async def test_an_estimate_without_streaming_counts_tool_call_names_and_arguments() -> None:
    """A plain reply of tool calls without usage: the names and argument text are counted."""
    with FakeOpenAI() as fake:
        fake.reply_tool_calls([{"name": "lookup", "arguments": {"q": "t" * 24}}], usage=None)
        reply, _, _ = await call(fake, request(stream=False))
    arguments = json.dumps({"q": "t" * 24})
    assert reply.usage.estimated
    assert reply.usage.output_tokens == -(-(len("lookup") + len(arguments)) // 4)


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_calls_come_back_as_neutral_tool_calls(stream: bool) -> None:
    """Tools go out as functions; tool calls come back parsed, with the turn to send back."""
    with FakeOpenAI(chunk_size=3) as fake:
        fake.reply_tool_calls(
            [
                {"name": "search", "arguments": {"q": "bees"}, "id": "call_1"},
                {"name": "clock", "id": "call_2"},
            ],
            text="Looking.",
        )
        tool = ToolSpec("search", "find things", {"type": "object"})
        reply, _, _ = await call(fake, request(tools=[tool], stream=stream))
    assert reply.stop_reason == "tool_use"
    assert [(c.id, c.name, c.input) for c in reply.tool_calls] == [
        ("call_1", "search", {"q": "bees"}),
        ("call_2", "clock", {}),
    ]
    assert reply.assistant_message.content == (
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "call_1", "name": "search", "input": {"q": "bees"}},
        {"type": "tool_use", "id": "call_2", "name": "clock", "input": {}},
    )
    assert fake.requests[0].json["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": "find things",
                "parameters": {"type": "object"},
            },
        }
    ]


async def test_a_tool_turn_goes_back_as_tool_calls_and_tool_messages() -> None:
    """The assistant's `tool_use` and the user's `tool_result` blocks in the Chat shape."""
    turns = [
        ChatMessage("user", "Find bees."),
        ChatMessage(
            "assistant",
            (
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "call_1", "name": "search", "input": {"q": "bees"}},
            ),
        ),
        ChatMessage(
            "user",
            (
                {"type": "tool_result", "tool_use_id": "call_1", "content": "3 bees"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "no", "is_error": True},
                {"type": "text", "text": "Go on."},
            ),
        ),
    ]
    with FakeOpenAI() as fake:
        fake.reply_text("Done.")
        await call(fake, request(messages=turns))
    assert fake.requests[0].json["messages"] == [
        {"role": "user", "content": "Find bees."},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "search", "arguments": '{"q": "bees"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "3 bees"},
        {"role": "tool", "tool_call_id": "call_2", "content": "error: no"},
        {"role": "user", "content": "Go on."},
    ]


async def test_json_output_asks_for_a_json_schema_response_format() -> None:
    """With the `json_output` capability the schema goes out as `response_format` json_schema."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    with FakeOpenAI() as fake:
        fake.reply_json({"n": 1})
        reply, _, _ = await call(fake, request(json_schema=schema))
    assert json.loads(reply.text) == {"n": 1}
    assert fake.requests[0].json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }


async def test_without_json_output_the_json_object_mode_and_an_instruction_are_used() -> None:
    """A provider lacking `json_output` gets `json_object` and the schema in the system prompt."""
    schema = {"type": "object"}
    provider = local(capabilities=frozenset({Capability.STREAMING}))
    with FakeOpenAI() as fake:
        fake.reply_json({})
        await call(fake, request(json_schema=schema, system="Be brief."), provider)
        fake.reply_json({})
        await call(fake, request(json_schema=schema), provider)
    first, second = (r.json for r in fake.requests)
    assert first["response_format"] == {"type": "json_object"}
    system = first["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("Be brief.\n\nAnswer with one JSON object only")
    assert system["content"].endswith('{"type": "object"}')
    assert second["messages"][0]["content"].startswith("Answer with one JSON object only")


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [("length", "max_tokens"), ("content_filter", "content_filter"), ("eos", "eos")],
)
async def test_finish_reasons_are_normalised(finish_reason: str, stop_reason: str) -> None:
    """`length` is `max_tokens`, `content_filter` stays, an unknown reason is kept as sent."""
    with FakeOpenAI() as fake:
        fake.reply_text("cut", finish_reason=finish_reason)
        reply, _, _ = await call(fake, request())
    assert reply.stop_reason == stop_reason


async def test_openais_own_api_gets_max_completion_tokens() -> None:
    """OpenAI's API (its reasoning models refuse `max_tokens`) gets `max_completion_tokens`."""
    provider = OpenAIProvider("openai", base_url="https://api.openai.com/v1/", api_key="sk-1")
    with FakeOpenAI() as fake:
        fake.reply_text("ok")
        await call(fake, request(max_tokens=50), provider)
    sent = fake.requests[0].json
    assert sent["max_completion_tokens"] == 50
    assert "max_tokens" not in sent


ERRORS: list[tuple[Callable[[FakeOpenAI], None], type[Exception], str, float | None]] = [
    (
        lambda fake: fake.reply_rate_limited(retry_after=7),
        ProviderUnavailableError,
        "error 429 (requests/rate_limit_exceeded): Rate limit reached",
        7.0,
    ),
    (
        lambda fake: fake.reply_server_error(),
        ProviderUnavailableError,
        "error 500 (server_error)",
        None,
    ),
    (
        lambda fake: fake.reply_error(408, "timeout", "slow", headers={"retry-after-ms": "1500"}),
        ProviderUnavailableError,
        "error 408 (timeout): slow",
        1.5,
    ),
    (
        lambda fake: fake.reply_error(409, "conflict", "busy"),
        ProviderUnavailableError,
        "error 409",
        None,
    ),
    (
        lambda fake: fake.reply_bad_request("max_tokens is too large"),
        ProviderRefusedError,
        "error 400 (invalid_request_error): max_tokens is too large",
        None,
    ),
    (
        lambda fake: fake.reply_unauthorized(),
        ProviderRefusedError,
        "error 401 (invalid_request_error/invalid_api_key): Incorrect API key provided",
        None,
    ),
    (
        lambda fake: fake.reply_model_not_found("llama3.1"),
        ProviderRefusedError,
        "error 404 (invalid_request_error/model_not_found): The model `llama3.1` does not exist",
        None,
    ),
    (
        lambda fake: fake.reply_error(
            503, "overloaded", "later", headers={"x-should-retry": "false"}
        ),
        ProviderRefusedError,
        "error 503 (overloaded): later",
        None,
    ),
    (
        lambda fake: fake.reply_error(400, "odd", "try again", headers={"x-should-retry": "true"}),
        ProviderUnavailableError,
        "error 400 (odd): try again",
        None,
    ),
]


@pytest.mark.parametrize(("script", "error_class", "message", "retry_after"), ERRORS)
async def test_status_errors_are_classified_and_name_the_provider(
    script: Callable[[FakeOpenAI], None],
    error_class: type[Exception],
    message: str,
    retry_after: float | None,
) -> None:
    """429, 408, 409, 5xx retry (with the server's wait); other 4xx do not; x-should-retry wins."""
    with FakeOpenAI() as fake:
        script(fake)
        error, _, usages = await call(fake, request())
    assert type(error) is error_class
    assert str(error).startswith(f"{WHERE}: {message}")
    assert getattr(error, "status", None) == int(message.split()[1])  # structured, for fallback
    assert "[request-id req_fake_" in str(error)
    assert usages == []  # nothing was spent
    if isinstance(error, RetryableError):
        assert error.retry_after == retry_after


async def test_a_401_from_openais_own_api_names_the_key_variable() -> None:
    """The message of a rejected key says where the key comes from, never the key itself."""
    provider = OpenAIProvider("openai", base_url=None, api_key=None)
    given = OpenAIProvider("openai", base_url="https://api.openai.com/v1", api_key="sk-secret")
    with FakeOpenAI() as fake:
        fake.reply_unauthorized()
        fake.reply_unauthorized()
        error, _, _ = await call(fake, request(), provider)
        from_config, _, _ = await call(fake, request(), given)
    assert str(error).endswith("; check the API key in OPENAI_API_KEY")
    assert "OPENAI_API_KEY" not in str(from_config)
    assert "sk-secret" not in str(from_config)


async def test_an_error_chunk_mid_stream_fails_after_the_text_and_reports_an_estimate() -> None:
    """An error chunk: retryable, named; the text streamed so far counted as estimated usage."""
    with FakeOpenAI() as fake:
        fake.reply_stream_error("server_error", "the model crashed", text="partial answer")
        error, texts, usages = await call(fake, request())
    assert type(error) is ProviderUnavailableError
    assert str(error) == f"{WHERE}: error while streaming (server_error): the model crashed"
    assert "".join(texts) == "partial answer"
    [usage] = usages
    assert usage.estimated
    assert usage.output_tokens == 4


async def test_an_invalid_request_error_chunk_is_not_retried() -> None:
    """A stream error that says the request itself is wrong is not retryable."""
    with FakeOpenAI() as fake:
        fake.reply_stream_error("invalid_request_error", "context too long")
        error, _, _ = await call(fake, request())
    assert type(error) is ProviderRefusedError


@pytest.mark.parametrize(
    ("kind", "stream", "problem"),
    [
        ("json_body", True, "the stream request got no chunk at all"),
        ("no_choices", True, "stream chunk 1 has no 'choices' list"),
        ("truncated", True, "the stream ended after 3 chunks without a finish reason"),
        ("not_json", True, "a stream chunk is not JSON: '{not json'"),
        ("no_choices", False, "the completion has no 'choices'"),
        ("truncated", False, "the completion is not JSON"),
        ("not_json", False, "the completion is not JSON: '<html>502 Bad Gateway</html>'"),
    ],
)
async def test_malformed_output_is_a_provider_response_error(
    kind: Any, stream: bool, problem: str
) -> None:
    """Each malformed answer fails the attempt (retryably), naming the provider and the fault."""
    with FakeOpenAI(chunk_size=4) as fake:
        fake.reply_malformed(kind, text="cut off")
        error, _, usages = await call(fake, request(stream=stream))
    assert type(error) is ProviderResponseError
    assert isinstance(error, RetryableError)
    assert str(error).startswith(f"{WHERE} answered malformed output: {problem}")
    assert len(usages) == 1  # the call may have cost tokens: an estimate is reported


@pytest.mark.parametrize("stream", [True, False])
async def test_unparseable_tool_arguments_are_a_provider_response_error(stream: bool) -> None:
    """Tool arguments that are not a JSON object fail the attempt with the tool's name."""
    with FakeOpenAI() as fake:
        fake.reply_tool_calls([{"name": "search", "arguments": '{"q": '}])
        fake.reply_tool_calls([{"name": "search", "arguments": "[1]"}])
        first, _, _ = await call(fake, request(stream=stream))
        second, _, _ = await call(fake, request(stream=stream))
    assert type(first) is ProviderResponseError
    assert "the arguments of tool call 1 ('search') are not JSON" in str(first)
    assert type(second) is ProviderResponseError
    assert "the arguments of tool call 1 ('search') are not a JSON object: '[1]'" in str(second)


async def test_a_tool_call_without_a_name_is_malformed() -> None:
    """A tool call must name its function."""
    with FakeOpenAI() as fake:
        fake.reply_tool_calls([{"name": ""}])
        error, _, _ = await call(fake, request())
    assert "tool call 1 has no function name" in str(error)


async def test_a_timeout_and_a_refused_connection_are_retryable() -> None:
    """The SDK's timeout and connection errors become retryable errors naming the provider."""

    async def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    async def hang(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    for handler, text in [
        (refuse, f"could not reach {WHERE}: ConnectError: connection refused"),
        (hang, f"{WHERE} did not answer within the request timeout of 10 s"),
    ]:

        def factory(handler: Any = handler) -> openai.AsyncOpenAI:
            client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
            return openai.AsyncOpenAI(
                api_key="k", base_url=LOCAL, max_retries=0, http_client=client
            )

        with use_openai_client(factory), pytest.raises(RetryableError) as caught:
            await local().complete(request(), timeout=10)
        assert str(caught.value) == text


class _BrokenBody(httpx2.AsyncByteStream):
    """A body that sends its first bytes, then loses the connection."""

    def __init__(self, first: bytes) -> None:
        self._first = first

    async def __aiter__(self) -> Any:
        yield self._first
        raise httpx2.RemoteProtocolError("peer closed connection without sending complete body")


@pytest.mark.parametrize("stream", [True, False])
async def test_a_connection_dropped_mid_reply_is_retryable(stream: bool) -> None:
    """The body cut off while it is read: a retryable error naming the provider, no traceback."""

    async def drop(request: httpx2.Request) -> httpx2.Response:
        first = b'data: {"choices": [' if stream else b'{"choices": ['
        kind = "text/event-stream" if stream else "application/json"
        return httpx2.Response(200, headers={"content-type": kind}, stream=_BrokenBody(first))

    def factory() -> openai.AsyncOpenAI:
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(drop))
        return openai.AsyncOpenAI(api_key="k", base_url=LOCAL, max_retries=0, http_client=client)

    with use_openai_client(factory), pytest.raises(RetryableError) as caught:
        await local().complete(request(stream=stream), timeout=10)
    assert str(caught.value).startswith(
        f"could not reach {WHERE}: the connection broke while the reply was read: "
        "RemoteProtocolError: peer closed connection"
    )


async def test_cancellation_passes_through_and_still_reports_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancelled stream is not wrapped; what was spent so far is reported as an estimate."""
    usages: list[Usage] = []
    with FakeOpenAI(delay=1.0) as fake:
        fake.reply_text("a long answer that takes a while")
        with use_fake_openai(fake), trio.move_on_after(2.5) as scope:
            await local().complete(request(), timeout=60, on_usage=usages.append)
    assert scope.cancelled_caught
    [usage] = usages
    assert usage.estimated


async def test_one_client_serves_the_calls_of_a_hold_and_closes_after() -> None:
    """Calls inside `hold()` share one client; it is closed when the last holder ends."""
    made: list[openai.AsyncOpenAI] = []
    fake = FakeOpenAI()

    def factory() -> openai.AsyncOpenAI:
        made.append(fake.make_client())
        return made[-1]

    provider = local()
    with fake, use_openai_client(factory):
        fake.reply_text("one")
        fake.reply_text("two")
        async with provider.hold() as held:
            await provider.complete(request(), timeout=10)
            await provider.complete(request(), timeout=10)
            assert not held.is_closed()
        assert held.is_closed()
        fake.reply_text("three")
        await provider.complete(request(), timeout=10)
    assert len(made) == 2
    await provider.aclose()


async def test_aclose_leaves_nothing_open_and_the_next_call_makes_a_client() -> None:
    """The last holder closed the client already; after `aclose` a call makes another."""
    fake = FakeOpenAI()
    provider = local()
    with fake, use_fake_openai(fake):
        async with provider.hold() as held:
            pass
        await provider.aclose()
        assert held.is_closed()
        fake.reply_text("again")
        assert (await provider.complete(request(), timeout=10)).text == "again"
        await provider.aclose()


async def test_openais_own_api_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key for api.openai.com the call fails at once, naming OPENAI_API_KEY."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    provider = OpenAIProvider("openai", base_url=None, api_key=None)
    assert provider.base_url == "https://api.openai.com/v1"
    with pytest.raises(MissingAPIKeyError) as caught:
        await provider.complete(request(), timeout=10)
    assert str(caught.value) == (
        "provider 'openai' (openai at https://api.openai.com/v1) has no API key; set the "
        "OPENAI_API_KEY environment variable (no key was found there or in the configuration)"
    )
    assert isinstance(caught.value, NonRetryableError)


async def test_keys_base_urls_and_headers_reach_the_sdk_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client gets the key: the given one, else OPENAI_API_KEY, else a placeholder."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://gateway.example/v1")
    built = OpenAIProvider("openai", base_url=None, api_key=None)
    assert built.base_url == "https://gateway.example/v1"
    cases = [
        (built, "sk-from-env", "https://gateway.example/v1/"),
        (local(), NO_KEY, f"{LOCAL}/"),
        (
            OpenAIProvider("o", base_url="https://api.openai.com/v1", api_key=None),
            "sk-from-env",
            None,
        ),
        (OpenAIProvider("o", base_url=LOCAL, api_key="sk-given"), "sk-given", None),
    ]
    for provider, key, url in cases:
        async with provider.hold() as client:
            assert client.api_key == key
            assert client.max_retries == 0
            if url is not None:
                assert str(client.base_url) == url


def test_require_openai_names_the_extra_when_the_package_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the `openai` package the error says what to install; with it, nothing happens."""
    require_openai("local")
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingPackageError) as caught:
        require_openai("local")
    assert str(caught.value) == (
        "provider 'local' is of kind openai, which needs the openai package: "
        "pip install 'orchestr8[openai]'"
    )
    assert isinstance(caught.value, AgentConfigurationError)
    assert isinstance(caught.value, NonRetryableError)  # another attempt cannot install it


async def test_a_call_without_the_package_fails_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first call of a provider without `openai` installed fails with the install hint."""
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingPackageError, match=r"pip install 'orchestr8\[openai\]'"):
        async with local().hold():
            pass


async def test_a_call_over_loopback_to_the_served_fake() -> None:
    """Over real HTTP: the provider's own client streams from the fake served on loopback."""
    fake = FakeOpenAI(chunk_size=3)
    fake.reply_text("over the wire", prompt_tokens=4, completion_tokens=3)
    async with fake.serve() as base_url:
        provider = OpenAIProvider("local", base_url=base_url, api_key=None)
        texts: list[str] = []
        reply = await provider.complete(request(), timeout=10, on_text=texts.append)
        await provider.aclose()
    assert reply.text == "over the wire"
    assert "".join(texts) == "over the wire"
    assert reply.usage == Usage(input_tokens=4, output_tokens=3)
    [sent] = fake.requests
    assert sent.has_credentials  # the placeholder key; servers that need none ignore it
    fake.assert_all_used()


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)


# A named function, not a lambda: Hypothesis reads a lambda's source to check that it recurses,
# and a lambda spread over several lines defeats that reading now and then.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8), _containers, max_leaves=6
)


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(max_size=60),
    arguments=st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3),
    chunk_size=st.integers(min_value=1, max_value=12),
)
def test_a_streamed_reply_is_the_same_reply_as_the_whole_one(
    text: str, arguments: dict[str, Any], chunk_size: int
) -> None:
    """Whatever the text, arguments and chunking, streaming reassembles the non-streamed reply."""

    async def both() -> tuple[Any, Any, list[str]]:
        fake = FakeOpenAI(chunk_size=chunk_size)
        texts: list[str] = []
        with fake, use_fake_openai(fake):
            replies = []
            for stream in (True, False):
                fake.reply_tool_calls([{"name": "t", "arguments": arguments, "id": "c"}], text=text)
                replies.append(
                    await local().complete(request(stream=stream), timeout=10, on_text=texts.append)
                )
        return replies[0], replies[1], texts

    streamed, whole, texts = trio.run(both)
    assert "".join(texts) == streamed.text == whole.text == text
    assert streamed.tool_calls == whole.tool_calls
    assert streamed.tool_calls[0].input == arguments
    assert streamed.assistant_message == whole.assistant_message
    assert streamed.usage == whole.usage


async def test_after_a_failure_the_rest_of_the_stream_is_read_for_a_moment_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A slow server that keeps sending after a bad chunk is left after a second of draining."""
    with FakeOpenAI(delay=5.0) as fake:
        fake.reply_malformed("not_json")
        start = trio.current_time()
        error, _, _ = await call(fake, request())
    assert type(error) is ProviderResponseError
    assert trio.current_time() - start == pytest.approx(6.0)  # the bad chunk at 5 s, then 1 s


async def test_the_providers_headers_go_with_every_request() -> None:
    """Extra headers reach the server (a credential header such as Azure's is never recorded)."""
    provider = local(headers={"x-team": "bees", "api-key": "azure-secret"})
    with FakeOpenAI() as fake:
        fake.reply_text("one")
        fake.reply_text("two")
        await call(fake, request(), provider)
        await call(fake, request(stream=False), provider)
    for sent in fake.requests:
        assert sent.headers["x-team"] == "bees"
        assert sent.has_credentials
        assert "azure-secret" not in repr(sent)


async def test_a_declared_provider_never_reads_openai_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without `key_variable`: OpenAI's own API is refused keyless, another server gets none."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-secret")
    official = OpenAIProvider(
        "team", base_url="https://api.openai.com/v1", api_key=None, key_variable=None
    )
    with pytest.raises(MissingAPIKeyError, match=r"provider 'team'.*only the key its spec"):
        await official.complete(request(), timeout=10)
    spy = KeySpy()
    async with spy.serve() as url:
        lab = OpenAIProvider("lab", base_url=f"{url}/v1", api_key=None, key_variable=None)
        with pytest.raises(ProviderUnavailableError):
            await lab.complete(request(), timeout=10)
    assert spy.seen == [{"authorization": f"Bearer {NO_KEY}"}]


@pytest.mark.parametrize(
    "body", [b"data: {not json}\n\n", b'data: {"choices": 5}\n\ndata: [DONE]\n\n']
)
async def test_a_garbage_stream_on_loopback_is_a_provider_response_error(body: bytes) -> None:
    """A server streaming garbage fails the call with `ProviderResponseError` naming it."""
    spy = KeySpy(status=200, content_type="text/event-stream", body=body)
    async with spy.serve() as url:
        provider = OpenAIProvider("go", base_url=f"{url}/v1", api_key=None)
        with pytest.raises(ProviderResponseError, match=r"^provider 'go' \(openai at .*malformed"):
            await provider.complete(request(), timeout=10)
