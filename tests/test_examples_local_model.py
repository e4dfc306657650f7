"""examples/research_brief_local.json runs as `orchestr8 run` against FakeOpenAI on loopback."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from orchestr8.testing import FakeOpenAI

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "research_brief_local.json"
QUESTION = "How do I run two tasks at once?"
ANSWER = {"answer": "Open a nursery and start both tasks in it.", "confidence": "high"}
SUMMARY = "- open a nursery\n- start_soon each task\n- the block waits for both"


def llm_calls(journal: Path) -> list[tuple[str, dict[str, Any]]]:
    """Each `llm.called` event in the journal: its step and its data."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT step_id, data FROM events WHERE type = 'llm.called' ORDER BY seq"
        ).fetchall()
    connection.close()
    return [(step, json.loads(data)) for step, data in rows]


async def orchestr8(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m orchestr8 ARGS` without blocking the fake server in this process."""
    return await trio.run_process(
        [sys.executable, "-m", "orchestr8", *args],
        env=environment,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def test_the_local_research_brief_runs_on_an_openai_compatible_server(
    tmp_path: Path,
) -> None:
    """`local:llama3.1` through a providers file: JSON answer, then a summary, no API key."""
    fake = FakeOpenAI(chunk_size=8)
    fake.reply_json(ANSWER, prompt_tokens=40, completion_tokens=20)
    fake.reply_text(SUMMARY, usage=None)  # like a local server that reports no usage
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"ORCHESTR8_JOURNAL", "OPENAI_API_KEY", "OPENAI_BASE_URL"}
    }
    environment["NO_COLOR"] = "1"
    journal = tmp_path / "journal.db"
    async with fake.serve() as base_url:
        providers = tmp_path / "providers.json"
        providers.write_text(
            json.dumps({"providers": {"local": {"kind": "openai", "base_url": base_url}}})
        )
        ran = await orchestr8(
            "run",
            str(EXAMPLE),
            "--providers",
            str(providers),
            "--json",
            "--journal",
            str(journal),
            "--input",
            "library=trio",
            "--input",
            f"question={QUESTION}",
            environment=environment,
        )
    assert ran.returncode == 0, ran.stderr.decode()
    assert json.loads(ran.stdout)["output"] == {
        "library": "trio",
        "answer": ANSWER["answer"],
        "confidence": "high",
        "summary": SUMMARY,
        "model": "llama3.1",
    }
    research, summary = (request.json for request in fake.requests)
    assert research["model"] == summary["model"] == "llama3.1"
    assert research["stream_options"] == {"include_usage": True}
    assert research["response_format"]["type"] == "json_schema"
    assert research["response_format"]["json_schema"]["schema"]["required"] == [
        "answer",
        "confidence",
    ]
    assert research["messages"][-1] == {
        "role": "user",
        "content": f"Question about trio: {QUESTION}",
    }
    assert ANSWER["answer"] in summary["messages"][-1]["content"]
    assert "response_format" not in summary
    calls = llm_calls(journal)
    assert [(step, call["provider"], call["model"]) for step, call in calls] == [
        ("research", "local", "llama3.1"),
        ("summary", "local", "llama3.1"),
    ]
    assert calls[0][1]["usage"] == {"input_tokens": 40, "output_tokens": 20}
    assert calls[1][1]["usage"]["estimated"] is True  # the server sent no usage
    fake.assert_all_used()
