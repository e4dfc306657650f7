"""Neutral requests as Chat Completions bodies: messages, tools, JSON output and limits."""

from __future__ import annotations

from orchestr8 import Capability, ChatMessage, ChatRequest
from orchestr8._llm._openai_messages import chat_completion_body

EVERYTHING = frozenset(Capability)


def test_a_plain_request_is_model_messages_and_max_tokens() -> None:
    """Without system, tools, schema or streaming the body is minimal."""
    body = chat_completion_body(
        ChatRequest(model="m", messages=[ChatMessage("user", "hi")], stream=False),
        capabilities=EVERYTHING,
        official_api=False,
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1024,
    }


def test_content_blocks_become_strings_and_tool_messages() -> None:
    """Text blocks join into one string; an assistant turn without text has null content."""
    request = ChatRequest(
        model="m",
        messages=[
            ChatMessage("user", ({"type": "text", "text": "a"}, {"type": "text", "text": "b"})),
            ChatMessage("assistant", ({"type": "tool_use", "id": "1", "name": "t", "input": {}},)),
            ChatMessage(
                "user",
                ({"type": "tool_result", "tool_use_id": "1", "content": [{"n": 1}]},),
            ),
        ],
    )
    messages = chat_completion_body(request, capabilities=EVERYTHING, official_api=True)["messages"]
    assert messages[0] == {"role": "user", "content": "ab"}
    assert messages[1]["content"] is None
    assert messages[1]["tool_calls"][0]["function"] == {"name": "t", "arguments": "{}"}
    assert messages[2] == {"role": "tool", "tool_call_id": "1", "content": '[{"n": 1}]'}
    assert len(messages) == 3  # no empty user message after the tool results


def test_an_empty_user_turn_still_sends_a_user_message() -> None:
    """A user turn with no blocks at all becomes an empty user message, not nothing."""
    request = ChatRequest(model="m", messages=[ChatMessage("user", ())])
    body = chat_completion_body(request, capabilities=EVERYTHING, official_api=False)
    assert body["messages"] == [{"role": "user", "content": ""}]
