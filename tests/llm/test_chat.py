"""The provider-neutral call model: messages, requests, usage and estimates."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestr8 import ChatMessage, ChatRequest, ToolSpec, Usage
from orchestr8._llm._chat import CHARACTERS_PER_TOKEN, estimate_tokens

counts = st.integers(min_value=0, max_value=10**9)
usages = st.builds(
    Usage,
    input_tokens=counts,
    output_tokens=counts,
    cached_input_tokens=counts,
    reasoning_tokens=counts,
    estimated=st.booleans(),
)


def test_a_message_with_blocks_reads_as_its_text_and_as_json() -> None:
    """Content blocks keep their order; `text()` joins the text blocks only."""
    message = ChatMessage(
        "assistant",
        [
            {"type": "text", "text": "Let me look. "},
            {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "bees"}},
            {"type": "text", "text": "Done."},
        ],
    )
    assert message.text() == "Let me look. Done."
    assert message.to_json()["content"][1]["name"] == "search"
    assert ChatMessage("user", "hi").to_json() == {"role": "user", "content": "hi"}
    assert ChatMessage("user", "hi").text() == "hi"


def test_a_request_counts_every_character_it_sends() -> None:
    """System prompt, messages, tools and the schema all count towards the input estimate."""
    bare = ChatRequest(model="m", messages=[ChatMessage("user", "x" * 40)])
    assert bare.prompt_characters() == 40
    assert bare.estimated_input_tokens() == 10
    fuller = ChatRequest(
        model="m",
        messages=[ChatMessage("user", ({"type": "text", "text": "x" * 40},))],
        system="s" * 8,
        tools=[ToolSpec("search", "find things", {"type": "object"})],
        json_schema={"type": "object"},
    )
    assert fuller.prompt_characters() > 48 + len("search") + len("find things")


@given(st.integers(min_value=0, max_value=10**12))
def test_estimates_round_up_to_whole_tokens(characters: int) -> None:
    """An estimate never undercounts, and overcounts by less than one token."""
    tokens = estimate_tokens(characters)
    assert tokens * CHARACTERS_PER_TOKEN >= characters > (tokens - 1) * CHARACTERS_PER_TOKEN - 1


@given(usages, usages)
def test_usages_add_field_by_field_and_stay_estimated(first: Usage, second: Usage) -> None:
    """The sum adds each count; it is an estimate as soon as either part is one."""
    total = first + second
    assert total.input_tokens == first.input_tokens + second.input_tokens
    assert total.output_tokens == first.output_tokens + second.output_tokens
    assert total.cached_input_tokens == first.cached_input_tokens + second.cached_input_tokens
    assert total.reasoning_tokens == first.reasoning_tokens + second.reasoning_tokens
    assert total.estimated == (first.estimated or second.estimated)


def test_usage_counts_leave_out_zero_extras_and_the_estimate_flag() -> None:
    """`as_counts` feeds `record_usage` (whole numbers only); `to_json` adds `estimated`."""
    assert Usage(input_tokens=3, output_tokens=4).as_counts() == {
        "input_tokens": 3,
        "output_tokens": 4,
    }
    usage = Usage(input_tokens=3, output_tokens=4, cached_input_tokens=2, reasoning_tokens=1)
    assert usage.as_counts()["cached_input_tokens"] == 2
    assert usage.as_counts()["reasoning_tokens"] == 1
    assert "estimated" not in usage.to_json()
    assert Usage(estimated=True).to_json() == {
        "input_tokens": 0,
        "output_tokens": 0,
        "estimated": True,
    }
