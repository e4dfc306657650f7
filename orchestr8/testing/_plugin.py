"""The orchestr8 pytest plugin: fixtures for testing agents and workflows.

Installed with orchestr8 as the `pytest11` entry point `orchestr8`, so every pytest run in the
environment has these fixtures; `orchestr8 test` also loads it explicitly. Loading it imports
nothing but pytest: each fixture imports what it needs when a test asks for it. The async fixtures
need pytest-trio (`trio_mode = true`, or tests marked `@pytest.mark.trio`). See `docs/testing.md`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .._execution._runtime import Runtime
    from ._anthropic import FakeAnthropic
    from ._harness import AgentRun, CapturedEvents, WorkflowRun
    from ._openai import FakeOpenAI


@pytest.fixture
def orchestr8_agents() -> Mapping[str, Any]:
    """Agents by id for the other fixtures (empty); override it to supply a test's own agents."""
    return {}


@pytest.fixture
async def orchestr8_runtime(orchestr8_agents: Mapping[str, Any]) -> AsyncIterator[Runtime]:
    """An open runtime on an in-memory journal, with `orchestr8_agents`, seeded jitter."""
    from .._execution._runtime import open_runtime

    async with open_runtime(agents=orchestr8_agents, random_source=random.Random(0)) as runtime:
        yield runtime


@pytest.fixture
async def captured_events(orchestr8_runtime: Runtime) -> AsyncIterator[CapturedEvents]:
    """Everything `orchestr8_runtime` publishes during the test, as `capture_events` records it."""
    from ._harness import capture_events

    async with capture_events(orchestr8_runtime) as captured:
        yield captured


@pytest.fixture
def run_agent(orchestr8_agents: Mapping[str, Any]) -> Callable[..., Awaitable[AgentRun]]:
    """`orchestr8.testing.run_agent`, resolving agent ids in `orchestr8_agents` first."""
    from ._harness import run_agent as helper

    return functools.partial(helper, agents=orchestr8_agents)


@pytest.fixture
def run_workflow(orchestr8_agents: Mapping[str, Any]) -> Callable[..., Awaitable[WorkflowRun]]:
    """`orchestr8.testing.run_workflow_for_test`, with `orchestr8_agents` as the agents."""
    from ._harness import run_workflow_for_test

    return functools.partial(run_workflow_for_test, agents=orchestr8_agents)


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    """A `FakeAnthropic` that `llm` agents in the test call; checked when the test ends.

    Script its replies before the agent calls it. At teardown the test fails if a request was not
    scripted or a scripted reply was never requested.
    """
    from ._anthropic import FakeAnthropic, use_fake_anthropic

    fake = FakeAnthropic()
    with use_fake_anthropic(fake):
        yield fake
    fake.assert_all_used()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A `FakeOpenAI` that OpenAI-kind providers in the test call; checked when the test ends.

    Script its replies before the provider calls it. At teardown the test fails if a request was
    not scripted or a scripted reply was never requested.
    """
    from ._openai import FakeOpenAI, use_fake_openai

    fake = FakeOpenAI()
    with use_fake_openai(fake):
        yield fake
    fake.assert_all_used()
