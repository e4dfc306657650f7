"""The prompt-template examples of docs/llm.md run as written, copied out of the page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestr8 import ExecutionStatus, open_runtime
from orchestr8.testing import FakeAnthropic, use_fake_anthropic

PAGE = Path(__file__).resolve().parent.parent / "docs" / "llm.md"
REPLY = (
    "<brief>Tea is a leaf, brewed hot or cold; green and black teas differ in oxidation.</brief>"
)


def _section(title: str) -> str:
    """The text of the docs/llm.md section headed `title`, up to the next heading of any level."""
    text = PAGE.read_text()
    start = text.index(f"\n{title}\n")
    following = re.search(r"\n#+ ", text[start + len(title) + 2 :])
    return text[start : None if following is None else start + len(title) + 2 + following.start()]


def _blocks(section: str, language: str) -> list[str]:
    """The fenced `language` code blocks of `section`, in order."""
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


@pytest.mark.parametrize("form", ["json", "xml"])
async def test_the_documented_brief_template_runs_and_scores_a_tagged_reply(
    tmp_path: Path, form: str
) -> None:
    """The step and the brief template (JSON, and the same as XML) run and score 100."""
    step_block, template_block = _blocks(_section("## Prompt templates"), "json")
    (xml_block,) = _blocks(_section("### XML template files"), "xml")
    (tmp_path / "prompts").mkdir()
    name = f"prompts/brief.{form}"
    (tmp_path / name).write_text(template_block if form == "json" else xml_block)
    step = json.loads(step_block)
    step["agent"]["config"]["template"] = name
    workflow = {
        "schema_version": "1.1",
        "name": "documented-brief",
        "inputs": {"type": "object", "properties": {"topic": {"type": "string"}}},
        "steps": [step],
    }
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    fake = FakeAnthropic()
    fake.reply_text(REPLY)
    with fake, use_fake_anthropic(fake):
        async with open_runtime() as runtime:
            handle = await runtime.start(tmp_path / "workflow.json", {"topic": "tea"})
            result = await handle.wait()
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    assert result.steps["brief"].output["text"] == REPLY
    assert result.steps["brief"].output["score"]["overall"] == 100.0
    (request,) = fake.requests
    assert request.json["messages"][-1]["content"] == "<topic>tea</topic>"
