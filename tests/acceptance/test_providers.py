"""Acceptance: `orchestr8 run --providers` falls back from a failing provider to a second one.

Two FakeAnthropic servers on loopback stand for two providers: the built-in `anthropic`,
pointed at the first by the provider config file, answers 529 (overloaded); `backup`, a second
provider of kind anthropic at the other address, answers. The run succeeds with the backup's
reply, the journal holds both calls as `llm.called`, and `inspect` says who answered.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from cli_processes import environment
from key_spy import KeySpy

from orchestr8.testing import FakeAnthropic

WORKFLOW: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "fallback",
    "steps": [
        {
            "id": "brief",
            "agent": {
                "id": "llm",
                "config": {"model": "claude-main", "fallback": ["backup:claude-spare"]},
            },
            "input": "Summarise trio in one line.",
            "policy": {"retry": {"max_attempts": 1}},
        }
    ],
    "output": "${steps.brief.output}",
}


async def orchestr8(*args: str, env: dict[str, str]) -> Any:
    """Run `python -m orchestr8 ARGS` without blocking the fakes' server."""
    return await trio.run_process(
        [sys.executable, "-m", "orchestr8", *args],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def test_run_falls_back_to_the_second_provider_of_the_config_file(tmp_path: Path) -> None:
    """The primary's 529 sends the call to `backup`; the run succeeds and says who answered."""
    primary, backup = FakeAnthropic(), FakeAnthropic()
    primary.reply_overloaded()
    backup.reply_text("Trio: structured concurrency for Python.", input_tokens=9, output_tokens=6)
    workflow = tmp_path / "fallback.json"
    workflow.write_text(json.dumps(WORKFLOW), "utf-8")
    journal = str(tmp_path / "journal.db")
    with primary, backup:
        async with primary.serve() as primary_url, backup.serve() as backup_url:
            providers = tmp_path / "providers.json"
            config = {
                "providers": {
                    "anthropic": {"kind": "anthropic", "base_url": primary_url},
                    "backup": {
                        "kind": "anthropic",
                        "base_url": backup_url,
                        "api_key": "${env.BACKUP_KEY}",
                    },
                }
            }
            providers.write_text(json.dumps(config), "utf-8")
            env = environment(tmp_path, ANTHROPIC_API_KEY="sk-main", BACKUP_KEY="sk-backup")
            done = await orchestr8(
                "run",
                str(workflow),
                "--providers",
                str(providers),
                "--json",
                "--journal",
                journal,
                env=env,
            )
            assert done.returncode == 0, done.stderr.decode()
            result = json.loads(done.stdout)
            shown = await orchestr8(
                "inspect", result["execution_id"], "--journal", journal, env=env
            )
            events = await orchestr8(
                "inspect", result["execution_id"], "--journal", journal, "--json", env=env
            )
    output = result["output"]
    assert (output["provider"], output["model"]) == ("backup", "claude-spare")
    assert output["text"] == "Trio: structured concurrency for Python."
    assert "1 failed), answered by backup:claude-spare" in shown.stdout.decode()
    detail = json.loads(events.stdout)
    calls = [event for event in detail["events"] if event["type"] == "llm.called"]
    assert [(call["data"]["provider"], call["data"]["outcome"]) for call in calls] == [
        ("anthropic", "failed"),
        ("backup", "succeeded"),
    ]
    assert detail["steps"]["brief"]["llm"]["providers"] == ["backup"]
    assert backup.requests[0].has_credentials


async def test_validate_refuses_an_unknown_provider_and_accepts_it_with_the_config(
    tmp_path: Path,
) -> None:
    """Without the config file the fallback's provider is unknown; with it the file is valid."""
    workflow = tmp_path / "fallback.json"
    workflow.write_text(json.dumps(WORKFLOW), "utf-8")
    providers = tmp_path / "providers.json"
    spare = {"kind": "anthropic", "base_url": "http://127.0.0.1:9/"}
    providers.write_text(json.dumps({"providers": {"backup": spare}}), "utf-8")
    env = environment(tmp_path)
    refused = await orchestr8("validate", str(workflow), env=env)
    assert refused.returncode == 1
    assert (
        "$.steps[0].agent.config.fallback[0]: unknown provider 'backup' (known: anthropic, local,"
        " openai)" in refused.stderr.decode()
    )
    accepted = await orchestr8("validate", str(workflow), "--providers", str(providers), env=env)
    assert accepted.returncode == 0, accepted.stderr.decode()
    by_variable = await orchestr8(
        "validate", str(workflow), env={**env, "ORCHESTR8_PROVIDERS": str(providers)}
    )
    assert by_variable.returncode == 0, by_variable.stderr.decode()


async def test_a_bad_config_file_is_one_line_per_problem_with_its_path(tmp_path: Path) -> None:
    """A config file with a literal key is refused with the file and JSON path, no traceback."""
    workflow = tmp_path / "fallback.json"
    workflow.write_text(json.dumps(WORKFLOW), "utf-8")
    providers = tmp_path / "providers.json"
    providers.write_text(
        json.dumps({"providers": {"backup": {"kind": "anthropic", "api_key": "sk-live"}}}), "utf-8"
    )
    done = await orchestr8(
        "run", str(workflow), "--providers", str(providers), env=environment(tmp_path)
    )
    assert done.returncode == 1
    stderr = done.stderr.decode()
    assert f"error: {providers}: invalid provider config (1 problem):" in stderr
    assert "$.providers.backup.api_key: a key is never written in a document" in stderr
    assert "Traceback" not in stderr


async def test_every_command_that_runs_or_checks_workflows_offers_providers(
    tmp_path: Path,
) -> None:
    """`run`, `validate`, `resume`, `fork` and `serve` all take `--providers FILE`."""
    env = environment(tmp_path)
    for command in ("run", "validate", "resume", "fork", "serve"):
        shown = await orchestr8(command, "--help", env=env)
        assert "--providers FILE" in shown.stdout.decode(), command


async def test_serve_and_validate_refuse_a_bad_or_empty_providers_option(tmp_path: Path) -> None:
    """`serve` stops before listening on an invalid config file; an empty path is refused."""
    providers = tmp_path / "providers.json"
    providers.write_text('{"providers": {"x": {"kind": "grpc"}}}', "utf-8")
    env = environment(tmp_path)
    served = await orchestr8("serve", "--port", "0", "--providers", str(providers), env=env)
    assert served.returncode == 1
    assert "$.providers.x.kind: expected one of 'anthropic', 'openai'" in served.stderr.decode()
    assert "serving on" not in served.stdout.decode()
    workflow = tmp_path / "fallback.json"
    workflow.write_text(json.dumps(WORKFLOW), "utf-8")
    empty = await orchestr8("validate", str(workflow), "--providers", " ", env=env)
    assert empty.returncode == 1
    assert "error: --providers: the path is empty" in empty.stderr.decode()


# The anthropic SDK leaves its own SSE decoder's async generators suspended when a chunk is not
# JSON (in the garbage server's stream); trio finalises them with a ResourceWarning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_garbage_stream_falls_back_and_names_the_provider(tmp_path: Path) -> None:
    """Malformed SSE from `gs` is a ProviderResponseError naming it; the fallback answers."""
    garbage = KeySpy(
        status=200,
        content_type="text/event-stream",
        body=b"event: message_start\ndata: {not json}\n\n",
    )
    fake = FakeAnthropic()
    fake.reply_text("from the fallback")
    journal = str(tmp_path / "journal.db")
    with fake:
        async with garbage.serve() as garbage_url, fake.serve() as fake_url:
            document = {
                **WORKFLOW,
                "providers": {"gs": {"kind": "anthropic", "base_url": garbage_url}},
            }
            document["steps"] = [
                {
                    **WORKFLOW["steps"][0],
                    "agent": {
                        "id": "llm",
                        "config": {"model": "gs:m", "fallback": ["anthropic:claude-haiku-4-5"]},
                    },
                }
            ]
            workflow = tmp_path / "garbage.json"
            workflow.write_text(json.dumps(document), "utf-8")
            env = environment(tmp_path, ANTHROPIC_API_KEY="sk-main", ANTHROPIC_BASE_URL=fake_url)
            done = await orchestr8("run", str(workflow), "--json", "--journal", journal, env=env)
            assert done.returncode == 0, done.stderr.decode()
            result = json.loads(done.stdout)
            events = await orchestr8(
                "inspect", result["execution_id"], "--journal", journal, "--json", env=env
            )
    assert result["output"]["provider"] == "anthropic"
    calls = [e["data"] for e in json.loads(events.stdout)["events"] if e["type"] == "llm.called"]
    assert calls[0]["provider"] == "gs"
    assert calls[0]["error"]["type"] == "ProviderResponseError"
    assert calls[0]["error"]["message"].startswith("provider 'gs' (anthropic at ")
    assert (calls[1]["provider"], calls[1]["outcome"]) == ("anthropic", "succeeded")


async def test_inspect_says_when_an_open_breaker_skipped_the_primary(tmp_path: Path) -> None:
    """Five failures open anthropic's breaker; the sixth step's skip is journaled and shown."""
    primary, backup = FakeAnthropic(), FakeAnthropic()
    for _ in range(5):
        primary.reply_overloaded()
    for number in range(6):
        backup.reply_text(f"answer {number}")
    config = {"model": "claude-a", "fallback": ["backup:claude-b"]}
    steps = [
        {"id": f"s{number}", "agent": {"id": "llm", "config": config}, "input": "hi"}
        for number in range(6)
    ]
    journal = str(tmp_path / "journal.db")
    with primary, backup:
        async with primary.serve() as primary_url, backup.serve() as backup_url:
            document = {
                "schema_version": "1.1",
                "name": "breaking",
                "strategy": "sequential",
                "providers": {"backup": {"kind": "anthropic", "base_url": backup_url}},
                "steps": steps,
            }
            workflow = tmp_path / "breaking.json"
            workflow.write_text(json.dumps(document), "utf-8")
            env = environment(tmp_path, ANTHROPIC_API_KEY="sk", ANTHROPIC_BASE_URL=primary_url)
            done = await orchestr8("run", str(workflow), "--json", "--journal", journal, env=env)
            assert done.returncode == 0, done.stderr.decode()
            execution = json.loads(done.stdout)["execution_id"]
            shown = await orchestr8("inspect", execution, "--journal", journal, env=env)
    row = next(line for line in shown.stdout.decode().splitlines() if " s5 " in f" {line} ")
    assert "answered by backup:claude-b; anthropic skipped: circuit open" in row
