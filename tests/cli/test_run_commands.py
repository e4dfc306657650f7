"""`orchestr8 run --max-cost`: a cost cap from the command line, checked, recorded, enforced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_in_process import call

from orchestr8.testing import FakeAnthropic, use_fake_anthropic


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real credentials or endpoints leak into a test."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def llm_workflow(path: Path, version: str = "1.0", **top: Any) -> Path:
    """A one-step workflow calling the llm agent (claude-haiku-4-5, 50 output tokens at most)."""
    step = {
        "id": "ask",
        "agent": {"id": "llm", "config": {"model": "claude-haiku-4-5", "max_tokens": 50}},
        "input": "Say hi",
        "policy": {"retry": {"max_attempts": 1}, "circuit_breaker": None},
    }
    document = {"schema_version": version, "name": "ask", "steps": [step], **top}
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "Invalid value for '--max-cost': 'abc' is not a valid float."),
        ("-1", "error: --max-cost must be a number of US dollars >= 0, got -1.0"),
        ("nan", "error: --max-cost must be a number of US dollars >= 0, got nan"),
        ("inf", "error: --max-cost must be a number of US dollars >= 0, got inf"),
    ],
)
def test_a_bad_max_cost_is_an_error_naming_the_option(
    tmp_path: Path, value: str, message: str
) -> None:
    """Not a number, negative, NaN or infinite: exit 1 naming --max-cost, nothing journaled."""
    workflow = llm_workflow(tmp_path / "w.json")
    done = call("run", str(workflow), "--max-cost", value, "--journal", "j.db", cwd=tmp_path)
    assert done.code == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "j.db").exists()


def test_max_cost_caps_the_run_and_the_journal_keeps_it(tmp_path: Path) -> None:
    """A call the cap cannot cover is never made: the step fails (exit 2) with the shortfall."""
    workflow = llm_workflow(tmp_path / "w.json")
    fake = FakeAnthropic()
    with fake, use_fake_anthropic(fake):
        done = call(
            "run",
            str(workflow),
            "--max-cost",
            "0.00001",
            "--journal",
            "j.db",
            "--json",
            cwd=tmp_path,
        )
    assert done.code == 2, done.stderr
    result = json.loads(done.stdout)
    error = result["steps"]["ask"]["error"]
    assert error["type"] == "BudgetExhaustedError"
    assert (
        "the workflow's budget cannot cover this model call: max_cost_usd would need"
        in (error["message"])
    )
    assert fake.requests == []


def test_max_cost_above_the_workflows_cap_changes_nothing(tmp_path: Path) -> None:
    """The lower cap wins: a workflow's own cap stays when --max-cost is higher."""
    workflow = llm_workflow(tmp_path / "w.json", "1.1", budget={"max_cost_usd": 0.00001})
    fake = FakeAnthropic()
    with fake, use_fake_anthropic(fake):
        done = call("run", str(workflow), "--max-cost", "5", "--json", cwd=tmp_path)
    assert done.code == 2
    assert json.loads(done.stdout)["steps"]["ask"]["error"]["type"] == "BudgetExhaustedError"


def test_a_call_the_cap_covers_is_made(tmp_path: Path) -> None:
    """Under a cap that covers the worst case the call is made and the run succeeds."""
    workflow = llm_workflow(tmp_path / "w.json")
    fake = FakeAnthropic()
    fake.reply_text("hi", input_tokens=3, output_tokens=2)
    with fake, use_fake_anthropic(fake):
        done = call("run", str(workflow), "--max-cost", "0.01", "--json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["steps"]["ask"]["output"]["text"] == "hi"
    assert len(fake.requests) == 1
