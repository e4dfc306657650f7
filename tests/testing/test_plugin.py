"""The pytest plugin: its fixtures, run in inner pytest sessions, and how cheaply it loads."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

TRIO_MODE = ("-o", "trio_mode=true", "-W", "error", "-p", "no:cacheprovider")


def run_inner(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    """Write `source` as a test module and run it in an inner pytest session in trio mode."""
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest_inprocess(*TRIO_MODE, *args)


def test_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    """pytest finds the plugin through the `pytest11` entry point `orchestr8`."""
    found = importlib.metadata.entry_points(group="pytest11", name="orchestr8")
    assert [entry_point.value for entry_point in found] == ["orchestr8.testing._plugin"]


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    """Importing the plugin loads pytest only: no trio, no runtime, no HTTP client, no SDK."""
    probe = (
        "import sys, orchestr8.testing._plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'trio', 'httpx', 'httpx2', 'anthropic', 'quart', 'attrs', 'cattrs'} "
        "or m.startswith(('orchestr8.', 'actors'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [
        "['orchestr8._version',",
        "'orchestr8.testing',",
        "'orchestr8.testing._plugin']",
    ]


def test_runtime_fixtures_run_a_workflow_and_capture_its_events(pytester: pytest.Pytester) -> None:
    """`orchestr8_runtime` runs workflows; `captured_events` sees their events."""
    result = run_inner(
        pytester,
        """
        WORKFLOW = {"schema_version": "1.0", "name": "w",
                    "steps": [{"id": "a", "agent": "echo", "input": 1}]}

        async def test_it(orchestr8_runtime, captured_events):
            handle = await orchestr8_runtime.start(WORKFLOW)
            result = await handle.wait()
            assert result.succeeded
            assert captured_events.types()[0] == "execution.started"
            assert captured_events.types()[-1] == "execution.succeeded"
            assert orchestr8_runtime.journal.path is None
    """,
    )
    result.assert_outcomes(passed=1)


def test_helper_fixtures_use_the_overridable_agents(pytester: pytest.Pytester) -> None:
    """`run_agent` and `run_workflow` resolve ids in `orchestr8_agents`, which a test overrides."""
    result = run_inner(
        pytester,
        """
        import pytest

        async def double(input):
            return input * 2

        @pytest.fixture
        def orchestr8_agents():
            return {"double": double}

        async def test_agent(run_agent):
            assert (await run_agent("double", 21)).output == 42

        async def test_workflow(run_workflow, orchestr8_runtime):
            result, events = await run_workflow({
                "schema_version": "1.0", "name": "w",
                "steps": [{"id": "a", "agent": "double", "input": 4}],
                "output": "${steps.a.output}",
            })
            assert result.output == 8
            assert events[-1].type == "execution.succeeded"
            assert orchestr8_runtime.registry.exists("double")
    """,
    )
    result.assert_outcomes(passed=2)


def test_fixtures_work_on_the_mock_clock(pytester: pytest.Pytester) -> None:
    """With `autojump_clock`, a minute of `sleep` steps takes no real time."""
    result = run_inner(
        pytester,
        """
        import trio

        async def test_sleepy(run_workflow, autojump_clock):
            run = await run_workflow({
                "schema_version": "1.0", "name": "w",
                "steps": [{"id": "nap", "agent": {"id": "sleep", "config": {"seconds": 60}},
                           "input": 1, "policy": {"timeout": 120}}],
            })
            assert run.result.succeeded
            assert run.events[-1].elapsed == 60.0
            assert trio.current_time() == 60.0
    """,
        "--durations=1",
    )
    result.assert_outcomes(passed=1)


LLM_WORKFLOW_TEST = """
    WORKFLOW = {{
        "schema_version": "1.0", "name": "w",
        "steps": [{{"id": "ask", "input": {{}},
                    "agent": {{"id": "llm", "config": {{"model": "claude-test", "prompt": "hi"}}}},
                    "policy": {{"retry": {{"max_attempts": 1}}}}}}],
        "output": "${{steps.ask.output.text}}",
    }}

    async def test_llm(fake_anthropic, run_workflow):
        {script}
        result, _ = await run_workflow(WORKFLOW)
        {check}
"""


def test_fake_anthropic_answers_the_llm_agent(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `llm` agent in a workflow talks to the scripted fake, with no API key."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = run_inner(
        pytester,
        LLM_WORKFLOW_TEST.format(
            script='fake_anthropic.reply_text("Hello from the fake")',
            check='assert result.output == "Hello from the fake"',
        ),
    )
    result.assert_outcomes(passed=1)


def test_fake_anthropic_fails_the_test_on_an_unused_reply(pytester: pytest.Pytester) -> None:
    """A scripted reply nobody requested fails the test when it ends."""
    result = run_inner(
        pytester,
        """
        async def test_forgot_to_call(fake_anthropic):
            fake_anthropic.reply_text("never asked for")
    """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*scripted reply never requested*"])


def test_fake_anthropic_fails_the_test_on_an_unscripted_request(
    pytester: pytest.Pytester,
) -> None:
    """A request the script did not expect fails the test, even if the workflow shrugged."""
    result = run_inner(
        pytester,
        LLM_WORKFLOW_TEST.format(
            script="pass",
            check="assert not result.succeeded",
        ),
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unexpected request *POST /v1/messages*"])


def test_fake_openai_answers_clients_from_the_hook(pytester: pytest.Pytester) -> None:
    """`fake_openai` plugs the fake into the client hook; a client from it gets the reply."""
    result = run_inner(
        pytester,
        """
        from orchestr8.testing import openai_client_factory

        async def test_it(fake_openai):
            fake_openai.reply_text("Hello from the OpenAI fake")
            client = openai_client_factory()()
            completion = await client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "hi"}]
            )
            await client.close()
            assert completion.choices[0].message.content == "Hello from the OpenAI fake"
    """,
    )
    result.assert_outcomes(passed=1)


def test_fake_openai_fails_the_test_on_an_unused_reply(pytester: pytest.Pytester) -> None:
    """A scripted OpenAI reply nobody requested fails the test when it ends."""
    result = run_inner(
        pytester,
        """
        async def test_forgot_to_call(fake_openai):
            fake_openai.reply_text("never asked for")
    """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FakeOpenAI: scripted reply never requested*"])


def test_fake_openai_answers_the_llm_agent_on_a_local_model(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An `llm` step on `local:llama3.1` talks to the scripted fake, with no server or key."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = run_inner(
        pytester,
        LLM_WORKFLOW_TEST.replace("fake_anthropic", "fake_openai")
        .replace('"claude-test"', '"local:llama3.1"')
        .format(
            script='fake_openai.reply_text("Hello from a local model")',
            check='assert result.output == "Hello from a local model"',
        ),
    )
    result.assert_outcomes(passed=1)
