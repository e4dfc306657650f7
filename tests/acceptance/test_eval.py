"""`orchestr8 eval` end to end: the example eval, as a real process, against FakeAnthropic.

The example (`examples/eval/`) compares two brief templates on 24 topics. The fake answers A's
calls with both required tags and B's mostly without `<risks>`; the calls come one at a time in
the documented seeded order (`call_order`), so each is scripted for its arm. The first run calls
all 48 outputs and exits 2 (B significantly worse); the second is answered from the cache: no
request reaches the fake, nothing is spent, and the report is the same.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from orchestr8._llm._eval_run import call_order
from orchestr8.testing import FakeAnthropic, FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "eval"

GOOD = (
    "<summary>{topic} has clear benefits and some costs worth weighing.</summary>\n"
    "<risks>Up-front cost; uneven evidence.</risks>"
)
WITHOUT_RISKS = "<summary>{topic} has clear benefits and some costs worth weighing.</summary>"


def script(fake: FakeAnthropic, topics: list[str], seed: int) -> None:
    """A's replies have both tags; B's leave out <risks> on three inputs in four."""
    for index, arm in call_order(len(topics), seed):
        complete = arm == "a" or index % 4 == 0
        text = (GOOD if complete else WITHOUT_RISKS).format(topic=topics[index])
        fake.reply_text(text, input_tokens=60, output_tokens=25)


async def orchestr8_eval(*args: str, cwd: Path, base_url: str) -> tuple[int, str, str]:
    """Run `python -m orchestr8 eval ARGS` against the fake; its exit code, stdout, stderr."""
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-ant-acceptance",
        "NO_COLOR": "1",
    }
    done = await trio.run_process(
        [sys.executable, "-m", "orchestr8", "eval", *args],
        env=env,
        cwd=cwd,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_the_example_eval_finds_b_worse_then_reruns_from_the_cache(tmp_path: Path) -> None:
    """Run 1: 48 calls, exit 2. Run 2: 48 of 48 from the cache, no call, nothing spent."""
    workdir = tmp_path / "eval"
    shutil.copytree(EXAMPLE, workdir)
    topics = [
        json.loads(line)["topic"]
        for line in (workdir / "topics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    spec = json.loads((workdir / "spec.json").read_text(encoding="utf-8"))
    fake = FakeAnthropic()
    script(fake, topics, spec["seed"])
    async with fake.serve() as base_url:
        first = await orchestr8_eval(
            "spec.json", "--concurrency", "1", "--json", cwd=workdir, base_url=base_url
        )
        calls = len(fake.requests)
        second = await orchestr8_eval("spec.json", cwd=workdir, base_url=base_url)
        third = await orchestr8_eval("spec.json", "--json", cwd=workdir, base_url=base_url)
    fake.assert_all_used()

    code, stdout, stderr = first
    assert code == 2, stderr
    assert calls == 48
    assert "0 of 48 outputs from the cache" in stderr
    report = json.loads(stdout)
    assert report["inputs"] == 24
    assert report["b_significantly_worse"] is True
    verdicts = {dimension["name"]: dimension["verdict"] for dimension in report["dimensions"]}
    assert verdicts["structure"] == "b_worse"
    assert verdicts["pass"] == "b_worse"
    assert verdicts["constraints"] == "no_significant_difference"
    assert report["arms"]["a"]["from_cache"] == 0
    assert report["arms"]["a"]["spent_usd"] > 0
    assert report["arms"]["a"]["input_tokens"] == 24 * 60

    code, stdout, stderr = second
    assert code == 2, stderr
    assert len(fake.requests) == 48
    assert "48 of 48 outputs from the cache" in stderr
    assert "24 inputs, seed 7; 48 of 48 outputs from the cache" in stdout
    assert "B is significantly worse on: structure" in stdout
    assert "B worse" in stdout

    code, stdout, _ = third
    cached = json.loads(stdout)
    assert cached["outputs_from_cache"] == 48
    assert cached["arms"]["a"]["spent_usd"] == 0.0
    assert cached["arms"]["a"]["cost_usd"] == report["arms"]["a"]["cost_usd"]
    assert cached["dimensions"] == report["dimensions"]


async def test_the_documented_flag_commands_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eval.md's two flag-form commands work in the example directory: the templates' expect.

    The second command's arm A is the first's arm A, so it comes from the cache: 48 Anthropic
    calls in all, and 24 to the local model.
    """
    workdir = tmp_path / "eval"
    shutil.copytree(EXAMPLE, workdir)
    anthropic, local = FakeAnthropic(), FakeOpenAI()
    for _ in range(48):
        anthropic.reply_text(GOOD.format(topic="It"), input_tokens=60, output_tokens=25)
    for _ in range(24):
        local.reply_text(WITHOUT_RISKS.format(topic="It"), prompt_tokens=60, completion_tokens=25)
    async with anthropic.serve() as anthropic_url, local.serve() as local_url:
        providers = workdir / "providers.json"
        providers.write_text(
            json.dumps({"providers": {"local": {"kind": "openai", "base_url": local_url}}}),
            encoding="utf-8",
        )
        monkeypatch.setenv("ORCHESTR8_PROVIDERS", str(providers))
        templates = await orchestr8_eval(
                "--a", "brief-v1.json", "--b", "brief-v2.json",
                "--model", "anthropic:claude-sonnet-4-5", "--dataset", "topics.jsonl",
                cwd=workdir, base_url=anthropic_url,
        )  # fmt: skip
        models = await orchestr8_eval(
            "--a", "brief-v1.json", "--model", "anthropic:claude-sonnet-4-5",
            "--model-b", "local:llama3.1", "--dataset", "topics.jsonl",
            cwd=workdir, base_url=anthropic_url,
        )  # fmt: skip
    anthropic.assert_all_used()
    local.assert_all_used()
    code, stdout, stderr = templates
    assert code == 0, stderr
    assert "24 inputs, seed 0" in stdout
    code, stdout, stderr = models
    assert code == 2, stderr
    assert "B is significantly worse on: structure" in stdout


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_the_eval_with_130_and_says_what_was_cached(
    tmp_path: Path, signal_number: signal.Signals
) -> None:
    """SIGTERM or SIGINT mid-eval: 130, and stderr says how many outputs a rerun starts from.

    The signal follows the fourth output; on a busy machine a few more may finish first, so the
    count said is checked against the cache itself.
    """
    workdir = tmp_path / "eval"
    shutil.copytree(EXAMPLE, workdir)
    fake = FakeAnthropic()
    for number in range(40):
        fake.reply_text(GOOD.format(topic="It"), delay=0 if number < 4 else 600)
    async with fake.serve() as base_url:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "sk-ant-acceptance",
            "NO_COLOR": "1",
        }
        command = [sys.executable, "-m", "orchestr8", "eval", "spec.json", "--concurrency", "1"]
        process = await trio.lowlevel.open_process(
            command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        seen = b""
        with trio.fail_after(60):
            while b"called 4 of 48" not in seen:
                chunk = await process.stderr.receive_some()
                assert chunk, seen.decode()
                seen += chunk
            process.send_signal(signal_number)
            while chunk := await process.stderr.receive_some():
                seen += chunk
            code = await process.wait()
    stderr = seen.decode()
    assert code == 130, stderr
    name = signal_number.name
    assert f"interrupted ({name}): stopping; interrupt again to exit at once" in stderr
    stopped = re.search(
        rf"stopped by {name}: (\d+) outputs were made and cached by this run; run the same "
        "command again to carry on from them",
        stderr,
    )
    assert stopped is not None, stderr
    cached = list((workdir / ".orchestr8-eval-cache").glob("*/*.json"))
    assert int(stopped.group(1)) == len(cached) >= 4
    assert "Traceback" not in stderr
