"""The `orchestr8` command line: asyncclick on trio, with heavy imports deferred to the commands.

`orchestr8 --help` must answer fast, so this module imports only asyncclick at the top; each command
imports what it needs when it runs.
"""

from __future__ import annotations

import sys

import asyncclick as click

from ._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="orchestr8")
def cli() -> None:
    """orchestr8: run agent workflows as supervised trio actors, with a durable journal."""


def main() -> None:
    """Run the command line on trio (asyncclick would pick asyncio unless told)."""
    try:
        cli(_anyio_backend="trio")
    except KeyboardInterrupt:
        sys.exit(130)
