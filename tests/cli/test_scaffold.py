"""Scaffolding: `orchestr8 init`, `orchestr8 create agent` and `orchestr8 test`."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import attrs
import pytest

from orchestr8._cli._project_commands import pytest_arguments
from orchestr8._cli._scaffold import add_entry_point, class_name
from orchestr8._console import main
from orchestr8._workflow._codec import load_workflow

PROJECT_FILES = [
    "pyproject.toml",
    "README.md",
    ".gitignore",
    "demo_agents/__init__.py",
    "demo_agents/agents.py",
    "workflows/hello.json",
    "tests/test_agents.py",
]


@attrs.frozen
class Outcome:
    code: int
    stdout: str
    stderr: str


def call(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """Run the command line in this process, as the console script does."""
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["orchestr8", *args])
    with redirect_stdout(stdout), redirect_stderr(stderr), pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    assert isinstance(code, int)
    return Outcome(code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project made by `orchestr8 init demo-agents`."""
    made = call("init", "demo-agents", cwd=tmp_path, monkeypatch=monkeypatch)
    assert made.code == 0, made.stderr
    return tmp_path / "demo-agents"


def console_script() -> list[str]:
    """The installed `orchestr8` command, as a new user would type it."""
    script = Path(sys.executable).with_name("orchestr8")
    if script.exists():
        return [str(script)]
    found = shutil.which("orchestr8")
    return [found] if found else [sys.executable, "-m", "orchestr8"]


def shell(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the console script with a new user's environment: no PYTHONPATH, no journal set."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "ORCHESTR8_JOURNAL")
    }
    return subprocess.run(
        [*console_script(), *args],
        cwd=cwd,
        env={**env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_new_user_inits_adds_an_agent_tests_and_runs(tmp_path: Path) -> None:
    """init → create agent → test → run works at once, with no install step, as documented."""
    made = shell("init", "demo-agents", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "demo-agents"
    added = shell("create", "agent", "web_search", cwd=root)
    assert added.returncode == 0, added.stderr
    tested = shell("test", "-q", cwd=root)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "7 passed" in tested.stdout
    ran = shell("run", "workflows/hello.json", "--input", "name=Ada", cwd=root)
    assert ran.returncode == 0, ran.stderr
    assert '"greeting": "Hello, Ada!"' in ran.stdout
    (root / "tests" / "test_broken.py").write_text("def test_broken():\n    assert False\n")
    failing = shell("test", "-q", cwd=root)
    assert failing.returncode == 1, failing.stdout
    assert "1 failed, 7 passed" in failing.stdout


def test_init_writes_the_project_and_says_what_next(project: Path) -> None:
    """The files are there, the pyproject registers the agent, the workflow is valid."""
    written = sorted(
        path.relative_to(project).as_posix() for path in project.rglob("*") if path.is_file()
    )
    assert written == sorted(PROJECT_FILES)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "demo-agents"
    assert pyproject["project"]["entry-points"]["orchestr8.agents"] == {
        "greeter": "demo_agents.agents:Greeter",
    }
    assert pyproject["project"]["optional-dependencies"]["dev"][1].startswith("pytest-trio")
    hello = load_workflow(project / "workflows" / "hello.json")
    assert hello.steps[0].agent is not None
    assert hello.steps[0].agent.id == "demo_agents.agents:Greeter"


def test_init_output_lists_the_files_and_next_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stdout names every file written and the commands to run next."""
    made = call("init", "demo-agents", cwd=tmp_path, monkeypatch=monkeypatch)
    assert made.code == 0
    for path in PROJECT_FILES:
        assert f"  {path}\n" in made.stdout
    assert "  cd demo-agents\n  orchestr8 run workflows/hello.json" in made.stdout


def test_init_without_dir_uses_the_current_directory_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`orchestr8 init` in `my.agents/` makes the project `my.agents`, package `my_agents`."""
    here = tmp_path / "my.agents"
    here.mkdir()
    made = call("init", cwd=here, monkeypatch=monkeypatch)
    assert made.code == 0, made.stderr
    assert (here / "my_agents" / "agents.py").is_file()
    assert "cd " not in made.stdout


def test_init_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Existing files are listed, exit code 1, and no file at all is written."""
    root = tmp_path / "demo-agents"
    (root / "tests").mkdir(parents=True)
    (root / "README.md").write_text("mine")
    (root / "tests" / "test_agents.py").write_text("mine too")
    refused = call("init", str(root), cwd=tmp_path, monkeypatch=monkeypatch)
    assert refused.code == 1
    assert "use --force" in refused.stderr
    assert "\n  README.md\n  tests/test_agents.py" in refused.stderr
    assert (root / "README.md").read_text() == "mine"
    assert not (root / "pyproject.toml").exists()


def test_init_force_overwrites_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --force the existing files are replaced and marked in the listing."""
    root = tmp_path / "demo-agents"
    root.mkdir()
    (root / "README.md").write_text("mine")
    forced = call("init", str(root), "--force", cwd=tmp_path, monkeypatch=monkeypatch)
    assert forced.code == 0, forced.stderr
    assert "  README.md  (overwritten)" in forced.stdout
    assert (root / "README.md").read_text().startswith("# demo-agents")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["2048"], "'2048' is not a valid package name"),
        (["bad name"], "'bad name' is not a valid project name"),
        (["ok", "--name", "-dash"], "'-dash' is not a valid project name"),
        (["ok", "--package", "class"], "'class' is not a valid package name"),
        (["ok", "--package", "Agents"], "'Agents' is not a valid package name"),
        (["json"], "would shadow the module"),
        (["ok", "--package", "orchestr8"], "would shadow the module"),
        (["tests"], "would shadow the module"),
    ],
)
def test_init_validates_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    """Project and package names are checked before anything is written."""
    refused = call("init", *args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert refused.code == 1
    assert message in refused.stderr
    assert not any(tmp_path.rglob("pyproject.toml"))


def test_init_refuses_a_file_as_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DIR must be a directory or not exist yet."""
    (tmp_path / "taken").write_text("")
    refused = call("init", "taken", cwd=tmp_path, monkeypatch=monkeypatch)
    assert refused.code == 1
    assert "is not a directory" in refused.stderr


def test_create_agent_adds_the_module_test_and_entry_point(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The class is CamelCase, the files are new, the pyproject registers the id."""
    added = call("create", "agent", "web_search", cwd=project / "tests", monkeypatch=monkeypatch)
    assert added.code == 0, added.stderr
    module = (project / "demo_agents" / "web_search.py").read_text()
    assert "class WebSearch(orchestr8.Agent):" in module
    assert (
        "from demo_agents.web_search import WebSearch"
        in (project / "tests/test_web_search.py").read_text()
    )
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["orchestr8.agents"] == {
        "greeter": "demo_agents.agents:Greeter",
        "web_search": "demo_agents.web_search:WebSearch",
    }
    assert 'registered in pyproject.toml: web_search = "demo_agents.web_search:WebSearch"' in (
        added.stdout
    )


def test_create_agent_refuses_to_overwrite(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second `create agent` with the same name lists the files and changes nothing."""
    assert call("create", "agent", "summarise", cwd=project, monkeypatch=monkeypatch).code == 0
    module = project / "demo_agents" / "summarise.py"
    module.write_text("edited")
    pyproject = (project / "pyproject.toml").read_text()
    again = call("create", "agent", "summarise", cwd=project, monkeypatch=monkeypatch)
    assert again.code == 1
    assert "demo_agents/summarise.py\n  tests/test_summarise.py" in again.stderr
    assert module.read_text() == "edited"
    assert (project / "pyproject.toml").read_text() == pyproject


def test_create_agent_refusing_existing_files_advises_no_option_it_lacks(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second `create agent NAME` lists the files it will not overwrite; no `--force` advice."""
    assert call("create", "agent", "web_search", cwd=project, monkeypatch=monkeypatch).code == 0
    refused = call("create", "agent", "web_search", cwd=project, monkeypatch=monkeypatch)
    assert refused.code == 1
    assert "refusing to overwrite" in refused.stderr
    assert "tests/test_web_search.py" in refused.stderr
    assert "--force" not in refused.stderr
    assert "choose another agent name, or move them out of the way" in refused.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("WebSearch", "not a valid agent name"),
        ("web-search", "not a valid agent name"),
        ("9lives", "not a valid agent name"),
        ("web__search", "not a valid agent name"),
        ("_private", "not a valid agent name"),
        ("class", "not a valid agent name"),
        ("echo", "'echo' is a built-in agent"),
        ("agents", "refusing to overwrite"),
    ],
)
def test_create_agent_validates_the_name(
    project: Path, monkeypatch: pytest.MonkeyPatch, name: str, message: str
) -> None:
    """Names must be snake_case identifiers, not built-ins, not taken."""
    refused = call("create", "agent", name, cwd=project, monkeypatch=monkeypatch)
    assert refused.code == 1
    assert message in refused.stderr


def test_create_agent_outside_a_project_says_to_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a pyproject.toml here or above there is nothing to add to."""
    refused = call("create", "agent", "web_search", cwd=tmp_path, monkeypatch=monkeypatch)
    assert refused.code == 1
    assert "orchestr8 init" in refused.stderr


def test_create_agent_prints_the_entry_point_when_the_pyproject_is_not_safe_to_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inline entry-point table is left alone; the line to add is printed instead."""
    text = (
        '[project]\nname = "inline"\n'
        'entry-points = {"orchestr8.agents" = {greeter = "inline.agents:Greeter"}}\n'
    )
    (tmp_path / "pyproject.toml").write_text(text)
    (tmp_path / "inline").mkdir()
    (tmp_path / "inline" / "__init__.py").write_text("")
    added = call("create", "agent", "web_search", cwd=tmp_path, monkeypatch=monkeypatch)
    assert added.code == 0, added.stderr
    assert "add it to pyproject.toml yourself" in added.stdout
    assert 'web_search = "inline.web_search:WebSearch"' in added.stdout
    assert (tmp_path / "pyproject.toml").read_text() == text
    assert (tmp_path / "inline" / "web_search.py").is_file()


def test_create_agent_finds_a_src_layout_package_and_adds_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no agents registered yet, the package is the project's name, under src/ too."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "My-Tools"\n')
    (tmp_path / "src" / "my_tools").mkdir(parents=True)
    (tmp_path / "src" / "my_tools" / "__init__.py").write_text("")
    added = call("create", "agent", "fetch", cwd=tmp_path, monkeypatch=monkeypatch)
    assert added.code == 0, added.stderr
    assert (tmp_path / "src" / "my_tools" / "fetch.py").is_file()
    pyproject = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["orchestr8.agents"] == {
        "fetch": "my_tools.fetch:Fetch",
    }


def test_create_agent_refuses_an_id_registered_elsewhere(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry point of that name pointing somewhere else is not silently replaced."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("greeter =", "fetch ="))
    refused = call("create", "agent", "fetch", cwd=project, monkeypatch=monkeypatch)
    assert refused.code == 1
    assert "already registers the agent 'fetch' as 'demo_agents.agents:Greeter'" in refused.stderr


def test_create_agent_needs_an_existing_package_when_given(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--package must name a package directory of the project."""
    refused = call(
        "create", "agent", "fetch", "--package", "nope", cwd=project, monkeypatch=monkeypatch
    )
    assert refused.code == 1
    assert "no such package" in refused.stderr


def test_add_entry_point_keeps_comments_and_the_tables_after() -> None:
    """The line goes after the group's last entry; everything else stays byte for byte."""
    text = (
        '[project]\nname = "x"\n\n[project.entry-points."orchestr8.agents"]  # ours\n'
        'a = "x.a:A"\n# a comment\n\n[tool.other]\nkey = 1\n'
    )
    assert add_entry_point(text, "b", "x.b:B") == (
        '[project]\nname = "x"\n\n[project.entry-points."orchestr8.agents"]  # ours\n'
        'a = "x.a:A"\n# a comment\nb = "x.b:B"\n\n[tool.other]\nkey = 1\n'
    )


def test_add_entry_point_keeps_crlf_and_adds_a_missing_table() -> None:
    """Windows line endings stay; a project without the group gets it at the end."""
    edited = add_entry_point('[project]\r\nname = "x"\r\n', "b", "x.b:B")
    assert edited == (
        '[project]\r\nname = "x"\r\n\r\n[project.entry-points."orchestr8.agents"]\r\n'
        'b = "x.b:B"\r\n'
    )


def test_add_entry_point_refuses_what_it_cannot_edit_safely() -> None:
    """Text that is not TOML, or a group written inline, gives None."""
    assert add_entry_point("[project\n", "b", "x.b:B") is None
    assert (
        add_entry_point(
            '[project.entry-points]\n"orchestr8.agents" = {a = "x.a:A"}\n', "b", "x.b:B"
        )
        is None
    )


def test_class_name_is_camel_case() -> None:
    """snake_case agent names become CamelCase class names."""
    assert class_name("web_search") == "WebSearch"
    assert class_name("llm2_caller") == "Llm2Caller"
    assert class_name("x") == "X"


def test_test_command_runs_pytest_in_trio_mode_with_the_plugin() -> None:
    """`orchestr8 test` runs this interpreter's pytest with both plugins, then the user's args."""
    command = pytest_arguments(["-x", "-k", "greeter"])
    assert command[:3] == [sys.executable, "-m", "pytest"]
    assert command[-5:] == ["-o", "trio_mode=true", "-x", "-k", "greeter"]
    assert "orchestr8.testing._plugin" in command
    assert "pytest_trio.plugin" in command


def test_help_lists_the_scaffolding_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`orchestr8 --help` shows init, create and test."""
    helped = call("--help", cwd=tmp_path, monkeypatch=monkeypatch)
    assert helped.code == 0
    for command in ("init", "create", "test"):
        assert f"\n  {command} " in helped.stdout


def test_test_command_says_what_to_install_without_pytest_trio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pytest-trio, `orchestr8 test` explains what to install and exits 1."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "pytest_trio" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    refused = call("test", cwd=tmp_path, monkeypatch=monkeypatch)
    assert refused.code == 1
    assert "pip install pytest pytest-trio" in refused.stderr
