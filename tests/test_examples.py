"""The workflow examples in `examples/` run, and do what their descriptions promise."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from cli_processes import cli, environment

from orchestr8 import ExecutionStatus, open_runtime, run_workflow
from orchestr8.testing import FakeAnthropic, use_fake_anthropic

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def test_hello_greets_the_default_name() -> None:
    """hello.json greets 'world' when no name is given."""
    result = await run_workflow(EXAMPLES / "hello.json")
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == {"message": "Hello, world!"}


async def test_hello_greets_the_given_name() -> None:
    """hello.json uses the `name` input."""
    result = await run_workflow(EXAMPLES / "hello.json", {"name": "trio"})
    assert result.output == {"message": "Hello, trio!"}


async def test_fan_out_runs_the_lookups_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """fan_out.json takes as long as its slowest lookup, and the summary waits for all three."""
    async with open_runtime() as runtime:
        handle = await runtime.start(EXAMPLES / "fan_out.json")
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.output == {"topic": "trio", "sources": ["docs", "issues", "forum"]}
    started = {e.step_id: e.elapsed for e in events if e.type == "step.started"}
    assert started["summary"] == pytest.approx(0.3, abs=1e-6)
    assert max(started[s] for s in ("docs", "issues", "forum")) == pytest.approx(0.0, abs=1e-6)


async def test_diamond_fast_branch_never_waits_for_the_slow_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """diamond.json finishes its fast branch at once while the slow one sleeps."""
    async with open_runtime() as runtime:
        handle = await runtime.start(EXAMPLES / "diamond.json")
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.output == {"report": "first=3 last=2 of 3"}
    finished = {e.step_id: e.elapsed for e in events if e.type == "step.succeeded"}
    assert finished["fast_branch"] == pytest.approx(0.0, abs=1e-6)
    assert finished["join"] == pytest.approx(0.2, abs=1e-6)


async def test_retry_demo_succeeds_on_the_third_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """retry.json fails twice, waits 0.2 s then 0.4 s, and succeeds on attempt 3."""
    async with open_runtime() as runtime:
        handle = await runtime.start(EXAMPLES / "retry.json")
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.output == {"delivered": "important"}
    assert result.steps["flaky"].attempts == 3
    delays = [e.data["delay"] for e in events if e.type == "retry.scheduled"]
    assert delays == [0.2, 0.4]


async def test_sub_workflow_runs_its_children_as_executions_linked_to_it(tmp_path: Path) -> None:
    """sub_workflow.json runs the review file beside it and an inline child, each linked to it."""
    async with open_runtime(journal=tmp_path / "journal.db") as runtime:
        handle = await runtime.start(EXAMPLES / "sub_workflow.json")
        result = await handle.wait()
        review = await runtime.journal.get_execution(f"{handle.execution_id}.review")
        publish = await runtime.journal.get_execution(f"{handle.execution_id}.publish")
    assert result.output == {"published": "notes on trio (reviewed by ada)", "approved": True}
    assert (review.workflow_name, review.parent_id, review.parent_step) == (
        "review",
        handle.execution_id,
        "review",
    )
    assert (publish.workflow_name, publish.parent_step) == ("publish", "publish")
    alone = await run_workflow(EXAMPLES / "sub_workflow_review.json", {"text": "draft"})
    assert alone.output == {"text": "draft", "approved": True, "reviewer": "anyone"}


def test_embed_program_runs() -> None:
    """examples/embed.py runs its own agent inside a runtime and prints the result."""
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "embed.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "succeeded: structured concurrency is nice has 4 words" in completed.stdout
    assert "execution.succeeded" in completed.stdout


async def test_circuit_breaker_opens_and_the_open_circuit_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """circuit_breaker.json: two failures open the breaker; attempt 3 is rejected, not sent."""
    async with open_runtime() as runtime:
        handle = await runtime.start(EXAMPLES / "circuit_breaker.json")
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["type"] == "CircuitOpenError"
    assert result.steps["independent"].output == "other branches still finish"
    kinds = [(e.type, e.attempt) for e in events if e.step_id == "call_api"]
    assert ("breaker.opened", 2) in kinds
    assert ("breaker.rejected", 3) in kinds
    assert [a for t, a in kinds if t == "attempt.started"] == [1, 2]


async def test_map_reduce_summarises_each_document_then_combines_them() -> None:
    """map_reduce.json: one llm call per document (items `summarise[i]`), then one reduce call
    that reads every summary in order; offline against the fake Anthropic API."""
    documents = [{"title": f"doc {n}", "text": f"text {n}"} for n in range(3)]
    fake = FakeAnthropic()
    for reply in ("summary A", "summary B", "summary C", "- the brief"):
        fake.reply_text(reply)
    with fake, use_fake_anthropic(fake):
        async with open_runtime() as runtime:
            handle = await runtime.start(EXAMPLES / "map_reduce.json", {"documents": documents})
            result = await handle.wait()
            events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    summaries = [summary["text"] for summary in result.output["summaries"]]
    assert sorted(summaries) == ["summary A", "summary B", "summary C"]
    assert result.output["brief"] == "- the brief"
    prompts = [request.json["messages"][0]["content"] for request in fake.requests]
    for number, document in enumerate(documents):
        (prompt,) = [p for p in prompts[:3] if f'"{document["title"]}"' in p]
        assert prompt.startswith(f"Summarise document {number}, ")
    assert all(summary in prompts[3] for summary in summaries)
    items = {e.step_id for e in events if e.type == "step.succeeded" and "[" in (e.step_id or "")}
    assert items == {"summarise[0]", "summarise[1]", "summarise[2]"}
    fake.assert_all_used()


async def test_critic_loop_refines_the_tagline_until_the_critic_accepts_it(tmp_path: Path) -> None:
    """critic_loop.json runs offline: round 2 sees round 1's critique, and scores 8, so it stops."""
    fake = FakeAnthropic()
    fake.reply_json({"draft": "Cold brew, warm heart.", "critique": "Cliched.", "score": 5})
    fake.reply_json({"draft": "Brewed slow, gone fast.", "critique": "Crisp.", "score": 8})
    journal = tmp_path / "journal.db"
    async with fake.serve() as url:
        completed = await trio.run_process(
            [
                sys.executable,
                "-m",
                "orchestr8",
                "run",
                str(EXAMPLES / "critic_loop.json"),
                "--json",
                "--journal",
                str(journal),
                "--input",
                "product=a cold brew coffee",
            ],
            env={**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "sk-fake"},
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr.decode()
    result = json.loads(completed.stdout)
    assert result["output"] == {
        "tagline": "Brewed slow, gone fast.",
        "score": 8,
        "critique": "Crisp.",
    }
    fake.assert_all_used()
    second_prompt = fake.requests[1].json["messages"][0]["content"]
    assert "Round 2 of at most 4" in second_prompt
    assert "Cliched." in second_prompt
    shown = cli("inspect", result["execution_id"], "--journal", str(journal), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()]
    assert rows[rows.index(["STEP", "STATUS", "ATTEMPTS", "DURATION", "DETAIL"]) + 1][:3] == [
        "tagline",
        "succeeded",
        "0",
    ]
    assert "loop 2/4 iterations: until held" in shown.stdout
    assert any(row[:3] == ["tagline#2", "succeeded", "1"] for row in rows)
    timeline = cli(
        "inspect", result["execution_id"], "--timeline", "--journal", str(journal), cwd=tmp_path
    )
    assert "tagline#1" in timeline.stdout
    assert "tagline#2" in timeline.stdout


MESSAGE = "I was charged twice for my plan this month."


async def test_router_takes_one_route_and_inspect_says_why_the_other_was_skipped(
    tmp_path: Path,
) -> None:
    """`orchestr8 run examples/router.json` offline: billing runs, technical is skipped by its
    `when`, the reply takes the billing answer; `orchestr8 inspect` shows the skip's reason."""
    fake = FakeAnthropic()
    fake.reply_json({"label": "billing"})
    fake.reply_text("Sorry about that: the second charge is refunded within 5 days.")
    journal = str(tmp_path / "journal.db")
    async with fake.serve() as base_url:
        env = environment(tmp_path, ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY="sk-fake")
        command = [sys.executable, "-m", "orchestr8"]
        run = ["run", str(EXAMPLES / "router.json"), "--json", "--journal", journal]
        done = await trio.run_process(
            [*command, *run, "--input", f"message={MESSAGE}"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        result = json.loads(done.stdout)
        shown = await trio.run_process(
            [*command, "inspect", result["execution_id"], "--journal", journal],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result["output"] == {
        "label": "billing",
        "billing": "Sorry about that: the second charge is refunded within 5 days.",
        "technical": None,
    }
    assert {step: state["status"] for step, state in result["steps"].items()} == {
        "classify": "succeeded",
        "route_billing": "succeeded",
        "route_technical": "skipped",
        "reply": "succeeded",
    }
    assert MESSAGE in fake.requests[1].json["messages"][0]["content"]
    fake.assert_all_used()
    assert re.search(
        r"^route_technical\s+skipped\s+0\s+-\s+"
        r"when was false: steps\.classify\.output\.json\.label == 'technical'$",
        shown.stdout.decode(),
        re.MULTILINE,
    )


async def test_router_sends_a_technical_message_to_the_technical_handler() -> None:
    """The other route: technical runs and billing is skipped; the reply reads billing as null."""
    fake = FakeAnthropic()
    fake.reply_json({"label": "technical"})
    fake.reply_text("Clear the cache, then sign in again.")
    with fake, use_fake_anthropic(fake):
        result = await run_workflow(
            EXAMPLES / "router.json", {"message": "The app crashes when I sign in."}
        )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["route_billing"].status.value == "skipped"
    assert result.output == {
        "label": "technical",
        "billing": None,
        "technical": "Clear the cache, then sign in again.",
    }
