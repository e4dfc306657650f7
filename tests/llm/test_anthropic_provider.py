"""The Anthropic provider: neutral requests in, neutral replies out, one client while held."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from key_spy import KeySpy

from orchestr8 import (
    AnthropicProvider,
    Capability,
    ChatMessage,
    ChatRequest,
    MissingAPIKeyError,
    ProviderRefusedError,
    ProviderResponseError,
    ProviderUnavailableError,
    ToolSpec,
    Usage,
)
from orchestr8.testing import FakeAnthropic, use_anthropic_client, use_fake_anthropic


def request(**changes: Any) -> ChatRequest:
    base: dict[str, Any] = {"model": "claude-test", "messages": [ChatMessage("user", "hi")]}
    return ChatRequest(**(base | changes))


def keeping_factory(fake: FakeAnthropic) -> tuple[Callable[[], Any], list[Any]]:
    """A client factory for `fake` and the list of every client it made, to count and check."""
    clients: list[Any] = []

    def factory() -> Any:
        clients.append(fake.make_client())
        return clients[-1]

    return factory, clients


async def test_a_plain_call_returns_the_text_usage_and_the_turn_to_send_back() -> None:
    """Non-streamed: the reply's text, normalised stop reason, usage and assistant turn."""
    fake = FakeAnthropic()
    fake.reply_text("Bees.", input_tokens=7, output_tokens=2)
    seen: list[Usage] = []
    with fake, use_fake_anthropic(fake):
        reply = await AnthropicProvider().complete(
            request(stream=False, system="Be brief.", temperature=0.2),
            timeout=10,
            on_usage=seen.append,
        )
    assert reply.text == "Bees."
    assert reply.provider == "anthropic"
    assert reply.stop_reason == "end_turn"
    assert reply.usage == Usage(input_tokens=7, output_tokens=2)
    assert seen == [reply.usage]
    assert reply.assistant_message.text() == "Bees."
    sent = fake.requests[0].json
    assert sent["system"] == "Be brief."
    assert sent["temperature"] == 0.2


async def test_a_streamed_tool_call_comes_back_as_a_tool_call() -> None:
    """Tools go out in the Messages API's shape; a `tool_use` reply is a neutral `ToolCall`."""
    fake = FakeAnthropic()
    fake.reply_tool_use("search", {"q": "bees"}, id="toolu_1", text="Looking.")
    texts: list[str] = []
    tool = ToolSpec("search", "find things", {"type": "object"})
    with fake, use_fake_anthropic(fake):
        reply = await AnthropicProvider().complete(
            request(tools=[tool]), timeout=10, on_text=texts.append
        )
    assert "".join(texts) == "Looking."
    assert reply.stop_reason == "tool_use"
    (call,) = reply.tool_calls
    assert (call.id, call.name, dict(call.input)) == ("toolu_1", "search", {"q": "bees"})
    assert fake.requests[0].json["tools"] == [
        {"name": "search", "input_schema": {"type": "object"}, "description": "find things"}
    ]


async def test_one_client_serves_every_call_while_held_and_closes_after() -> None:
    """Holding the provider keeps one client across calls; it is closed when the hold ends."""
    fake = FakeAnthropic()
    fake.reply_text("one")
    fake.reply_text("two")
    factory, clients = keeping_factory(fake)
    provider = AnthropicProvider()
    with fake, use_anthropic_client(factory):
        async with provider.hold():
            await provider.complete(request(), timeout=10)
            await provider.complete(request(), timeout=10)
        await provider.aclose()
    assert len(clients) == 1
    assert clients[0].is_closed()


async def test_without_a_key_the_first_call_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No hook and no key: `MissingAPIKeyError` names the provider and the variable."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    provider = AnthropicProvider("claude", key_variable="ANTHROPIC_API_KEY")
    with pytest.raises(MissingAPIKeyError, match=r"provider 'claude'.*ANTHROPIC_API_KEY"):
        await provider.complete(request(), timeout=10)
    assert repr(provider) == "<AnthropicProvider 'claude'>"
    assert provider.capabilities == frozenset(Capability)


async def test_a_configured_key_base_url_and_headers_reach_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A provider spec's key, URL and headers make the SDK client (no hook active)."""
    fake = FakeAnthropic()
    fake.reply_text("hello")
    async with fake.serve() as base_url:
        provider = AnthropicProvider(
            "mine", base_url=base_url, api_key="sk-test", headers={"x-team": "bees"}
        )
        assert base_url in provider.describe()
        reply = await provider.complete(request(), timeout=10)
        await provider.aclose()
    fake.assert_all_used()
    assert reply.text == "hello"
    assert fake.requests[0].headers["x-team"] == "bees"
    assert fake.requests[0].has_credentials


async def test_aclose_while_held_leaves_the_client_to_its_holder() -> None:
    """`aclose` during a `hold` does not orphan the client: the holder's end closes it."""
    fake = FakeAnthropic()
    fake.reply_text("one")
    factory, clients = keeping_factory(fake)
    provider = AnthropicProvider()
    with fake, use_anthropic_client(factory):
        async with provider.hold():
            await provider.aclose()
            await provider.complete(request(), timeout=10)
        assert len(clients) == 1
        assert clients[0].is_closed()


async def test_a_provider_without_a_key_variable_sends_no_key_to_its_own_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A declared provider (no `key_variable`) never reads ANTHROPIC_API_KEY and sends none."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env-secret")
    spy = KeySpy()
    async with spy.serve() as url:
        provider = AnthropicProvider("b", base_url=url, key_variable=None)
        with pytest.raises(ProviderUnavailableError) as caught:
            await provider.complete(request(), timeout=10)
    assert spy.seen == [{}]
    assert caught.value.status == 500


async def test_a_declared_provider_of_anthropic_s_own_api_needs_its_own_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without `key_variable` and `api_key`, Anthropic's own API is refused before any call."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env-secret")
    for base_url in (None, "https://api.anthropic.com"):
        provider = AnthropicProvider("team", base_url=base_url, key_variable=None)
        with pytest.raises(MissingAPIKeyError, match=r"provider 'team'.*only the key its spec"):
            await provider.complete(request(), timeout=10)


# The anthropic SDK leaves its own SSE decoder's async generators suspended when a chunk is not
# JSON; trio finalises them with a ResourceWarning (silent outside tests), which is not ours.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/event-stream", b"event: message_start\ndata: {not json}\n\n"),
        ("application/json", b'{"id": 1, "content": "not blocks"}'),
    ],
)
async def test_malformed_output_is_a_provider_response_error_naming_the_provider(
    content_type: str, body: bytes
) -> None:
    """Garbage SSE or a JSON body of the wrong shape: `ProviderResponseError` naming 'gs'."""
    spy = KeySpy(status=200, content_type=content_type, body=body)
    async with spy.serve() as url:
        provider = AnthropicProvider("gs", base_url=url, api_key="sk-gs")
        for stream in (True, False):
            with pytest.raises(ProviderResponseError, match=r"^provider 'gs' \(anthropic at "):
                await provider.complete(request(stream=stream), timeout=10)


async def test_status_errors_carry_their_http_status() -> None:
    """401 is refused with `status` 401 (fallback reads it); 529 is unavailable with 529."""
    fake = FakeAnthropic()
    fake.reply_unauthorized()
    fake.reply_overloaded()
    errors: list[Exception] = []
    with use_fake_anthropic(fake):
        for _ in range(2):
            try:
                await AnthropicProvider().complete(request(), timeout=10)
            except (ProviderRefusedError, ProviderUnavailableError) as error:
                errors.append(error)
    assert [(type(e).__name__, getattr(e, "status", None)) for e in errors] == [
        ("ProviderRefusedError", 401),
        ("ProviderUnavailableError", 529),
    ]
