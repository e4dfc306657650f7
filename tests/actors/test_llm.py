"""The `llm` agent against FakeAnthropic: prompts, JSON replies, streaming, tools, usage, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
import trio.testing

from actors.llm import (
    LLMAgent,
    MaxTurnsExceededError,
    MissingAPIKeyError,
    ModelOutputError,
    PromptInputError,
    use_anthropic_client,
)
from orchestr8 import (
    AgentConfigurationError,
    AgentContext,
    AgentRegistry,
    ExecutionResult,
    NonRetryableError,
    ProviderResponseError,
    RetryableError,
    WorkflowValidationError,
    open_runtime,
)
from orchestr8._observability._redaction import redact_text
from orchestr8.testing import FakeAnthropic, use_fake_anthropic

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-ant-api03-very-secret-key"
NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}
RETRY: dict[str, Any] = {
    "retry": {"max_attempts": 3, "initial_delay": 0.5, "max_delay": 1.0, "jitter": "none"},
    "circuit_breaker": None,
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real credentials or endpoints leak into a test."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    """A fake plugged into every llm agent of the test, checked to be fully used at the end."""
    fake = FakeAnthropic()
    with fake, use_fake_anthropic(fake):
        yield fake


class Recorder:
    """An AgentContext whose progress and usage land in lists."""

    def __init__(self, deadline: float = float("inf")) -> None:
        self.progress: list[dict[str, Any]] = []
        self.usage: list[dict[str, int]] = []
        self.context = AgentContext(
            execution_id="exec",
            step_id="ask",
            deadline=deadline,
            progress_callback=lambda _, data: self.progress.append(dict(data)),
            usage_callback=lambda _, counts: self.usage.append(dict(counts)),
        )


async def run_agent(config: dict[str, Any], input: Any, recorder: Recorder | None = None) -> Any:
    recorder = recorder or Recorder()
    return await LLMAgent({"model": "claude-test", **config}).run(input, recorder.context)


def workflow(config: dict[str, Any], input: Any, policy: dict[str, Any]) -> dict[str, Any]:
    agent = {"id": "llm", "config": {"model": "claude-test", **config}}
    return {
        "schema_version": "1.0",
        "name": "llm-test",
        "steps": [{"id": "ask", "agent": agent, "input": input, "policy": policy}],
    }


async def execute(document: dict[str, Any]) -> tuple[ExecutionResult, list[Any]]:
    """Run a workflow in a runtime (the `llm` id resolves through its entry point)."""
    async with open_runtime() as runtime:
        handle = await runtime.start(document)
        result = await handle.wait()
        events = await runtime.journal.events(result.execution_id)
    return result, events


def of_type(events: list[Any], type: str) -> list[Any]:
    return [event for event in events if event.type == type]


# -- configuration -----------------------------------------------------------------------------


def test_building_the_agent_needs_neither_anthropic_nor_a_key() -> None:
    code = (
        "import sys\n"
        "from actors.llm import LLMAgent\n"
        "LLMAgent({'model': 'm', 'prompt': '${input}', 'output_schema': {'type': 'object'},"
        " 'tools': {'e': {'agent': 'echo'}}})\n"
        "assert 'anthropic' not in sys.modules, 'anthropic was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=30)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model": "m", "modle": "x"}, r"unknown config key 'modle'"),
        ({}, r"model is required"),
        ({"model": ""}, r"model is required"),
        ({"model": "m", "max_tokens": 0}, r"max_tokens must be a whole number >= 1"),
        ({"model": "m", "max_tokens": True}, r"max_tokens must be"),
        ({"model": "m", "max_turns": 1.5}, r"max_turns must be"),
        ({"model": "m", "temperature": 1.5}, r"temperature must be a number from 0 to 1"),
        ({"model": "m", "request_timeout": 0}, r"request_timeout must be"),
        ({"model": "m", "fallback": "openai:x"}, r"fallback must be a list"),
        ({"model": "m", "fallback": ["gpt-4.1"]}, r"fallback\[0\]: 'gpt-4.1' names no provider"),
        ({"model": "m", "fallback": ["a:x", "a:x"]}, r"fallback\[1\]: 'a:x' is listed twice"),
        ({"model": "Bad:m"}, r"model: 'Bad' in 'Bad:m' is not a provider name"),
        ({"model": "m", "system": ["x"]}, r"system must be a string"),
        ({"model": "m", "api_key": ""}, r"api_key must be a non-empty string"),
        ({"model": "m", "prompt": 3}, r"prompt must be a string"),
        ({"model": "m", "prompt": []}, r"prompt must be a string"),
        ({"model": "m", "prompt": [{"role": "user"}]}, r"prompt\[0\] must be an object"),
        (
            {"model": "m", "prompt": [{"role": "system", "content": "x"}]},
            r"prompt\[0\]\.role must be 'user' or 'assistant'.*'system' config key",
        ),
        ({"model": "m", "prompt": [{"role": "user", "content": 5}]}, r"prompt\[0\]\.content"),
        ({"model": "m", "prompt": "Hi ${input.}"}, r"prompt: invalid placeholder \$\{input\.\}"),
        ({"model": "m", "prompt": "Hi ${input"}, r"unterminated placeholder"),
        (
            {"model": "m", "prompt": "Hi ${inputs.topic}"},
            r"placeholders start with 'input'.*belong in the step's input",
        ),
        ({"model": "m", "system": "${steps.a.output}"}, r"system: invalid placeholder"),
        ({"model": "m", "output_schema": {"type": "nope"}}, r"output_schema is not a valid"),
        ({"model": "m", "output_schema": []}, r"output_schema must be a JSON Schema object"),
        ({"model": "m", "tools": []}, r"tools must be an object"),
        ({"model": "m", "tools": {"bad name": {"agent": "echo"}}}, r"tool name 'bad name'"),
        ({"model": "m", "tools": {"t": {"agent": "echo", "x": 1}}}, r"tools\.t has unknown keys"),
        ({"model": "m", "tools": {"t": {}}}, r"tools\.t\.agent must be an agent id"),
        ({"model": "m", "tools": {"t": {"agent": "no-such-agent"}}}, r"tools\.t: unknown agent"),
        (
            {"model": "m", "tools": {"t": {"agent": "echo", "config": {"x": 1}}}},
            r"tools\.t: .*unknown config key",
        ),
        (
            {"model": "m", "tools": {"t": {"agent": "echo", "input_schema": {"type": "string"}}}},
            r'input_schema must be a JSON Schema object with "type": "object"',
        ),
    ],
)
def test_bad_config_fails_at_construction(config: dict[str, Any], message: str) -> None:
    with pytest.raises(AgentConfigurationError, match=message):
        LLMAgent(config)


def test_every_bad_model_name_and_expect_problem_is_listed_each_at_its_path() -> None:
    """Bad names of the model and each fallback, and each dimension's expect problem, at once."""
    config = {
        "model": "anthropic:",
        "prompt": "hi",
        "fallback": ["gpt-4.1", "openai:gpt-4.1", "openai:gpt-4.1"],
        "expect": {"structure": {"json_schema": 3}, "constraints": {"max_word": 1}},
    }
    with pytest.raises(AgentConfigurationError) as caught:
        LLMAgent(config)
    assert [where for where, _ in caught.value.problems] == [
        "config.model",
        "config.fallback[0]",
        "config.fallback[2]",
        "config.expect.structure.json_schema",
        "config.expect.constraints",
    ]
    assert str(caught.value).startswith("model: 'anthropic:' names provider 'anthropic' but no")


def test_a_problem_without_a_path_beside_bad_names_is_at_config() -> None:
    """A bad key the agent does not locate is listed at `config`, after the bad names."""
    with pytest.raises(AgentConfigurationError) as caught:
        LLMAgent({"model": "m", "fallback": ["gpt"], "temperature": 5})
    assert caught.value.problems == (
        (
            "config.fallback[0]",
            "'gpt' names no provider: write 'provider:model' (e.g. 'anthropic:gpt' or "
            "'openai:gpt')",
        ),
        ("config", "temperature must be a number from 0 to 1, got 5"),
    )


async def test_admission_reports_each_config_problem_at_its_json_path() -> None:
    """Validation shows every located problem of an llm step, at `$.steps[i].agent.config...`."""
    workflow = {
        "schema_version": "1.1",
        "name": "bad-names",
        "steps": [
            {
                "id": "s",
                "agent": {
                    "id": "llm",
                    "config": {
                        "model": "Bad:m",
                        "prompt": "hi",
                        "fallback": ["gpt", "openai:x"],
                        "expect": {"completeness": {"sections": ["a"], "judge": {"model": "j"}}},
                    },
                },
            }
        ],
    }
    async with open_runtime() as runtime:
        with pytest.raises(WorkflowValidationError) as caught:
            runtime.load(workflow)
    assert [problem.path for problem in caught.value.problems] == [
        "$.steps[0].agent.config.model",
        "$.steps[0].agent.config.fallback[0]",
        "$.steps[0].agent.config.expect.completeness.judge.model",
    ]


def test_workflow_validation_reports_a_bad_llm_config() -> None:
    with pytest.raises(AgentConfigurationError, match="unknown config key 'modle'"):
        AgentRegistry().create("llm", {"model": "m", "modle": "x"})


def test_repr_never_shows_the_api_key() -> None:
    agent = LLMAgent({"model": "m", "api_key": SECRET})
    assert SECRET not in repr(agent)


# -- prompts -----------------------------------------------------------------------------------


async def test_string_prompt_fills_placeholders_from_the_input(fake: FakeAnthropic) -> None:
    fake.reply_text("ok")
    prompt = (
        'Topic ${input.topic}; first ${input.items[0]}; odd ${input["a key"]}; '
        "all ${input.items}; literal $${input}; deep ${ input.meta['x'].y }"
    )
    value = {"topic": "bees", "items": ["wax", 2], "a key": True, "meta": {"x": {"y": None}}}
    await run_agent({"prompt": prompt}, value)
    [request] = fake.requests
    assert request.json["messages"] == [
        {
            "role": "user",
            "content": (
                'Topic bees; first wax; odd true; all ["wax", 2]; literal ${input}; deep null'
            ),
        }
    ]


async def test_message_list_prompt_and_system_template(fake: FakeAnthropic) -> None:
    fake.reply_text("ok")
    prompt = [
        {"role": "user", "content": "Name a ${input.kind}."},
        {"role": "assistant", "content": "A ${input.kind} named"},
        {"role": "user", "content": [{"type": "text", "text": "Whole input: ${input}"}]},
    ]
    await run_agent(
        {
            "prompt": prompt,
            "system": "You know ${input.kind}s.",
            "temperature": 0.2,
            "max_tokens": 50,
        },
        {"kind": "cat"},
    )
    body = fake.requests[0].json
    assert body["messages"] == [
        {"role": "user", "content": "Name a cat."},
        {"role": "assistant", "content": "A cat named"},
        {"role": "user", "content": [{"type": "text", "text": 'Whole input: {"kind": "cat"}'}]},
    ]
    assert body["system"] == "You know cats."
    assert (body["temperature"], body["max_tokens"], body["model"]) == (0.2, 50, "claude-test")
    assert body["stream"] is True
    assert "tools" not in body


@pytest.mark.parametrize(
    ("prompt", "value", "message"),
    [
        (
            "${input.topic}",
            {"subject": "x"},
            r"prompt placeholder \$\{input\.topic\}: the step input has no key 'topic' "
            r"\(its keys: 'subject'\)",
        ),
        (
            "${input.items[3]}",
            {"items": [1]},
            r"index 3 is out of range for input\.items \(length 1\)",
        ),
        ("${input.topic.name}", {"topic": "x"}, r"input\.topic is a string, not an object"),
        ("${input[0]}", {"a": 1}, r"input is an object, not an array"),
    ],
)
async def test_a_missing_input_path_is_a_non_retryable_error(
    fake: FakeAnthropic, prompt: str, value: Any, message: str
) -> None:
    with pytest.raises(PromptInputError, match=message) as caught:
        await run_agent({"prompt": prompt}, value)
    assert isinstance(caught.value, NonRetryableError)
    assert fake.requests == []


async def test_without_prompt_the_input_is_the_user_message(fake: FakeAnthropic) -> None:
    fake.reply_text("one")
    fake.reply_text("two")
    await run_agent({}, "Just say hi")
    await run_agent({}, {"prompt": "Hi from an object"})
    assert [request.json["messages"] for request in fake.requests] == [
        [{"role": "user", "content": "Just say hi"}],
        [{"role": "user", "content": "Hi from an object"}],
    ]
    with pytest.raises(PromptInputError, match=r"no 'prompt' config.*got an array"):
        await run_agent({}, ["not", "a", "string"])
    with pytest.raises(PromptInputError, match="object without a string 'prompt'"):
        await run_agent({}, {"text": "hi"})


# -- output ------------------------------------------------------------------------------------


async def test_output_contract_for_plain_text(fake: FakeAnthropic) -> None:
    fake.reply_text("Hello!", input_tokens=11, output_tokens=4, model="claude-test-2026")
    recorder = Recorder()
    output = await run_agent({}, "hi", recorder)
    assert output == {
        "text": "Hello!",
        "usage": {"input_tokens": 11, "output_tokens": 4},
        "model": "claude-test-2026",
        "provider": "anthropic",
        "stop_reason": "end_turn",
    }
    assert recorder.usage == [{"input_tokens": 11, "output_tokens": 4}]


SCHEMA = {"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]}


@pytest.mark.parametrize("fenced", [False, True])
async def test_output_schema_parses_and_validates_json(fake: FakeAnthropic, fenced: bool) -> None:
    fake.reply_json({"score": 0.5}, fenced=fenced)
    output = await run_agent({"output_schema": SCHEMA}, "rate it")
    assert output["json"] == {"score": 0.5}
    assert list(output) == ["text", "json", "usage", "model", "provider", "stop_reason"]
    assert json.dumps(SCHEMA) in fake.requests[0].json["system"]


async def test_json_after_prose_in_a_fence_is_found(fake: FakeAnthropic) -> None:
    fake.reply_text('Sure! Here it is:\n```\n{"score": 3}\n```\nAnything else?')
    output = await run_agent({"output_schema": SCHEMA, "system": "Be brief."}, "rate it")
    assert output["json"] == {"score": 3}
    assert fake.requests[0].json["system"].startswith("Be brief.\n\nReply with a single JSON")


@pytest.mark.parametrize(
    ("reply", "options", "message"),
    [
        ("I think about 7.", {}, r"the model's reply is not JSON: .*begins 'I think about 7\.'"),
        (
            '{"score": "high"}',
            {},
            r"does not match output_schema: \$\.score: 'high' is not of type",
        ),
        ("{}", {}, r"\$: 'score' is a required property"),
        ('{"score": ', {"stop_reason": "max_tokens"}, r"cut off at max_tokens"),
    ],
)
async def test_a_bad_json_reply_is_a_retryable_error(
    fake: FakeAnthropic, reply: str, options: dict[str, Any], message: str
) -> None:
    fake.reply_text(reply, **options)
    with pytest.raises(ModelOutputError, match=message) as caught:
        await run_agent({"output_schema": SCHEMA}, "rate it")
    assert isinstance(caught.value, RetryableError)


async def test_invalid_json_is_retried_by_the_workflow_policy(
    fake: FakeAnthropic, autojump_clock: trio.testing.MockClock
) -> None:
    fake.reply_text("not json at all", input_tokens=5, output_tokens=3)
    fake.reply_json({"score": 9}, input_tokens=6, output_tokens=4)
    result, events = await execute(workflow({"output_schema": SCHEMA}, "rate it", RETRY))
    assert result.succeeded
    step = result.steps["ask"]
    assert step.attempts == 2
    assert step.output["json"] == {"score": 9}
    [failed] = of_type(events, "attempt.failed")
    assert failed.attempt == 1
    assert failed.data["error"]["type"] == "ModelOutputError"
    assert "not JSON" in failed.data["error"]["message"]
    [scheduled] = of_type(events, "retry.scheduled")
    assert scheduled.data["delay"] == 0.5
    # Both attempts' tokens were spent, so both count.
    assert [event.data for event in of_type(events, "step.usage")] == [
        {"input_tokens": 5, "output_tokens": 3},
        {"input_tokens": 6, "output_tokens": 4},
    ]
    assert result.usage == {"input_tokens": 11, "output_tokens": 7}
    assert step.usage == {"input_tokens": 11, "output_tokens": 7}


# -- streaming ---------------------------------------------------------------------------------


async def test_many_deltas_become_few_progress_events_by_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    text = "".join(f"word{index} " for index in range(300))  # ~2.4k chars
    fake = FakeAnthropic(chunk_size=3, delay=0.01)  # ~800 deltas over ~8 s
    fake.reply_text(text)
    recorder = Recorder()
    with fake, use_fake_anthropic(fake):
        output = await run_agent({}, "go", recorder)
    deltas = [event for event in recorder.progress if "text_delta" in event]
    assert "".join(event["text_delta"] for event in deltas) == text == output["text"]
    assert deltas[-1]["chars"] == len(text)
    assert [event["chars"] for event in deltas] == sorted(event["chars"] for event in deltas)
    raw = len(text) // 3
    assert 60 <= len(deltas) <= raw // 8  # about one per 100 ms, not one per delta


async def test_fast_deltas_are_coalesced_by_size(fake: FakeAnthropic) -> None:
    text = "x" * 1000
    fake.reply_text(text, chunk_size=1)  # 1000 deltas, all at once
    recorder = Recorder()
    await run_agent({}, "go", recorder)
    sizes = [len(event["text_delta"]) for event in recorder.progress]
    assert sum(sizes) == 1000
    assert len(sizes) <= 6
    assert all(size <= 200 for size in sizes)


async def test_progress_reaches_the_journal_as_step_progress(fake: FakeAnthropic) -> None:
    fake.reply_text("streamed reply")
    _, events = await execute(workflow({}, "hi", NO_RETRY))
    progress = of_type(events, "step.progress")
    assert "".join(event.data["text_delta"] for event in progress) == "streamed reply"
    assert all(event.step_id == "ask" and event.attempt == 1 for event in progress)


# -- tools -------------------------------------------------------------------------------------

TOOLS = {
    "echo": {
        "agent": "echo",
        "description": "Repeats its input.",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
}


async def test_tool_use_loop_runs_the_tool_agent_and_sends_results(fake: FakeAnthropic) -> None:
    fake.reply_tool_use(
        "echo", {"q": "bees"}, id="toolu_a", text="Let me check.", input_tokens=20, output_tokens=8
    )
    fake.reply_text("Bees it is.", input_tokens=30, output_tokens=5)
    recorder = Recorder()
    output = await run_agent({"tools": TOOLS}, "Tell me", recorder)
    assert output["text"] == "Bees it is."
    assert output["usage"] == {"input_tokens": 50, "output_tokens": 13}
    assert recorder.usage == [
        {"input_tokens": 20, "output_tokens": 8},
        {"input_tokens": 30, "output_tokens": 5},
    ]
    first, second = (request.json for request in fake.requests)
    assert first["tools"] == [
        {
            "name": "echo",
            "description": "Repeats its input.",
            "input_schema": TOOLS["echo"]["input_schema"],
        }
    ]
    assert second["messages"] == [
        {"role": "user", "content": "Tell me"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_a", "name": "echo", "input": {"q": "bees"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": '{"q": "bees"}'},
            ],
        },
    ]
    assert {"tool": "echo", "tool_use_id": "toolu_a"} in recorder.progress


async def test_failing_and_unknown_tools_are_reported_to_the_model(fake: FakeAnthropic) -> None:
    fake.reply_message(
        [
            {"type": "tool_use", "id": "t1", "name": "broken", "input": {}},
            {"type": "tool_use", "id": "t2", "name": "missing", "input": {}},
        ],
        stop_reason="tool_use",
    )
    fake.reply_text("Sorry.")
    tools = {"broken": {"agent": "fail", "config": {"message": "backend down"}}}
    output = await run_agent({"tools": tools}, "Try")
    assert output["text"] == "Sorry."
    results = fake.requests[1].json["messages"][-1]["content"]
    assert results == [
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "content": "RetryableError: backend down",
            "is_error": True,
        },
        {
            "type": "tool_result",
            "tool_use_id": "t2",
            "content": "unknown tool 'missing'",
            "is_error": True,
        },
    ]


async def test_exceeding_max_turns_is_not_retried(
    fake: FakeAnthropic, autojump_clock: trio.testing.MockClock
) -> None:
    fake.reply_tool_use("echo", {"q": 1})
    fake.reply_tool_use("echo", {"q": 2})
    result, events = await execute(workflow({"tools": TOOLS, "max_turns": 2}, "Loop", RETRY))
    assert not result.succeeded
    step = result.steps["ask"]
    assert step.attempts == 1
    assert step.error is not None
    assert step.error["type"] == "MaxTurnsExceededError"
    assert "asked for tools (echo) after max_turns=2" in step.error["message"]
    assert len(of_type(events, "step.usage")) == 2
    assert issubclass(MaxTurnsExceededError, NonRetryableError)


async def test_tool_agents_can_come_from_the_embedding_registry(fake: FakeAnthropic) -> None:
    async def shout(input: Any) -> str:
        return str(input["q"]).upper()

    fake.reply_tool_use("loud", {"q": "hi"}, id="t1")
    fake.reply_text("done")
    registry = AgentRegistry({"shout": shout})
    agent = LLMAgent({"model": "m", "tools": {"loud": {"agent": "shout"}}}, registry=registry)
    await agent.run("go", Recorder().context)
    assert fake.requests[1].json["messages"][-1]["content"][0]["content"] == "HI"


# -- errors and retries ------------------------------------------------------------------------


async def test_rate_limit_retry_after_sets_the_retry_delay(
    fake: FakeAnthropic, autojump_clock: trio.testing.MockClock
) -> None:
    fake.reply_rate_limited(retry_after=7)
    fake.reply_text("finally")
    result, events = await execute(workflow({}, "hi", RETRY))
    assert result.succeeded
    assert result.steps["ask"].attempts == 2
    [failed] = of_type(events, "attempt.failed")
    assert failed.data["error"]["type"] == "RetryableError"
    assert (
        "(anthropic at http://fake-anthropic.invalid): error 429 (rate_limit_error)"
        in failed.data["error"]["message"]
    )
    [scheduled] = of_type(events, "retry.scheduled")
    assert scheduled.data["delay"] >= 7
    started = of_type(events, "attempt.started")
    assert started[1].elapsed - started[0].elapsed >= 7


@pytest.mark.parametrize(
    ("script", "retry_after", "text"),
    [
        (lambda fake: fake.reply_rate_limited(retry_after=7), 7.0, "429 (rate_limit_error)"),
        (
            lambda fake: fake.reply_error(
                429, "rate_limit_error", "slow down", headers={"retry-after-ms": "1500"}
            ),
            1.5,
            "slow down",
        ),
        (lambda fake: fake.reply_overloaded(), None, "529 (overloaded_error): Overloaded"),
        (lambda fake: fake.reply_server_error(), None, "500 (api_error)"),
        (lambda fake: fake.reply_error(408, "timeout_error", "Request timed out"), None, "408"),
        (
            lambda fake: fake.reply_stream_error(text="partial"),
            None,
            "error while streaming (overloaded_error): Overloaded",
        ),
    ],
)
async def test_transient_api_errors_are_retryable(
    fake: FakeAnthropic, script: Any, retry_after: float | None, text: str
) -> None:
    script(fake)
    with pytest.raises(RetryableError) as caught:
        await run_agent({}, "hi")
    assert caught.value.retry_after == retry_after
    assert text in str(caught.value)
    assert "[request-id req_fake_" in str(caught.value)


@pytest.mark.parametrize(
    ("script", "text"),
    [
        (
            lambda fake: fake.reply_bad_request("max_tokens: must be at most 8192"),
            "error 400 (invalid_request_error): max_tokens: must be at most 8192",
        ),
        (
            lambda fake: fake.reply_unauthorized(),
            "error 401 (authentication_error): invalid x-api-key",
        ),
        (
            lambda fake: fake.reply_error(403, "permission_error", "no access to model"),
            "403 (permission_error): no access to model",
        ),
        (
            lambda fake: fake.reply_error(404, "not_found_error", "model: claude-nope"),
            "404 (not_found_error): model: claude-nope",
        ),
        (lambda fake: fake.reply_error(413, "request_too_large", "too large"), "413"),
    ],
)
async def test_client_errors_are_not_retried(fake: FakeAnthropic, script: Any, text: str) -> None:
    script(fake)
    with pytest.raises(NonRetryableError, match="provider 'anthropic'") as caught:
        await run_agent({}, "hi")
    assert text in str(caught.value)


async def test_a_bad_request_fails_the_step_at_once(
    fake: FakeAnthropic, autojump_clock: trio.testing.MockClock
) -> None:
    fake.reply_bad_request("messages.0.content: text must be non-empty")
    result, events = await execute(workflow({}, "hi", RETRY))
    assert result.steps["ask"].attempts == 1
    assert of_type(events, "retry.scheduled") == []
    assert "text must be non-empty" in result.steps["ask"].error["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            httpx2.ConnectError("connection refused"),
            r"could not reach provider 'anthropic' \(anthropic at ",
        ),
        (httpx2.ReadTimeout("read timed out"), "did not answer within the request timeout of 60"),
    ],
)
async def test_network_failures_are_retryable(error: Exception, text: str) -> None:
    def failing(request: httpx2.Request) -> httpx2.Response:
        raise error

    fake = FakeAnthropic()
    transport = httpx2.MockTransport(failing)

    def factory() -> Any:
        client = fake.make_client()
        client._client = httpx2.AsyncClient(transport=transport)
        return client

    with use_anthropic_client(factory), pytest.raises(RetryableError, match=text):
        await run_agent({}, "hi")


async def test_cancellation_is_not_an_error(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeAnthropic(delay=10)
    fake.reply_text("too slow")
    recorder = Recorder()
    with use_fake_anthropic(fake), trio.move_on_after(15) as scope:
        await run_agent({}, "hi", recorder)
    assert scope.cancelled_caught
    # message_start arrived before the cancel: its tokens were spent and are recorded.
    assert recorder.usage == [{"input_tokens": 10, "output_tokens": 1}]


# -- client and credentials --------------------------------------------------------------------


async def test_missing_api_key_is_a_configuration_error_before_any_call() -> None:
    fake = FakeAnthropic()
    agent = LLMAgent({"model": "m"})  # building needs no key
    with pytest.raises(MissingAPIKeyError, match="set the ANTHROPIC_API_KEY") as caught:
        await agent.run("hi", Recorder().context)
    assert isinstance(caught.value, AgentConfigurationError)
    assert isinstance(caught.value, NonRetryableError)
    assert fake.requests == []
    # The message survives the redaction every journaled error goes through, word for word.
    assert redact_text(str(caught.value)) == str(caught.value)


async def test_a_config_api_key_is_the_anthropic_provider_s_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`api_key` in the config is sent by the `anthropic` provider; no variable is needed."""
    fake = FakeAnthropic()
    fake.reply_text("keyed")
    with fake:
        async with fake.serve() as url:
            monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
            output = await run_agent({"api_key": SECRET}, "hi")
    assert output["text"] == "keyed"
    assert fake.requests[0].has_credentials


async def test_one_client_per_run_reused_across_turns_and_closed_after() -> None:
    fake = FakeAnthropic()
    fake.reply_tool_use("echo", {"q": 1})
    fake.reply_text("done")
    clients: list[Any] = []

    def factory() -> Any:
        clients.append(fake.make_client())
        return clients[-1]

    with fake, use_anthropic_client(factory):
        await run_agent({"tools": TOOLS}, "go")
    assert len(clients) == 1
    assert clients[0].is_closed()


async def test_the_request_timeout_is_bounded_by_the_deadline(
    fake: FakeAnthropic, autojump_clock: trio.testing.MockClock
) -> None:
    for text in "abc":
        fake.reply_text(text)
    await run_agent({"request_timeout": 20}, "hi")
    await run_agent({"request_timeout": 20}, "hi", Recorder(deadline=trio.current_time() + 5))
    with trio.move_on_after(3):  # as the step's attempt timeout does
        await run_agent({"request_timeout": 20}, "hi")
    assert [float(request.headers["x-stainless-read-timeout"]) for request in fake.requests] == [
        20.0,
        5.0,
        3.0,
    ]


async def test_anthropic_base_url_is_honoured_and_the_key_never_leaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeAnthropic()
    fake.reply_text("from the loopback server", input_tokens=3, output_tokens=2)
    fake.reply_unauthorized()
    async with fake.serve() as base_url:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
        output = await run_agent({}, "hi")
        result, events = await execute(workflow({}, "hi", NO_RETRY))
    assert output["text"] == "from the loopback server"
    assert not result.succeeded
    error = result.steps["ask"].error
    assert error is not None
    assert "401 (authentication_error): invalid x-api-key" in error["message"]
    assert all(request.has_credentials for request in fake.requests)
    everything = repr(fake.requests) + json.dumps([event.data for event in events]) + repr(error)
    assert SECRET not in everything
    fake.assert_all_used()


async def test_orchestr8_run_in_a_subprocess_uses_the_fake_server(tmp_path: Path) -> None:
    document = workflow(
        {"prompt": "Summarise ${input.topic}"}, {"topic": "${inputs.topic}"}, NO_RETRY
    )
    document["inputs"] = {"type": "object", "properties": {"topic": {"type": "string"}}}
    path = tmp_path / "llm.json"
    path.write_text(json.dumps(document))
    fake = FakeAnthropic()
    fake.reply_text("Bees make honey.", input_tokens=9, output_tokens=4)
    async with fake.serve() as base_url:
        env = {**os.environ, "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": SECRET}
        done = await trio.run_process(
            [
                sys.executable,
                "-m",
                "orchestr8",
                "run",
                str(path),
                "--input",
                "topic=bees",
                "--json",
                "--journal",
                str(tmp_path / "journal.db"),
            ],
            env=env,
            cwd=ROOT,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    assert "Bees make honey." in done.stdout.decode()
    assert SECRET not in done.stdout.decode() + done.stderr.decode()
    [request] = fake.requests
    assert request.json["messages"] == [{"role": "user", "content": "Summarise bees"}]
    fake.assert_all_used()


async def test_a_json_body_answering_a_stream_names_the_provider_not_an_assertion() -> None:
    """A server that answers a streaming request with plain JSON fails the attempt, retryably."""

    def json_body(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        )

    fake = FakeAnthropic()

    def factory() -> Any:
        client = fake.make_client()
        client._client = httpx2.AsyncClient(transport=httpx2.MockTransport(json_body))
        return client

    with (
        use_anthropic_client(factory),
        pytest.raises(ProviderResponseError, match="without a message stream") as caught,
    ):
        await run_agent({}, "hi")
    assert "provider 'anthropic'" in str(caught.value)
    assert isinstance(caught.value, RetryableError)
