"""`orchestr8 eval` as a person runs it: flags or a spec, tables or JSON, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_in_process import Outcome, call

from orchestr8._llm._eval_run import call_order
from orchestr8.testing import FakeAnthropic, use_fake_anthropic

MODEL = "anthropic:claude-sonnet-4-5"


def template(name: str, system: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1",
        "variables": {"topic": {"type": "string"}},
        "system": system,
        "messages": [{"role": "user", "content": "Topic: ${vars.topic}"}],
        "expect": {"constraints": {"must_include": ["risk"], "max_words": 30}},
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two templates and a dataset of 20 topics in `tmp_path`."""
    (tmp_path / "a.json").write_text(json.dumps(template("a", "Name the risk.")))
    (tmp_path / "b.json").write_text(json.dumps(template("b", "Be brief.")))
    lines = [json.dumps({"topic": f"topic {index}"}) for index in range(20)]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def flags(*extra: str) -> tuple[str, ...]:
    return (
        "eval",
        "--a",
        "a.json",
        "--b",
        "b.json",
        "--model",
        MODEL,
        "--dataset",
        "data.jsonl",
        "--cache",
        "cache",
        *extra,
    )


def run_with(fake: FakeAnthropic, *args: str, cwd: Path) -> Outcome:
    with use_fake_anthropic(fake):
        return call(*args, cwd=cwd)


def test_two_templates_with_no_difference_exit_0(project: Path) -> None:
    """Both arms name the risk every time: no significant difference anywhere, exit 0."""
    fake = FakeAnthropic()
    for _ in range(40):
        fake.reply_text("The main risk is cost.", input_tokens=20, output_tokens=6)
    outcome = run_with(fake, *flags(), cwd=project)
    assert outcome.code == 0, outcome.stderr
    assert outcome.stderr.splitlines()[0] == "0 of 40 outputs from the cache"
    assert outcome.stderr.splitlines()[-1] == "called 40 of 40"
    lines = outcome.stdout.splitlines()
    assert lines[0] == "20 inputs, seed 0; 0 of 40 outputs from the cache"
    assert lines[1].split()[:4] == ["dimension", "mean", "A", "mean"]
    assert lines[2].startswith("constraints  100.0")
    assert lines[2].endswith("no significant difference")
    assert lines[-1] == "B is not significantly worse on any dimension"
    assert "a    anthropic:claude-sonnet-4-5  a.json" in outcome.stdout


def test_b_worse_exits_2_with_json_for_ci(project: Path) -> None:
    """B leaves out the risk: B worse on constraints and pass, exit 2, one JSON document."""
    fake = FakeAnthropic()
    for _, arm in call_order(20, seed=3):
        fake.reply_text("The main risk is cost." if arm == "a" else "It is fine.")
    outcome = run_with(fake, *flags("--seed", "3", "--concurrency", "1", "--json"), cwd=project)
    assert outcome.code == 2, outcome.stderr
    report = json.loads(outcome.stdout)
    assert report["seed"] == 3
    assert report["b_significantly_worse"] is True
    assert {d["name"]: d["verdict"] for d in report["dimensions"]} == {
        "constraints": "b_worse",
        "overall": "b_worse",
        "pass": "b_worse",
    }


def test_a_spec_file_and_the_flags_together_are_refused(project: Path) -> None:
    """One way to describe an eval at a time."""
    (project / "spec.json").write_text("{}")
    outcome = call("eval", "spec.json", "--model", MODEL, cwd=project)
    assert outcome.code == 1
    assert outcome.stderr == (
        "error: give either a spec file or --a/--b/--model/--model-b/--dataset, not both\n"
    )


def test_every_problem_of_the_flags_is_named(project: Path) -> None:
    """No flags at all: each missing one is named, exit 1, nothing called."""
    outcome = call("eval", cwd=project)
    assert outcome.code == 1
    assert outcome.stderr.startswith("error: the options: invalid eval spec (5 problems):\n")
    assert "  --dataset: is required\n" in outcome.stderr


def test_an_unknown_provider_is_named_before_any_call(project: Path) -> None:
    """`nowhere:model` is not in the catalog: said at the flag that named it, exit 1."""
    outcome = call(*flags("--model-b", "nowhere:m"), cwd=project)
    assert outcome.code == 1
    assert outcome.stderr.startswith(
        "error: the options: invalid eval spec (1 problem):\n  --model-b: "
    )
    assert "nowhere" in outcome.stderr


def test_a_small_dataset_needs_allow_small(project: Path) -> None:
    """12 inputs are refused, saying why; --allow-small runs them."""
    lines = [json.dumps({"topic": f"t{index}"}) for index in range(12)]
    (project / "data.jsonl").write_text("\n".join(lines))
    refused = call(*flags(), cwd=project)
    assert refused.code == 1
    assert "12 inputs, fewer than 20" in refused.stderr
    fake = FakeAnthropic()
    for _ in range(24):
        fake.reply_text("The main risk is cost.")
    allowed = run_with(fake, *flags("--allow-small"), cwd=project)
    assert allowed.code == 0, allowed.stderr


def test_a_line_that_does_not_render_is_named(project: Path) -> None:
    """A line without the template's variable: its line number and arm, before any call."""
    lines = [json.dumps({"topic": f"t{index}"}) for index in range(20)]
    lines[4] = json.dumps({"subject": "x"})
    (project / "data.jsonl").write_text("\n".join(lines))
    fake = FakeAnthropic()
    outcome = run_with(fake, *flags(), cwd=project)
    assert outcome.code == 1
    assert outcome.stderr.startswith("error: data.jsonl:5: arm a (a.json): ")
    assert "topic" in outcome.stderr
    assert fake.requests == []


def test_failed_calls_exit_1_and_a_rerun_pays_only_for_them(project: Path) -> None:
    """One call refused: exit 1 saying so; the rerun makes that one call and succeeds."""
    fake = FakeAnthropic()
    fake.reply_bad_request("prompt is too long")
    for _ in range(39):
        fake.reply_text("The main risk is cost.")
    failed = run_with(fake, *flags("--concurrency", "1"), cwd=project)
    assert failed.code == 1
    assert "error: 1 of 40 calls failed" in failed.stderr
    assert "prompt is too long" in failed.stderr
    retry = FakeAnthropic()
    retry.reply_text("The main risk is cost.")
    rerun = run_with(retry, *flags(), cwd=project)
    assert rerun.code == 0, rerun.stderr
    assert "39 of 40 outputs from the cache" in rerun.stderr
    assert len(retry.requests) == 1


def test_a_spec_file_runs_with_its_own_paths(project: Path) -> None:
    """A spec in another directory: its dataset and templates are found beside it."""
    spec_dir = project / "evals"
    spec_dir.mkdir()
    spec = {
        "dataset": "../data.jsonl",
        "model": MODEL,
        "arms": {"a": {"template": "../a.json"}, "b": {"template": "../b.json"}},
        "seed": 1,
    }
    (spec_dir / "spec.json").write_text(json.dumps(spec))
    fake = FakeAnthropic()
    for _ in range(40):
        fake.reply_text("The main risk is cost.")
    outcome = run_with(fake, "eval", "evals/spec.json", "--cache", "cache", cwd=project)
    assert outcome.code == 0, outcome.stderr
    assert "20 inputs, seed 1" in outcome.stdout


def test_a_providers_file_names_and_prices_the_arms_models(project: Path) -> None:
    """--providers adds a provider whose price override costs the outputs; a bad file exits 1."""
    (project / "providers.json").write_text(
        json.dumps(
            {
                "providers": {
                    "house": {
                        "kind": "anthropic",
                        "prices": {"*": {"input": 1.0, "output": 2.0}},
                    }
                }
            }
        )
    )
    fake = FakeAnthropic()
    for _ in range(40):
        fake.reply_text("The main risk is cost.", input_tokens=1000, output_tokens=500)
    args = flags("--json", "--providers", "providers.json")
    args = tuple("house:m" if value == MODEL else value for value in args)
    outcome = run_with(fake, *args, cwd=project)
    assert outcome.code == 0, outcome.stderr
    arms = json.loads(outcome.stdout)["arms"]
    assert arms["a"]["model"] == "house:m"
    assert arms["a"]["cost_usd"] == pytest.approx(20 * (1000 * 1.0 + 500 * 2.0) / 1_000_000)
    (project / "providers.json").write_text('{"providers": {"house": {"kind": "nope"}}}')
    refused = call(*args, cwd=project)
    assert refused.code == 1
    assert "invalid provider config" in refused.stderr
