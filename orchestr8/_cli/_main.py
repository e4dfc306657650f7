"""The `orchestr8` command line: asyncclick on trio, with heavy imports deferred to the commands.

`orchestr8 --help` must answer fast, so the command modules import only asyncclick at the top;
each command imports what it needs when it runs. Commands return their exit code (`ExitCode` of
`_shell._process`, see `docs/cli.md`): 0 success, 1 a configuration, validation or usage error, 2 a
step failed, 3 the execution timed out, 130 interrupted. Errors are printed as one clean message,
never as a traceback. Commands of other packages (`orchestr8 agent`, from `actors`) are found
through the `orchestr8.commands` entry-point group, so this package never imports them by name.

This module assembles the command line: the group and its plumbing are in `_group`, `run` and
`resume` in `_run_commands` (driven by `_run`), `validate`, `schema` and `inspect` in
`_inspect_commands`, `compare` in `_compare`, `prune` in `_retention_commands`, `fork` in
`_fork_command`, `eval` in `_eval_command`, `journal migrate` and `journal copy` in
`_journal_commands`; their shared helpers live in `_support`.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence

import asyncclick as click

from ._compare import compare
from ._control_commands import cancel, follow
from ._eval_command import eval_command
from ._fork_command import fork
from ._gate_commands import approve, reject
from ._group import add_logging_options, cli, show_usage_error
from ._inspect_commands import inspect, schema, validate
from ._journal_commands import journal_group
from ._retention_commands import prune
from ._run_commands import resume, run
from ._worker_command import worker

__all__ = ["cli", "run_command_line"]

for _command in (run, resume, validate, schema, inspect, compare, prune, fork, approve, reject):
    cli.add_command(_command)
cli.add_command(follow)
cli.add_command(cancel)
cli.add_command(eval_command)
cli.add_command(journal_group)
cli.add_command(worker)


def run_command_line(commands: Sequence[click.Command]) -> None:
    """Run `orchestr8` with `commands` added: the ones of other views, assembled by `_console`.

    Streams write text they cannot encode as escapes (agent output and undecodable arguments can
    hold lone surrogates), so a result is never lost to a UnicodeEncodeError.
    """
    from .._shell._process import run_command
    from ._project_commands import create_group, init_command, tests_command

    for command in (*commands, init_command, create_group, tests_command):
        cli.add_command(command)
    add_logging_options(cli)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    run_command(cli, show_usage_error=show_usage_error)
