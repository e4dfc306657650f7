"""Reading Chat Completions answers: stream lines and JSON bodies into neutral replies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestr8 import Usage
from orchestr8._errors import ProviderResponseError
from orchestr8._llm._openai_replies import StreamedCompletion, completion_reply, usage_of


def problem(what: str) -> ProviderResponseError:
    """The provider's malformed-output error, as the provider builds it."""
    return ProviderResponseError(f"malformed: {what}")


def line(chunk: Any) -> str:
    """One `data:` line holding `chunk` as JSON."""
    return f"data: {json.dumps(chunk)}"


def choice(delta: Any, finish_reason: str | None = None) -> dict[str, Any]:
    """A chunk with one choice holding `delta`."""
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def reader() -> StreamedCompletion:
    """A reader for model `m`, dropping text deltas."""
    return StreamedCompletion(problem, model="m", on_text=None)


def test_separators_comments_and_lines_after_done_are_ignored() -> None:
    """Blank lines, `: ping` comments, `event:` lines and anything after `[DONE]` are skipped."""
    stream = reader()
    for text in ["", ": ping", "event: message", line(choice({"content": "hi"}, "stop"))]:
        assert stream.feed(text) is None
    stream.feed("data: [DONE]")
    stream.feed("data: {not json")
    assert stream.done
    assert stream.reply("p", Usage()).text == "hi"


def test_an_error_chunk_is_handed_back() -> None:
    """`{"error": {...}}` is returned for the provider to classify; a bare string is wrapped."""
    stream = reader()
    assert stream.feed(line({"error": {"type": "server_error", "message": "x"}})) == {
        "type": "server_error",
        "message": "x",
    }
    assert stream.feed(line({"error": "down"})) == {"message": "down"}


def test_a_usage_chunk_without_choices_is_fine_but_other_chunks_need_choices() -> None:
    """Only the usage chunk may leave out `choices`; it also names the model that answered."""
    stream = reader()
    stream.feed(line({"model": "m-2", "usage": {"prompt_tokens": 2, "completion_tokens": 1}}))
    assert stream.usage == Usage(input_tokens=2, output_tokens=1)
    assert stream.model == "m-2"
    with pytest.raises(ProviderResponseError, match="stream chunk 2 has no 'choices' list"):
        stream.feed(line({"id": "x"}))


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        ([1, 2], "a stream chunk is not a JSON object"),
        ({"choices": ["x"]}, "stream chunk 1 has a choice that is not an object"),
        (choice("x"), "stream chunk 1 has a delta that is not an object"),
        (choice({"tool_calls": ["x"]}), "stream chunk 1 has a malformed tool call"),
        (choice({"tool_calls": [{"function": "x"}]}), "stream chunk 1 has a malformed tool call"),
    ],
)
def test_malformed_chunks_are_named(chunk: Any, message: str) -> None:
    """Each malformed chunk shape raises a `ProviderResponseError` saying what was wrong."""
    with pytest.raises(ProviderResponseError, match=message):
        reader().feed(line(chunk))


def test_text_deltas_go_to_on_text_as_they_come() -> None:
    """`on_text` gets each non-empty text delta; the output characters count them."""
    seen: list[str] = []
    stream = StreamedCompletion(problem, model="m", on_text=seen.append)
    for delta in ({"role": "assistant", "content": ""}, {"content": "ab"}, {"content": "c"}):
        stream.feed(line(choice(delta)))
    assert seen == ["ab", "c"]
    assert stream.output_characters == 3


def test_usage_of_reads_details_and_ignores_odd_values() -> None:
    """Cached and reasoning counts come from the details; missing or odd values count 0."""
    assert usage_of(
        {
            "prompt_tokens": 9,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    ) == Usage(input_tokens=9, output_tokens=4, cached_input_tokens=3, reasoning_tokens=2)
    assert (
        usage_of({"prompt_tokens": -1, "completion_tokens": True, "prompt_tokens_details": None})
        == Usage()
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"choices": []}, "the completion has no 'choices'"),
        ([], "the completion has no 'choices'"),
        (
            {"choices": [{"finish_reason": "stop"}]},
            "the completion's first choice has no 'message'",
        ),
        (
            {"choices": [{"message": {"tool_calls": [{"id": "c"}]}}]},
            "a tool call of the completion has no 'function' object",
        ),
    ],
)
def test_malformed_completions_are_named(body: Any, message: str) -> None:
    """A JSON completion without a choice, a message or a tool call's function is malformed."""
    with pytest.raises(ProviderResponseError, match=message):
        completion_reply(body, problem, model="m", provider="p", usage=Usage())


def test_a_completion_without_finish_reason_or_model_takes_defaults() -> None:
    """No finish reason means `end_turn`; no model means the requested one; null text is empty."""
    reply = completion_reply(
        {"choices": [{"message": {"content": None}}]},
        problem,
        model="asked",
        provider="p",
        usage=Usage(),
    )
    assert (reply.text, reply.stop_reason, reply.model) == ("", "end_turn", "asked")
    assert reply.assistant_message.content == ()
