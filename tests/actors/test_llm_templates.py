"""The `llm` agent with template files: variables, provenance per call, scores, load errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from actors.llm import LLMAgent
from orchestr8 import (
    JSON,
    AgentConfigurationError,
    ExecutionStatus,
    ProviderCatalog,
    ProviderGuard,
    Reservation,
    Spend,
    TemplateError,
    TemplateInputError,
    WorkflowValidationError,
    open_runtime,
)
from orchestr8._agents._workflow_directory import agents_built_in
from orchestr8._llm._session import NO_RESERVATION
from orchestr8.testing import FakeAnthropic, run_agent, use_fake_anthropic

BRIEF: dict[str, Any] = {
    "name": "brief",
    "version": "2.0",
    "format": "xml",
    "variables": {"topic": {"type": "string"}, "words": {"type": "integer", "default": 50}},
    "system": "Brief of ${vars.words} words in <summary> tags.",
    "messages": [{"role": "user", "content": "<topic>${vars.topic}</topic>"}],
    "examples": [{"input": {"topic": "tea"}, "output": "<summary>Tea.</summary>"}],
    "expect": {
        "structure": {"required_tags": ["summary"]},
        "constraints": {"max_words": 5, "must_include": "coffee"},
    },
}


@attrs.define
class RecordingSession:
    """An `LLMSession` that keeps what the agent journals, as the engine's session would."""

    calls: list[Mapping[str, JSON]] = attrs.Factory(list)
    scores: list[Mapping[str, JSON]] = attrs.Factory(list)
    catalog: ProviderCatalog = attrs.Factory(ProviderCatalog)

    def provider_guard(self, provider: str) -> ProviderGuard | None:
        """No breakers here."""
        return None

    async def reserve(self, context: Any, ask: Spend, *, model: str) -> Reservation:
        """No budget here."""
        return NO_RESERVATION

    def settle(self, context: Any, reservation: Reservation, spent: Spend) -> None:
        """Nothing is held."""

    def record_call(self, context: Any, call: Mapping[str, JSON]) -> None:
        """Keep the `llm.called` data."""
        self.calls.append(call)

    def record_score(self, context: Any, score: Mapping[str, JSON]) -> None:
        """Keep the `step.scored` data."""
        self.scores.append(score)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    """A fake plugged into every llm agent of the test, checked to be fully used at the end."""
    fake = FakeAnthropic()
    with fake, use_fake_anthropic(fake):
        yield fake


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    """A workflow directory with `prompts/brief.json`."""
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "brief.json").write_text(json.dumps(BRIEF))
    return tmp_path


async def test_a_template_file_makes_the_prompt_and_every_call_carries_its_provenance(
    fake: FakeAnthropic, prompts: Path
) -> None:
    """Examples come first, values are escaped, and `llm.called` names path, version, sha256."""
    fake.reply_text("<summary>Coffee is a bean.</summary>")
    session = RecordingSession()
    with agents_built_in(prompts):
        run = await run_agent(
            "llm",
            {"topic": "<b>coffee</b>", "extra": 1},
            config={"model": "claude-test", "template": "prompts/brief.json"},
            context={"llm": session},
        )
    sent = fake.requests[0].json
    assert sent["system"] == "Brief of 50 words in <summary> tags."
    assert sent["messages"] == [
        {"role": "user", "content": "<topic>tea</topic>"},
        {"role": "assistant", "content": "<summary>Tea.</summary>"},
        {"role": "user", "content": "<topic>&lt;b&gt;coffee&lt;/b&gt;</topic>"},
    ]
    digest = hashlib.sha256((prompts / "prompts" / "brief.json").read_bytes()).hexdigest()
    provenance = {"path": "prompts/brief.json", "version": "2.0", "sha256": digest}
    (call,) = session.calls
    assert call["template"] == provenance
    assert (call["provider"], call["model"], call["outcome"]) == (
        "anthropic",
        "claude-test",
        "succeeded",
    )
    assert run.output["score"]["structure"] == 100.0
    assert run.output["score"]["constraints"] == 100.0
    assert run.output["score"]["overall"] == 100.0
    (score,) = session.scores
    assert score == {**run.output["score"], "template": provenance}


async def test_variables_map_the_step_input_keeping_types(fake: FakeAnthropic) -> None:
    """`variables` fills the template from `${input...}`; a lone placeholder keeps its type."""
    fake.reply_text("ok")
    template = {key: value for key, value in BRIEF.items() if key != "expect"}
    config = {
        "model": "claude-test",
        "template": {**template, "format": "text", "examples": []},
        "variables": {"topic": "the ${input.subject}", "words": "${input.length}"},
    }
    await run_agent("llm", {"subject": "sea", "length": 9}, config=config)
    sent = fake.requests[0].json
    assert sent["system"] == "Brief of 9 words in <summary> tags."
    assert sent["messages"] == [{"role": "user", "content": "<topic>the sea</topic>"}]


async def test_variables_may_be_objects_and_arrays_of_placeholders(fake: FakeAnthropic) -> None:
    """A `variables` value that is an object or array is filled recursively."""
    fake.reply_text("ok")
    template = {
        "version": "1",
        "variables": {"facts": {"type": "object"}},
        "messages": [{"role": "user", "content": "Facts: ${vars.facts}"}],
    }
    config = {
        "model": "claude-test",
        "template": template,
        "variables": {"facts": {"list": ["${input.a}", 3, "plain"], "b": "${input.b}"}},
    }
    await run_agent("llm", {"a": 1, "b": [True]}, config=config)
    assert fake.requests[0].json["messages"][0]["content"] == (
        'Facts: {"list": [1, 3, "plain"], "b": [true]}'
    )


async def test_a_template_output_schema_makes_a_json_reply(fake: FakeAnthropic) -> None:
    """The template's `output_schema` is applied like the config's: output gains `json`."""
    fake.reply_json({"title": "T"})
    template = {
        "version": "1",
        "messages": [{"role": "user", "content": "Go"}],
        "output_schema": {"type": "object", "required": ["title"]},
    }
    run = await run_agent("llm", {}, config={"model": "claude-test", "template": template})
    assert run.output["json"] == {"title": "T"}
    assert "score" not in run.output


async def test_expect_in_the_config_scores_a_plain_prompt(fake: FakeAnthropic) -> None:
    """Without a template, `expect` in the config still scores the reply."""
    fake.reply_text("## Risks\nnone")
    session = RecordingSession()
    run = await run_agent(
        "llm",
        "go",
        config={"model": "claude-test", "expect": {"completeness": {"sections": ["Risks"]}}},
        context={"llm": session},
    )
    assert run.output["score"]["completeness"] == 100.0
    assert "template" not in session.scores[0]
    assert "template" not in session.calls[0]


async def test_a_judge_is_called_through_the_agent_and_journaled(fake: FakeAnthropic) -> None:
    """The judge's k calls are journaled as `llm.called` without template, and counted."""
    fake.reply_text("Summary: fine", input_tokens=10, output_tokens=3)
    fake.reply_json({"Summary": True}, input_tokens=20, output_tokens=4)
    fake.reply_json({"Summary": False}, input_tokens=20, output_tokens=4)
    expect = {
        "completeness": {
            "sections": ["Summary"],
            "judge": {"model": "anthropic:claude-judge", "k": 2},
        }
    }
    template = {"version": "1", "messages": [{"role": "user", "content": "Go"}], "expect": expect}
    session = RecordingSession()
    config = {"model": "claude-test", "template": template}
    run = await run_agent("llm", {}, config=config, context={"llm": session})
    assert run.output["score"]["completeness"] == 50.0
    assert run.output["score"]["judge"]["variance"] == 5000.0
    assert [call["model"] for call in session.calls] == [
        "claude-test",
        "claude-judge",
        "claude-judge",
    ]
    assert ["template" in call for call in session.calls] == [True, False, False]
    assert run.usage == {"input_tokens": 50, "output_tokens": 11}
    assert run.output["usage"] == {"input_tokens": 10, "output_tokens": 3}
    uses = LLMAgent(config).model_uses()
    assert [(use.model, use.where) for use in uses] == [
        ("anthropic:claude-test", "config.model"),
        ("anthropic:claude-judge", "config.template"),
    ]


async def test_a_failed_call_is_journaled_with_its_error(fake: FakeAnthropic) -> None:
    """A call that fails is still an `llm.called`, with outcome `failed` and the error."""
    fake.reply_bad_request("messages: bad")
    session = RecordingSession()
    with pytest.raises(Exception, match="messages: bad"):
        await run_agent("llm", "hi", config={"model": "claude-test"}, context={"llm": session})
    (call,) = session.calls
    assert call["outcome"] == "failed"
    assert call["error"]["type"] == "NonRetryableError"  # type: ignore[index,call-overload]


async def test_a_missing_variable_fails_without_a_call(fake: FakeAnthropic) -> None:
    """A declared variable with no value fails the attempt before any request."""
    template = {key: value for key, value in BRIEF.items() if key != "expect"}
    with pytest.raises(TemplateInputError, match="variable 'topic'"):
        await run_agent("llm", {"subject": "x"}, config={"model": "m", "template": template})
    with pytest.raises(Exception, match="the input must be an object, got a string"):
        await run_agent("llm", "x", config={"model": "m", "template": template})


@pytest.mark.parametrize(
    ("config", "error", "problem"),
    [
        ({"template": 3}, AgentConfigurationError, "template must be a path to a .json or .xml"),
        ({"template": []}, AgentConfigurationError, "template must be a path to a .json or .xml"),
        (
            {"template": ""},
            AgentConfigurationError,
            "template must be a path to a .json or .xml template file, or an inline template "
            "object; got a string",
        ),
        (
            {"template": "prompts/brief.json"},
            TemplateError,
            "template prompts/brief.json: a relative path needs the workflow file's directory",
        ),
        (
            {"template": BRIEF, "prompt": "x"},
            AgentConfigurationError,
            "template and prompt exclude each other",
        ),
        ({"variables": {}}, AgentConfigurationError, "variables needs a template"),
        (
            {"template": BRIEF, "variables": {"topik": "x"}},
            AgentConfigurationError,
            "variables.topik: the template declares no variable 'topik' (declared: topic, words)",
        ),
        (
            {"template": BRIEF, "variables": []},
            AgentConfigurationError,
            "variables must be an object",
        ),
        (
            {"template": BRIEF, "variables": {"topic": {"a": ["${inputs.x}"]}}},
            AgentConfigurationError,
            "variables.topic.a[0]: invalid placeholder ${inputs.x}",
        ),
        (
            {"expect": {"constraints": {"max_word": 1}}},
            TemplateError,
            "config.expect.constraints: unknown checker 'max_word'",
        ),
        (
            {"expect": {"completeness": {"sections": ["a"], "judge": {"model": "claude-x"}}}},
            AgentConfigurationError,
            "config.expect.completeness.judge.model: must name a provider and a model",
        ),
    ],
)
def test_bad_template_config_is_refused_when_built(
    config: dict[str, Any], error: type[Exception], problem: str
) -> None:
    """Each problem of the template keys is a configuration error saying what is wrong."""
    with pytest.raises(error, match="^" + re.escape(problem)):
        LLMAgent({"model": "claude-test", **config})


async def test_a_workflow_file_reads_its_templates_next_to_it(
    fake: FakeAnthropic, prompts: Path
) -> None:
    """Run from a file, relative template paths resolve beside it; the score is in the output."""
    fake.reply_text("<summary>coffee</summary>")
    workflow = {
        "schema_version": "1.0",
        "name": "templated",
        "steps": [
            {
                "id": "brief",
                "agent": {
                    "id": "llm",
                    "config": {"model": "claude-test", "template": "prompts/brief.json"},
                },
                "input": {"topic": "coffee"},
            }
        ],
    }
    (prompts / "workflow.json").write_text(json.dumps(workflow))
    async with open_runtime() as runtime:
        handle = await runtime.start(prompts / "workflow.json")
        result = await handle.wait()
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    assert result.steps["brief"].output["score"]["overall"] == 100.0


async def test_a_broken_template_is_a_load_problem_at_the_step(prompts: Path) -> None:
    """An undeclared placeholder fails validation, located at the step and in the file."""
    broken = {**BRIEF, "messages": [{"role": "user", "content": "${vars.topik}"}]}
    (prompts / "prompts" / "broken.json").write_text(json.dumps(broken))
    workflow = {
        "schema_version": "1.0",
        "name": "broken",
        "steps": [
            {
                "id": "brief",
                "agent": {
                    "id": "llm",
                    "config": {"model": "claude-test", "template": "prompts/broken.json"},
                },
            }
        ],
    }
    (prompts / "workflow.json").write_text(json.dumps(workflow))
    async with open_runtime() as runtime:
        with pytest.raises(WorkflowValidationError) as caught:
            await runtime.start(prompts / "workflow.json")
    (problem,) = caught.value.problems
    assert problem.path == "$.steps[0].agent"
    assert problem.message == (
        "agent 'llm': template prompts/broken.json: $.messages[0].content: placeholder "
        "${vars.topik} names an undeclared variable (declared: topic, words)"
    )


async def test_a_workflow_without_a_file_cannot_use_a_relative_template_path() -> None:
    """A document given as data (as over REST) has no directory: the load error says why."""
    workflow = {
        "schema_version": "1.0",
        "name": "no-file",
        "steps": [
            {
                "id": "brief",
                "agent": {
                    "id": "llm",
                    "config": {"model": "claude-test", "template": "prompts/brief.json"},
                },
            }
        ],
    }
    async with open_runtime() as runtime:
        with pytest.raises(WorkflowValidationError) as caught:
            await runtime.start(workflow)
    (problem,) = caught.value.problems
    assert problem.path == "$.steps[0].agent"
    assert "a relative path needs the workflow file's directory" in problem.message
    assert "this workflow has no file" in problem.message


def test_the_judge_model_of_the_config_is_declared_at_its_own_path() -> None:
    """A judge named in the config's `expect` is checked at `config.expect...judge.model`."""
    config = {
        "model": "claude-test",
        "prompt": "hi",
        "expect": {"completeness": {"sections": ["a"], "judge": {"model": "openai:gpt-judge"}}},
    }
    uses = LLMAgent(config).model_uses()
    assert [(use.model, use.where) for use in uses] == [
        ("anthropic:claude-test", "config.model"),
        ("openai:gpt-judge", "config.expect.completeness.judge.model"),
    ]
