"""Acceptance: `llm` steps on OpenAI-compatible models, with both fakes in process.

FakeAnthropic and FakeOpenAI stand for Anthropic and a local Ollama (`local:`): a step falls back
from an overloaded Anthropic to the local model, and a local model runs a tool loop and a JSON
reply, each call journaled with the provider that answered.
"""

from __future__ import annotations

from typing import Any

import trio.testing

from orchestr8.testing import (
    FakeAnthropic,
    FakeOpenAI,
    run_workflow_for_test,
    use_fake_anthropic,
    use_fake_openai,
)


def workflow(config: dict[str, Any]) -> dict[str, Any]:
    """One `llm` step with `config`, tried once, its output the workflow's."""
    return {
        "schema_version": "1.1",
        "name": "local",
        "steps": [
            {
                "id": "ask",
                "agent": {"id": "llm", "config": config},
                "input": "Which tasks are running?",
                "policy": {"retry": {"max_attempts": 1}},
            }
        ],
        "output": "${steps.ask.output}",
    }


async def test_an_overloaded_anthropic_falls_back_to_the_local_model(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Anthropic's 529 moves the call to `local:llama3.1`, which answers; both are journaled."""
    anthropic, local = FakeAnthropic(), FakeOpenAI()
    anthropic.reply_overloaded()
    local.reply_text("Two tasks.", prompt_tokens=12, completion_tokens=3, cached_tokens=4)
    config = {"model": "claude-test", "fallback": ["local:llama3.1"]}
    with anthropic, local, use_fake_anthropic(anthropic), use_fake_openai(local):
        run = await run_workflow_for_test(workflow(config))
    assert run.result.succeeded, run.result.error
    assert run.result.output["text"] == "Two tasks."
    assert (run.result.output["provider"], run.result.output["model"]) == ("local", "llama3.1")
    calls = [event.data for event in run.of_type("llm.called")]
    assert [(c["provider"], c["outcome"], c["fallback_index"]) for c in calls] == [
        ("anthropic", "failed", 0),
        ("local", "succeeded", 1),
    ]
    assert calls[1]["usage"] == {"input_tokens": 12, "output_tokens": 3, "cached_input_tokens": 4}
    assert local.requests[0].json["messages"][-1] == {
        "role": "user",
        "content": "Which tasks are running?",
    }


async def test_a_local_model_runs_a_tool_loop(autojump_clock: trio.testing.MockClock) -> None:
    """The model's tool call runs the tool agent; its result goes back as a `role: tool` message."""
    local = FakeOpenAI()
    local.reply_tool_calls([{"name": "shout", "arguments": {"text": "hi"}, "id": "call_7"}])
    local.reply_text("The tool said HI.")
    config = {
        "model": "local:llama3.1",
        "tools": {"shout": {"agent": "echo", "description": "Echo the input back."}},
    }
    with local, use_fake_openai(local):
        run = await run_workflow_for_test(workflow(config))
    assert run.result.succeeded, run.result.error
    assert run.result.output["text"] == "The tool said HI."
    first, second = (request.json for request in local.requests)
    assert first["tools"][0]["function"]["name"] == "shout"
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_7"
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_7",
        "content": '{"text": "hi"}',
    }


async def test_a_local_model_answers_json_for_an_output_schema(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`output_schema` goes out as `response_format`; the JSON reply is parsed and checked."""
    local = FakeOpenAI()
    local.reply_json({"count": 2})
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    with local, use_fake_openai(local):
        run = await run_workflow_for_test(
            workflow({"model": "local:llama3.1", "output_schema": schema})
        )
    assert run.result.succeeded, run.result.error
    assert run.result.output["json"] == {"count": 2}
    sent = local.requests[0].json
    assert sent["response_format"]["json_schema"]["schema"] == schema
