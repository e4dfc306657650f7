"""The files `orchestr8 init` and `orchestr8 create agent` write, as templates.

Placeholders are upper-case words between double underscores (`__PACKAGE__`), replaced by
`render`; the files themselves are full of braces and `${...}` references, so neither
`str.format` nor `string.Template` would fit.
"""

from __future__ import annotations

__all__ = ["AGENT_FILES", "PROJECT_FILES", "render"]


def render(template: str, **values: str) -> str:
    """Replace each `__KEY__` in `template` by `values[key]` (keys given in lower case)."""
    for key, value in values.items():
        template = template.replace(f"__{key.upper()}__", value)
    return template


PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "__PROJECT__"
version = "0.1.0"
description = "Agents for orchestr8."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["orchestr8>=__ORCHESTR8_VERSION__"]

[project.optional-dependencies]
dev = ["pytest>=8.3", "pytest-trio>=0.8"]

# Installed, the project's agents can be named by these ids in workflows ("agent": "greeter").
[project.entry-points."orchestr8.agents"]
greeter = "__PACKAGE__.agents:Greeter"

[tool.hatch.build.targets.wheel]
packages = ["__PACKAGE__"]

[tool.pytest.ini_options]
trio_mode = true
testpaths = ["tests"]
pythonpath = ["."]
"""

README = """\
# __PROJECT__

Agents for orchestr8, made with `orchestr8 init`.

```
__PACKAGE__/agents.py      the Greeter agent
workflows/hello.json  a workflow that runs it
tests/                its tests, using orchestr8.testing
```

Run the workflow and the tests (from this directory, nothing to install first):

```console
orchestr8 run workflows/hello.json --input name=Ada
orchestr8 test
```

Add an agent (a module in `__PACKAGE__/`, its test in `tests/`, its entry point in
`pyproject.toml`):

```console
orchestr8 create agent summarise
```

Workflows name agents of this project by import path, `"agent": "__PACKAGE__.agents:Greeter"`,
which works from this directory. Once the project is installed (`pip install -e '.[dev]'`), its
entry points also make the short ids work anywhere: `"agent": "greeter"`.
"""

GITIGNORE = """\
__pycache__/
*.egg-info/
.venv/
.pytest_cache/
.orchestr8/
"""

PACKAGE_INIT = '''\
"""__PROJECT__: agents for orchestr8."""
'''

AGENTS = '''\
"""The project's agents: each is built from its step's config, then run per attempt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orchestr8


class Greeter(orchestr8.Agent):
    """Greets someone by name: `{"name": "Ada"}` gives `{"greeting": "Hello, Ada!"}`.

    Config: `greeting` (default "Hello"), the word to greet with.
    """

    config_keys = frozenset({"greeting"})

    def __init__(self, config: Mapping[str, Any]) -> None:
        """Check the config once, so a bad one is reported before the workflow runs."""
        super().__init__(config)
        greeting = self.config.get("greeting", "Hello")
        if not isinstance(greeting, str) or not greeting:
            message = "greeting must be a non-empty string"
            raise orchestr8.AgentConfigurationError(message)
        self.greeting = greeting

    async def run(self, input: Any, context: orchestr8.AgentContext) -> Any:
        """Return the greeting for `input["name"]`."""
        name = input.get("name") if isinstance(input, dict) else None
        if not isinstance(name, str) or not name:
            # No retry can fix a bad input: fail the step at once.
            raise orchestr8.NonRetryableError('the input must be {"name": "<a name>"}')
        context.progress({"greeting": name})
        return {"greeting": f"{self.greeting}, {name}!"}
'''

HELLO_WORKFLOW = """\
{
  "schema_version": "1.1",
  "name": "hello",
  "description": "Greet someone with the project's Greeter agent.",
  "inputs": {
    "type": "object",
    "properties": {"name": {"type": "string", "default": "world"}}
  },
  "steps": [
    {
      "id": "greet",
      "agent": {"id": "__PACKAGE__.agents:Greeter", "config": {"greeting": "Hello"}},
      "input": {"name": "${inputs.name}"},
      "policy": {"timeout": 10.0, "retry": {"max_attempts": 2}}
    }
  ],
  "output": {"greeting": "${steps.greet.output.greeting}"}
}
"""

AGENTS_TEST = '''\
"""Tests of the Greeter agent and the hello workflow, with orchestr8's test harness."""

from __future__ import annotations

from pathlib import Path

import orchestr8
import pytest
from orchestr8.testing import run_agent, run_workflow_for_test

from __PACKAGE__.agents import Greeter

HELLO = Path(__file__).parent.parent / "workflows" / "hello.json"


async def test_greeter_greets_by_name() -> None:
    """The agent returns the greeting and reports its progress."""
    run = await run_agent(Greeter, {"name": "Ada"})
    assert run.output == {"greeting": "Hello, Ada!"}
    assert run.progress == [{"greeting": "Ada"}]


async def test_greeter_uses_the_configured_greeting() -> None:
    """The `greeting` config replaces "Hello"."""
    run = await run_agent(Greeter, {"name": "Ada"}, config={"greeting": "Hi"})
    assert run.output == {"greeting": "Hi, Ada!"}


async def test_greeter_refuses_an_input_without_a_name() -> None:
    """A missing name fails at once, without retries."""
    with pytest.raises(orchestr8.NonRetryableError):
        await run_agent(Greeter, {})


def test_greeter_rejects_an_unknown_config_key() -> None:
    """A misspelt config key is reported when the agent is built."""
    with pytest.raises(orchestr8.AgentConfigurationError, match="greting"):
        Greeter({"greting": "Hi"})


async def test_hello_workflow_greets_the_input_name() -> None:
    """The workflow runs the agent and records every step in its journal."""
    result, events = await run_workflow_for_test(HELLO, {"name": "Ada"})
    assert result.succeeded
    assert result.output == {"greeting": "Hello, Ada!"}
    assert events[0].type == "execution.started"
    assert events[-1].type == "execution.succeeded"
'''

AGENT = '''\
"""The __CLASS__ agent."""

from __future__ import annotations

from typing import Any

import orchestr8


class __CLASS__(orchestr8.Agent):
    """Say in one sentence what __CLASS__ does.

    Describe its input, output and config here. It accepts no config yet: list the
    keys it understands in `config_keys` and check their values in `__init__`,
    raising `orchestr8.AgentConfigurationError`.
    """

    config_keys = frozenset()

    async def run(self, input: Any, context: orchestr8.AgentContext) -> Any:
        """Do the work for one attempt and return a JSON-serialisable result."""
        context.logger.info("__NAME__ got %r", input)
        return {"received": input}
'''

AGENT_TEST = '''\
"""Tests of the __CLASS__ agent, with orchestr8's test harness."""

from __future__ import annotations

import orchestr8
import pytest
from orchestr8.testing import run_agent

from __PACKAGE__.__NAME__ import __CLASS__


async def test___NAME___returns_what_it_received() -> None:
    """The agent's output for a simple input."""
    run = await run_agent(__CLASS__, {"text": "hello"})
    assert run.output == {"received": {"text": "hello"}}


def test___NAME___rejects_an_unknown_config_key() -> None:
    """Config keys it does not know are reported when the agent is built."""
    with pytest.raises(orchestr8.AgentConfigurationError):
        __CLASS__({"no_such_key": 1})
'''

PROJECT_FILES: dict[str, str] = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    ".gitignore": GITIGNORE,
    "__PACKAGE__/__init__.py": PACKAGE_INIT,
    "__PACKAGE__/agents.py": AGENTS,
    "workflows/hello.json": HELLO_WORKFLOW,
    "tests/test_agents.py": AGENTS_TEST,
}
"""What `orchestr8 init` writes: relative path template → content template."""

AGENT_FILES: dict[str, str] = {
    "__PACKAGE_DIR__/__NAME__.py": AGENT,
    "tests/test___NAME__.py": AGENT_TEST,
}
"""What `orchestr8 create agent` writes, relative to the project's root."""
