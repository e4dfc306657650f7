"""Why an agent id does not resolve: import failures and their cause, close ids, uninstalled ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import orchestr8
from orchestr8._agents._registry import ENTRY_POINT_GROUP, AgentRegistry
from orchestr8._errors import (
    AgentConfigurationError,
    UnknownAgentError,
    WorkflowValidationError,
)
from orchestr8._execution._runtime import open_runtime
from orchestr8._web._app import create_app
from orchestr8._workflow._codec import load_workflow

REPOSITORY = Path(orchestr8.__file__).resolve().parent.parent


class Modules:
    """Writes uniquely named modules (and dist-info entry points) into a directory on sys.path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names: list[str] = []

    def write(self, source: str) -> str:
        name = f"o8_registry_{uuid.uuid4().hex}"
        (self.directory / f"{name}.py").write_text(source)
        self.names.append(name)
        return name

    def install(self, name: str, target: str) -> None:
        dist_info = self.directory / f"o8_registry_plugin_{uuid.uuid4().hex[:8]}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_info.name.split('-')[0]}\nVersion: 1.0\n"
        )
        (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {target}\n")


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Modules]:
    monkeypatch.syspath_prepend(str(tmp_path))
    written = Modules(tmp_path)
    yield written
    for name in written.names:
        sys.modules.pop(name, None)


def failure(agent_id: str, registry: AgentRegistry | None = None) -> str:
    """The message of the UnknownAgentError that resolving `agent_id` raises."""
    with pytest.raises(UnknownAgentError) as caught:
        (registry or AgentRegistry()).resolve(agent_id)
    return str(caught.value)


# Import paths whose module fails


def test_syntax_error_names_type_message_file_and_line(modules: Modules) -> None:
    """A module with a SyntaxError is reported as such, with the module's own file and line."""
    name = modules.write("x = 1\ndef broken(:\n")
    message = failure(f"{name}:Agent")
    assert message.startswith(f"agent '{name}:Agent' could not be loaded: ")
    assert "SyntaxError: invalid syntax" in message
    assert f"({modules.directory / name}.py:2)" in message
    assert "unknown agent" not in message


def test_module_raising_at_import_names_where(modules: Modules) -> None:
    """A module raising while imported is reported with the exception, its message and file:line."""
    name = modules.write("import os\n\nraise RuntimeError('no config file')\n")
    message = failure(f"{name}:Agent")
    assert (
        f"importing module '{name}' raised RuntimeError: no config file "
        f"({modules.directory / name}.py:3)"
    ) in message


def test_system_exit_at_import_is_an_unknown_agent_error(modules: Modules) -> None:
    """A module calling sys.exit(3) while imported cannot end the process: it is a load failure."""
    name = modules.write("import sys\nsys.exit(3)\n")
    message = failure(f"{name}:Agent")
    assert f"raised SystemExit: 3 ({modules.directory / name}.py:2)" in message


def test_the_python_agent_reports_its_callable_exiting_at_import(modules: Modules) -> None:
    """The `python` built-in imports through the same path: sys.exit there is a config error."""
    name = modules.write("import sys\nsys.exit(3)\n")
    with pytest.raises(AgentConfigurationError, match=r"raised SystemExit: 3 \(.*:2\)"):
        AgentRegistry().create("python", {"callable": f"{name}:run"})


def test_keyboard_interrupt_raised_at_import_is_a_load_failure(modules: Modules) -> None:
    """A module raising KeyboardInterrupt itself (no signal came) is reported like any failure."""
    name = modules.write("import os\nraise KeyboardInterrupt\n")
    message = failure(f"{name}:Agent")
    assert f"raised KeyboardInterrupt ({modules.directory / name}.py:2)" in message


def test_a_real_sigint_during_an_import_still_interrupts(modules: Modules) -> None:
    """The user's Ctrl-C arriving while a module is imported (slowly) goes on as an interrupt."""
    name = modules.write(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(60)\n"
    )
    with pytest.raises(KeyboardInterrupt):
        AgentRegistry().resolve(f"{name}:Agent")


def test_the_sigint_handler_is_restored_after_an_import(modules: Modules) -> None:
    """Watching for Ctrl-C during an import leaves the process's SIGINT handler as it was."""
    before = signal.getsignal(signal.SIGINT)
    name = modules.write("raise KeyboardInterrupt\n")
    failure(f"{name}:Agent")
    assert signal.getsignal(signal.SIGINT) is before


def test_missing_dependency_is_not_a_missing_agent_module(modules: Modules) -> None:
    """A module importing something absent is a load failure naming the absent module."""
    name = modules.write("import o8_dependency_that_is_not_there\n")
    message = failure(f"{name}:Agent")
    assert "could not be loaded" in message
    assert "ModuleNotFoundError: No module named 'o8_dependency_that_is_not_there'" in message


def test_missing_agent_module_is_unknown() -> None:
    """An import path whose module does not exist is an unknown agent naming the module."""
    message = failure("o8_module_that_is_not_there.sub:Agent")
    assert message.startswith("unknown agent 'o8_module_that_is_not_there.sub:Agent'")
    assert "no module named 'o8_module_that_is_not_there'" in message


def test_entry_point_whose_module_exits(modules: Modules) -> None:
    """An installed entry point whose module calls sys.exit names the entry point and the cause."""
    name = modules.write("import sys\nsys.exit('bad install')\n")
    modules.install("exiting", f"{name}:Agent")
    message = failure("exiting")
    assert f"agent 'exiting': entry point exiting = {name}:Agent" in message
    assert "raised SystemExit: bad install" in message


def test_missing_attribute_suggests_the_closest_names(modules: Modules) -> None:
    """A module:Attr whose attribute is misspelt names the module's closest public names."""
    name = modules.write("class WebSearch:\n    pass\n\n\nclass WebFetch:\n    pass\n")
    message = failure(f"{name}:WebSerch")
    assert f"module '{name}' has no attribute 'WebSerch' (did you mean 'WebSearch'" in message


# Unknown ids


def test_unknown_id_suggests_and_lists_every_agent() -> None:
    """An unknown id gets the closest ids and every id that is available, by source."""
    message = failure("ech", AgentRegistry({"mine": lambda config: None}))  # type: ignore[dict-item]
    assert "(did you mean 'echo'?)" in message
    assert "(mine)" in message
    assert "built-ins (echo, fail, python, sleep)" in message


def test_agent_registered_by_the_project_but_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id the project's pyproject.toml registers but not installed says to pip install it."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n'
        f'[project.entry-points."{ENTRY_POINT_GROUP}"]\nweb_search = "demo.web_search:WebSearch"\n'
    )
    (tmp_path / "workflows").mkdir()
    monkeypatch.chdir(tmp_path / "workflows")
    message = failure("web_search")
    assert f"{tmp_path / 'pyproject.toml'} registers it" in message
    assert f"run `pip install -e .` in {tmp_path}" in message
    assert "(did you mean 'web_search'" in failure("web_searcher")


# Where the cause is shown: load_workflow, `orchestr8 validate`, REST


def exiting_workflow(name: str) -> dict[str, Any]:
    return {"schema_version": "1.0", "name": "w", "steps": [{"id": "a", "agent": f"{name}:run"}]}


def test_load_workflow_reports_the_cause_at_the_agent_path(modules: Modules) -> None:
    """load_workflow with the registry's check puts the import failure at the step's agent path."""
    name = modules.write("raise ValueError('bad')\n")
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(exiting_workflow(name), agent_exists=AgentRegistry().check)
    [problem] = caught.value.problems
    assert problem.path == "$.steps[0].agent"
    assert "raised ValueError: bad" in problem.message


def orchestr8_command(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m orchestr8 ARGUMENTS` in `cwd` with this checkout first on the path."""
    environment = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    environment.update(PYTHONPATH=f"{cwd}{os.pathsep}{REPOSITORY}", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "orchestr8", *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_says_to_install_an_agent_create_agent_registered(tmp_path: Path) -> None:
    """After `orchestr8 create agent`, validate names the agent and says `pip install -e .`."""
    assert orchestr8_command("init", "demo-agents", cwd=tmp_path).returncode == 0
    root = tmp_path / "demo-agents"
    assert orchestr8_command("create", "agent", "web_search", cwd=root).returncode == 0
    workflow = root / "workflows" / "search.json"
    workflow.write_text(
        json.dumps(
            {
                "schema_version": "1.0",
                "name": "search",
                "steps": [{"id": "a", "agent": "web_search"}],
            }
        )
    )
    completed = orchestr8_command("validate", str(workflow), cwd=root)
    assert completed.returncode == 1
    assert (
        f"$.steps[0].agent: unknown agent 'web_search': {root / 'pyproject.toml'} registers it in "
        "'orchestr8.agents', but the project is not installed with that entry point yet; run "
        f"`pip install -e .` in {root}"
    ) in completed.stderr


EXITS_AT_IMPORT = {
    "SystemExit: 3": "import sys\nsys.exit(3)\n",
    "KeyboardInterrupt": "import sys\nraise KeyboardInterrupt\n",
}
"""Modules that try to end the process while imported, by what they raise (at line 2)."""


@pytest.mark.parametrize("raised", EXITS_AT_IMPORT)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_reports_a_module_exiting_at_import_and_exits_1(
    tmp_path: Path, command: str, raised: str
) -> None:
    """`validate` and `run` report a module exiting at import as invalid: exit 1, not 3 or 130."""
    (tmp_path / "exits_at_import.py").write_text(EXITS_AT_IMPORT[raised])
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps(exiting_workflow("exits_at_import")))
    arguments = [command, str(workflow)]
    if command == "run":
        arguments += ["--journal", str(tmp_path / "journal.db")]
    completed = orchestr8_command(*arguments, cwd=tmp_path)
    assert completed.returncode == 1, completed.stderr
    assert (
        "$.steps[0].agent: agent 'exits_at_import:run' could not be loaded: importing module "
        f"'exits_at_import' raised {raised} ({tmp_path / 'exits_at_import.py'}:2)"
    ) in completed.stderr


def test_run_reports_a_python_callable_interrupting_at_import(tmp_path: Path) -> None:
    """`run` with the `python` agent whose module raises KeyboardInterrupt: exit 1, named."""
    (tmp_path / "kbimp.py").write_text("raise KeyboardInterrupt\n")
    workflow = tmp_path / "workflow.json"
    step = {"id": "a", "agent": {"id": "python", "config": {"callable": "kbimp:f"}}}
    workflow.write_text(json.dumps({"schema_version": "1.0", "name": "w", "steps": [step]}))
    journal = str(tmp_path / "journal.db")
    completed = orchestr8_command("run", str(workflow), "--journal", journal, cwd=tmp_path)
    assert completed.returncode == 1, completed.stderr
    assert f"raised KeyboardInterrupt ({tmp_path / 'kbimp.py'}:1)" in completed.stderr


def test_validate_is_interrupted_by_a_real_sigint_during_an_import(tmp_path: Path) -> None:
    """A real SIGINT while `validate` imports a (slow) agent module still interrupts: exit 130."""
    (tmp_path / "slow_import.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(60)\n"
    )
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps(exiting_workflow("slow_import")))
    completed = orchestr8_command("validate", str(workflow), cwd=tmp_path)
    assert completed.returncode == 130, completed.stderr
    assert "could not be loaded" not in completed.stderr


@pytest.mark.parametrize("raised", EXITS_AT_IMPORT)
async def test_rest_answers_422_naming_the_import_failure(modules: Modules, raised: str) -> None:
    """POST /workflows/execute with a module exiting at import is a 422 problem naming the cause."""
    name = modules.write(EXITS_AT_IMPORT[raised])
    async with open_runtime() as runtime:
        client = create_app(runtime).test_client()
        response = await client.post(
            "/workflows/execute", json={"workflow": exiting_workflow(name)}
        )
        assert response.status_code == 422
        assert response.mimetype == "application/problem+json"
        document = json.loads(await response.get_data(as_text=True))
    [error] = document["errors"]
    assert error["path"] == "$.workflow.steps[0].agent"
    assert f"raised {raised} (" in error["message"]
