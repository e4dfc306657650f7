"""examples/templates runs offline: a JSON and an XML template, each reply scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import trio
from cli_processes import cli

from orchestr8.testing import FakeAnthropic

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "templates"
BRIEF = "<summary>Cold brew is coffee steeped cold for hours.</summary>\n<risks>Bitterness.</risks>"
REVIEW = "## Strengths\nShort and factual.\n## Gaps\nNo prices.\n## Verdict\nGood enough to send."


async def test_the_templates_example_runs_and_scores_both_replies(tmp_path: Path) -> None:
    """`orchestr8 run examples/templates/workflow.json` renders both templates from their files."""
    fake = FakeAnthropic()
    fake.reply_text(BRIEF)
    fake.reply_text(REVIEW)
    async with fake.serve() as url:
        completed = await trio.run_process(
            [
                sys.executable,
                "-m",
                "orchestr8",
                "run",
                str(EXAMPLE / "workflow.json"),
                "--json",
                "--journal",
                str(tmp_path / "journal.db"),
                "--input",
                "topic=cold brew",
            ],
            cwd=tmp_path,
            env={**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "sk-fake"},
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr.decode()
    result = json.loads(completed.stdout)
    assert result["output"] == {
        "brief": BRIEF,
        "brief_score": 100.0,
        "review": REVIEW,
        "review_score": 100.0,
    }
    fake.assert_all_used()
    brief, review = (request.json for request in fake.requests)
    assert brief["messages"][-1]["content"] == (
        "<task>Write a brief.</task>\n<topic>cold brew</topic>"
    )
    assert len(brief["messages"]) == 3
    assert review["system"].startswith("You review briefs for a product team.")
    assert review["messages"][0]["content"].startswith(
        "<brief>&lt;summary&gt;Cold brew is coffee steeped cold for hours.&lt;/summary&gt;"
    )


def test_the_templates_example_validates_from_any_directory(tmp_path: Path) -> None:
    """The templates resolve beside the workflow file, not the current directory."""
    checked = cli("validate", str(EXAMPLE / "workflow.json"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


async def _run(arguments: list[str], cwd: Path, url: str) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m orchestr8 ARGUMENTS` in `cwd` against the fake Anthropic at `url`."""
    return await trio.run_process(
        [sys.executable, "-m", "orchestr8", *arguments],
        cwd=cwd,
        env={**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "sk-fake"},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def test_the_templates_example_resumes_and_forks_from_another_directory(
    tmp_path: Path,
) -> None:
    """Resume and fork build the agents in the workflow file's directory, wherever they run."""
    journal = str(tmp_path / "journal.db")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    fake = FakeAnthropic()
    fake.reply_text(BRIEF)
    fake.reply_bad_request("the review failed once")
    fake.reply_text(REVIEW)
    fake.reply_text(REVIEW)
    fake.reply_text(REVIEW)
    async with fake.serve() as url:
        ran = await _run(
            [
                "run",
                str(EXAMPLE / "workflow.json"),
                "--json",
                "--journal",
                journal,
                "--input",
                "topic=cold brew",
            ],
            tmp_path,
            url,
        )
        assert ran.returncode == 2, ran.stderr.decode()
        execution_id = json.loads(ran.stdout)["execution_id"]
        resumed = await _run(
            ["resume", execution_id, "--json", "--journal", journal], elsewhere, url
        )
        assert resumed.returncode == 0, resumed.stderr.decode()
        assert json.loads(resumed.stdout)["output"]["review"] == REVIEW
        forked = await _run(
            ["fork", execution_id, "--from", "review", "--json", "--journal", journal],
            elsewhere,
            url,
        )
        assert forked.returncode == 0, forked.stderr.decode()
        fork_id = json.loads(forked.stdout)["execution_id"]
        refork = await _run(
            [
                "fork",
                fork_id,
                "--from",
                "review",
                "--workflow",
                str(EXAMPLE / "workflow.json"),
                "--json",
                "--journal",
                journal,
            ],
            elsewhere,
            url,
        )
        assert refork.returncode == 0, refork.stderr.decode()
    fake.assert_all_used()
    # The brief was written once: resume and both forks reused it.
    assert [request.json["max_tokens"] for request in fake.requests] == [400, 600, 600, 600, 600]
