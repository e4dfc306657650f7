"""A project author's commands: `orchestr8 init`, `orchestr8 create agent`, `orchestr8 test`.

`init` and `create agent` run the scaffolding of `_scaffold` and say what they wrote and what to
do next; `test` runs the project's tests with pytest in trio mode, with the orchestr8 plugin.
The command line imports this module to register the commands, so it imports only asyncclick and
light stdlib modules.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncclick as click

from ._scaffold import (
    ENTRY_POINT_GROUP,
    ScaffoldError,
    create_agent,
    find_project_root,
    init_project,
)

__all__ = [
    "create_agent_command",
    "create_group",
    "init_command",
    "pytest_arguments",
    "tests_command",
]

_EXIT_INVALID = 1  # the CLI's exit code for usage and configuration errors (docs/cli.md)


def pytest_arguments(arguments: Sequence[str]) -> list[str]:
    """The pytest command line `orchestr8 test` runs: trio mode and the orchestr8 plugin.

    Both plugins are loaded by module, so they are there even when plugin autoloading is off;
    blocking their entry-point names keeps pytest from loading them a second time (which it
    refuses) when they are installed.
    """
    return [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:orchestr8",
        "-p",
        "orchestr8.testing._plugin",
        "-p",
        "no:trio",
        "-p",
        "pytest_trio.plugin",
        "-o",
        "trio_mode=true",
        *arguments,
    ]


def _fail(error: ScaffoldError) -> int:
    from ._support import report_error

    report_error(f"error: {error}")
    return _EXIT_INVALID


@click.command("init")
@click.argument("directory", default=".", metavar="[DIR]")
@click.option(
    "--name", default=None, help="The project's distribution name.  [default: DIR's name]"
)
@click.option(
    "--package",
    default=None,
    help="The Python package to create.  [default: the name as an identifier]",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist already.")
def init_command(directory: str, name: str | None, package: str | None, force: bool) -> int:
    """Create a project with an example agent, a workflow and tests.

    DIR (default: the current directory) is created if needed. The workflow runs at once with
    `orchestr8 run workflows/hello.json` from DIR, and the tests with `orchestr8 test`. Existing
    files are never overwritten without --force: they are listed and the exit code is 1.
    """
    import shlex

    try:
        project = init_project(Path(directory), name=name, package=package, force=force)
    except ScaffoldError as error:
        return _fail(error)
    click.echo(f"created project {project.name!r} (package {project.package}) in {project.root}")
    for path in project.written:
        click.echo(f"  {path}{'  (overwritten)' if path in project.overwritten else ''}")
    steps = [] if project.root == Path.cwd().resolve() else [f"cd {shlex.quote(directory)}"]
    steps += [
        "orchestr8 run workflows/hello.json --input name=Ada",
        "orchestr8 test",
        "orchestr8 create agent summarise",
    ]
    click.echo("next:\n" + "".join(f"  {step}\n" for step in steps), nl=False)
    return 0


@click.group("create")
def create_group() -> None:
    """Add an agent to the current project, from a template."""


@create_group.command("agent")
@click.argument("name")
@click.option(
    "--package",
    default=None,
    help="The package to put it in.  [default: the one the project's agents are in]",
)
def create_agent_command(name: str, package: str | None) -> int:
    """Add the agent NAME (snake_case): a module with its class, and a test.

    `create agent web_search` writes PACKAGE/web_search.py with the class WebSearch and
    tests/test_web_search.py, and registers `web_search` in pyproject.toml's
    [project.entry-points."orchestr8.agents"] when the file can be edited safely (else it prints
    the line to add). Existing files are never overwritten.
    """
    try:
        agent = create_agent(Path.cwd(), name, package=package)
    except ScaffoldError as error:
        return _fail(error)
    click.echo(f"created agent {agent.class_name} ({agent.name})")
    for path in agent.written:
        click.echo(f"  {path}")
    entry = f'{agent.name} = "{agent.import_path}"'
    if agent.registered:
        click.echo(f"registered in pyproject.toml: {entry}")
    else:
        click.echo(
            f"add it to pyproject.toml yourself (the file could not be edited safely):\n"
            f'  [project.entry-points."{ENTRY_POINT_GROUP}"]\n  {entry}'
        )
    click.echo(
        f'workflows can name it "{agent.import_path}" now,\n'
        f'and "{agent.name}" once the project is installed (pip install -e .)'
    )
    return 0


@click.command("test", context_settings={"ignore_unknown_options": True})
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED, metavar="[PYTEST ARGS]...")
def tests_command(pytest_args: Sequence[str]) -> int:
    """Run the project's tests with pytest in trio mode.

    Arguments are passed to pytest (`orchestr8 test -x -k greeter`; `orchestr8 test -- --help`
    for pytest's own help). The project's root (the nearest directory with a pyproject.toml) is on
    the import path, so tests import its package before it is installed. The exit code is
    pytest's: 0 all passed, 1 some failed, 2 interrupted, 5 no tests collected.
    """
    import importlib.util

    missing = [name for name in ("pytest", "pytest_trio") if importlib.util.find_spec(name) is None]
    if missing:
        return _fail(
            ScaffoldError(
                "orchestr8 test runs pytest with pytest-trio, which are not installed here: "
                "pip install pytest pytest-trio"
            )
        )
    environment = dict(os.environ)
    root = find_project_root(Path.cwd())
    if root is not None:
        paths = [str(root), *filter(None, [environment.get("PYTHONPATH")])]
        environment["PYTHONPATH"] = os.pathsep.join(paths)
    return _call(pytest_arguments(pytest_args), environment)


def _call(command: list[str], environment: dict[str, str]) -> int:
    """Run `command` to its end and return its exit code, leaving Ctrl-C to it.

    Ctrl-C reaches the child too (same process group); pytest then reports what ran and exits,
    so this process waits for it rather than dying first. A no-op handler is used rather than
    ignoring the signal, because an ignored signal would stay ignored in the child.
    """
    import signal
    import subprocess
    import threading

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _ignore) if in_main_thread else None
    try:
        code = subprocess.call(command, env=environment)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return code if code >= 0 else 128 - code


def _ignore(signum: int, frame: object) -> None:
    """A SIGINT handler that does nothing, while the child decides how to stop."""
