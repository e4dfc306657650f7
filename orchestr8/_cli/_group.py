"""The `orchestr8` command group and its plumbing: installed commands, logging, usage errors.

The group holds the commands of this package (added by `_main`) and finds those other packages
register under the `orchestr8.commands` entry points only when it must (`--help`, an unknown
name). Every command gets `--log-format` and `--log-level`; a usage error is shown as click does,
or as a JSON log line. Only asyncclick is imported here, so `orchestr8 --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncclick as click

from .._version import __version__

__all__ = [
    "COMMANDS_ENTRY_POINT_GROUP",
    "CommandLine",
    "add_logging_options",
    "cli",
    "journal_option",
    "show_usage_error",
]


def journal_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--journal PATH|URL` (default `$ORCHESTR8_JOURNAL`, else `./.orchestr8/journal.db`)."""
    return click.option(
        "--journal",
        "journal",
        metavar="PATH|URL",
        default=None,
        help="The journal: a SQLite file, or a PostgreSQL URL (postgresql://...).  "
        "[default: $ORCHESTR8_JOURNAL, else ./.orchestr8/journal.db]",
    )(function)


COMMANDS_ENTRY_POINT_GROUP = "orchestr8.commands"
"""Where installed packages add commands to `orchestr8` (`orchestr8 agent` comes from `actors`)."""


class CommandLine(click.Group):
    """The `orchestr8` group: its own commands, then those installed packages register.

    Installed commands come from the `orchestr8.commands` entry points, read only when a name is
    not one of the group's own or when the commands are listed (`--help`): scanning the installed
    metadata costs tens of milliseconds `orchestr8 run` need not pay.
    """

    _installed_loaded = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, installed ones included, sorted."""
        self._load_installed()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named `cmd_name`: the group's own first, else an installed one."""
        command = super().get_command(ctx, cmd_name)
        if command is None and not self._installed_loaded:
            self._load_installed()
            command = super().get_command(ctx, cmd_name)
        return command

    def _load_installed(self) -> None:
        """Add the commands of the `orchestr8.commands` entry points, once.

        A command that fails to load, or is not a click command, is reported on stderr and left
        out: one broken package must not stop `orchestr8 run`. A name already taken is skipped.
        """
        if self._installed_loaded:
            return
        self._installed_loaded = True
        from importlib.metadata import entry_points

        for entry_point in entry_points(group=COMMANDS_ENTRY_POINT_GROUP):
            if entry_point.name in self.commands:
                continue
            try:
                command = entry_point.load()
            except Exception as error:
                click.echo(
                    f"warning: cannot load command {entry_point.name!r} ({entry_point.value}): "
                    f"{type(error).__name__}: {error}",
                    err=True,
                )
                continue
            if not isinstance(command, click.Command):
                click.echo(
                    f"warning: command {entry_point.name!r} ({entry_point.value}) is not a "
                    "click command",
                    err=True,
                )
                continue
            add_logging_options(command)
            self.add_command(command, entry_point.name)


@click.group(cls=CommandLine, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="orchestr8")
def cli() -> None:
    """orchestr8: run agent workflows as supervised trio actors, with a durable journal."""


def _configure_logging(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Set up logging as soon as either option is parsed; the last call has both values."""
    from .._observability._logging import configure_logging

    settings = ctx.find_root().meta.setdefault("orchestr8.logging", {})
    if value is not None:
        settings[param.name] = value
    try:
        configure_logging(settings.get("log_format"), settings.get("log_level"))
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


def _logging_options() -> list[click.Option]:
    """`--log-format` and `--log-level`, new for each command (click options are not shared)."""
    return [
        click.Option(
            ["--log-format"],
            type=click.Choice(["text", "json"], case_sensitive=False),
            default=None,
            expose_value=False,
            callback=_configure_logging,
            metavar="text|json",
            help="Log lines as text or as JSON objects, on stderr.  [env: ORCHESTR8_LOG_FORMAT]",
        ),
        click.Option(
            ["--log-level"],
            default=None,
            expose_value=False,
            callback=_configure_logging,
            metavar="LEVEL",
            help="debug, info, warning (default), error or critical.  [env: ORCHESTR8_LOG_LEVEL]",
        ),
    ]


def add_logging_options(command: click.Command) -> None:
    """Give the group and every command `--log-format` and `--log-level`.

    `orchestr8 test` is left out: its arguments belong to pytest, which has its own `--log-level`
    (use `orchestr8 --log-level … test` there).
    """
    if command.name == "test":
        return
    # A command imported again after the group got its options (tests drop modules between
    # in-process runs) still needs them: look at every child, not only at the group.
    if not any(parameter.name == "log_format" for parameter in command.params):
        command.params.extend(_logging_options())
    if isinstance(command, click.Group):
        for child in command.commands.values():
            add_logging_options(child)


def show_usage_error(error: click.ClickException) -> None:
    """Print a usage error as click does, or as one JSON log line when logs are JSON."""
    from .._observability._logging import installed_handler

    installed = installed_handler()
    if installed is None or installed[1] != "json":
        error.show()
        return
    import logging

    command = error.ctx.command_path if isinstance(error, click.UsageError) and error.ctx else None
    where = f"{command}: " if command else ""
    logging.getLogger("orchestr8.cli").error("%s%s", where, error.format_message())
