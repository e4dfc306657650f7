"""Acceptance: a provider never sends a key to a host it was not given the key for.

A key spy on loopback (`key_spy.KeySpy`) records the credentials of every request. The built-in
`anthropic` provider sends `ANTHROPIC_API_KEY` to `ANTHROPIC_BASE_URL` (both the operator's);
a provider declared in a workflow or a providers file gets only the key its spec names, so the
environment's key never reaches its server, over `orchestr8 run` and over `orchestr8 serve`. A
spec'd key that is not set is a `MissingAPIKeyError` naming the provider and the variable, and
the call falls back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import trio
from cli_processes import environment
from key_spy import KeySpy
from serve_processes import environment as serve_environment
from serve_processes import orchestr8_serve

from orchestr8.testing import FakeAnthropic, FakeOpenAI

SECRET = "sk-env-secret-0451"
OPENAI_SECRET = "sk-openai-secret-0451"


def workflow(model: str, providers: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    """One llm step on `model`, tried once; the workflow's own `providers` when given."""
    document: dict[str, Any] = {
        "schema_version": "1.1",
        "name": "keys",
        "steps": [
            {
                "id": "ask",
                "agent": {"id": "llm", "config": {"model": model, **config}},
                "input": "hi",
                "policy": {"retry": {"max_attempts": 1}},
            }
        ],
    }
    if providers is not None:
        document["providers"] = providers
    return document


async def run(tmp_path: Path, document: dict[str, Any], *args: str, **env: str) -> Any:
    """`orchestr8 run` of `document` as a real process, with `env` over the test environment."""
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(document), "utf-8")
    return await trio.run_process(
        [sys.executable, "-m", "orchestr8", "run", str(path), "--json", *args],
        env=environment(tmp_path, **env),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def test_a_workflow_s_provider_never_gets_the_environment_s_key(tmp_path: Path) -> None:
    """A workflow's anthropic-kind provider without `api_key` sends no key, not the env's."""
    spy = KeySpy()
    async with spy.serve() as url:
        providers = {"b": {"kind": "anthropic", "base_url": url}}
        done = await run(
            tmp_path,
            workflow("b:claude-haiku-4-5", providers),
            ANTHROPIC_API_KEY=SECRET,
        )
    assert done.returncode == 2, done.stderr.decode()
    assert spy.seen == [{}]  # one request, no credential at all


async def test_an_openai_kind_provider_never_gets_the_environment_s_key(tmp_path: Path) -> None:
    """A declared openai-kind provider gets a placeholder, never `OPENAI_API_KEY`."""
    spy = KeySpy()
    async with spy.serve() as url:
        providers = {"lab": {"kind": "openai", "base_url": f"{url}/v1"}}
        done = await run(
            tmp_path, workflow("lab:llama3.1", providers), OPENAI_API_KEY=OPENAI_SECRET
        )
    assert done.returncode == 2, done.stderr.decode()
    assert len(spy.seen) == 1
    assert not spy.sent(OPENAI_SECRET)


async def test_the_built_in_provider_sends_the_operator_s_key_to_the_operator_s_url(
    tmp_path: Path,
) -> None:
    """`ANTHROPIC_API_KEY` goes to `ANTHROPIC_BASE_URL`: the operator set both."""
    spy = KeySpy()
    async with spy.serve() as url:
        done = await run(
            tmp_path,
            workflow("anthropic:claude-haiku-4-5"),
            ANTHROPIC_API_KEY=SECRET,
            ANTHROPIC_BASE_URL=url,
        )
    assert done.returncode == 2, done.stderr.decode()
    assert spy.sent(SECRET)


async def test_an_unset_spec_key_is_a_missing_key_and_the_call_falls_back(tmp_path: Path) -> None:
    """`api_key: ${env.NOPE}` unset: the provider is never called, the fallback answers."""
    spy = KeySpy()
    fake = FakeAnthropic()
    fake.reply_text("from the fallback")
    providers = tmp_path / "providers.json"
    with fake:
        async with spy.serve() as url, fake.serve() as fake_url:
            spec = {"kind": "anthropic", "base_url": url, "api_key": "${env.NOPE_NOT_SET}"}
            providers.write_text(json.dumps({"providers": {"b": spec}}), "utf-8")
            document = workflow("b:claude-haiku-4-5", fallback=["anthropic:claude-haiku-4-5"])
            journal = str(tmp_path / "journal.db")
            done = await run(
                tmp_path,
                document,
                "--providers",
                str(providers),
                "--journal",
                journal,
                ANTHROPIC_API_KEY=SECRET,
                ANTHROPIC_BASE_URL=fake_url,
            )
            shown = await trio.run_process(
                [
                    sys.executable,
                    "-m",
                    "orchestr8",
                    "inspect",
                    "--journal",
                    journal,
                    json.loads(done.stdout)["execution_id"],
                ],
                env=environment(tmp_path),
                capture_stdout=True,
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["output"]["ask"]["provider"] == "anthropic"
    assert spy.seen == []
    assert fake.requests[0].has_credentials
    assert (
        "provider 'b' takes its API key from the environment variable 'NOPE_NOT_SET',"
        " which is not set" in done.stderr.decode()
    )
    assert "answered by anthropic:claude-haiku-4-5; b skipped: no API key" in shown.stdout.decode()


async def test_a_workflow_posted_to_serve_never_gets_the_server_s_key(tmp_path: Path) -> None:
    """Over REST a posted workflow's provider cannot pull the server's ANTHROPIC_API_KEY."""
    spy = KeySpy()
    async with spy.serve() as url:
        providers = {"b": {"kind": "anthropic", "base_url": url}}
        document = workflow("b:claude-haiku-4-5", providers)
        env = serve_environment(ANTHROPIC_API_KEY=SECRET)
        async with (
            orchestr8_serve(tmp_path / "journal.db", env=env) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            posted = await http.post("/workflows/execute", json={"workflow": document})
            assert posted.status_code == 202, posted.text
            with trio.fail_after(20):
                await spy.requested.wait()
            await server.stop()
    assert spy.seen == [{}]


async def test_local_and_openai_models_run_under_a_cost_cap(tmp_path: Path) -> None:
    """`local:` (moved by a providers file, still priced 0) and `openai:` answer over `run`."""
    fake = FakeOpenAI()
    fake.reply_text("from local")
    fake.reply_text("from openai")
    providers = tmp_path / "providers.json"
    document = workflow("local:llama3.1:8b")
    document["strategy"] = "sequential"
    document["steps"].append({**document["steps"][0], "id": "again"})
    document["steps"][1]["agent"] = {"id": "llm", "config": {"model": "openai:gpt-4.1"}}
    with fake:
        async with fake.serve() as url:
            spec = {"kind": "openai", "base_url": url}
            providers.write_text(json.dumps({"providers": {"local": spec}}), "utf-8")
            done = await run(
                tmp_path,
                document,
                "--providers",
                str(providers),
                "--max-cost",
                "1",
                OPENAI_API_KEY=OPENAI_SECRET,
                OPENAI_BASE_URL=url,
            )
    assert done.returncode == 0, done.stderr.decode()
    output = json.loads(done.stdout)["output"]
    assert (output["ask"]["provider"], output["ask"]["text"]) == ("local", "from local")
    assert (output["again"]["provider"], output["again"]["text"]) == ("openai", "from openai")
    assert [request.has_credentials for request in fake.requests] == [True, True]
