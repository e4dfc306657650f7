"""Commands from other packages: `orchestr8` offers what the `orchestr8.commands` group names."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = textwrap.dedent(
    """
    import asyncclick as click

    @click.command("hello")
    def hello() -> int:
        '''Say hello from a plugin.'''
        click.echo("hello from a plugin")
        return 0

    @click.command("run")
    def run() -> int:
        '''Try to replace the core `run` command.'''
        click.echo("hijacked")
        return 0

    not_a_command = 42
    """
)

ENTRY_POINTS = textwrap.dedent(
    """
    [orchestr8.commands]
    hello = greeting_plugin:hello
    run = greeting_plugin:run
    broken = no_such_module_anywhere:command
    number = greeting_plugin:not_a_command
    """
)


def _install_plugin(directory: Path) -> None:
    """Put a module and real distribution metadata with entry points on a path entry."""
    (directory / "greeting_plugin.py").write_text(PLUGIN)
    info = directory / "greeting_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: greeting-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def _orchestr8(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    inherited = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    env.update(PYTHONPATH=os.pathsep.join([*inherited, str(directory)]), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "orchestr8", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory,
        timeout=60,
    )


def test_an_installed_command_is_offered_and_runs(tmp_path: Path) -> None:
    """A package's `orchestr8.commands` entry point becomes a command of `orchestr8`."""
    _install_plugin(tmp_path)
    helped = _orchestr8(tmp_path, "--help")
    assert helped.returncode == 0
    assert "  hello " in helped.stdout
    assert "  agent " in helped.stdout
    done = _orchestr8(tmp_path, "hello")
    assert (done.returncode, done.stdout) == (0, "hello from a plugin\n")


def test_a_broken_command_is_a_warning_and_cannot_replace_a_core_one(tmp_path: Path) -> None:
    """A command that fails to load, or is none, is named on stderr; `run` stays the core's."""
    _install_plugin(tmp_path)
    helped = _orchestr8(tmp_path, "--help")
    assert helped.returncode == 0
    assert (
        "warning: cannot load command 'broken' (no_such_module_anywhere:command)" in helped.stderr
    )
    assert "warning: command 'number' (greeting_plugin:not_a_command) is not a" in helped.stderr
    done = _orchestr8(tmp_path, "run", "--help")
    assert done.returncode == 0
    assert "hijacked" not in done.stdout
    assert "Run a workflow file" in done.stdout


def test_a_core_command_does_not_read_the_installed_commands(tmp_path: Path) -> None:
    """`orchestr8 run` never scans entry points: a broken plugin is not even noticed."""
    _install_plugin(tmp_path)
    done = _orchestr8(tmp_path, "run", "--help")
    assert done.returncode == 0
    assert "warning" not in done.stderr
