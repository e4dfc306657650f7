"""The `orchestr8 serve` command: the options of `run_service` as a click command.

`register_serve(cli)` adds it to a click group; `python -m orchestr8._web._command` runs it alone.
Only asyncclick and the light server module are imported here; Quart and Hypercorn load when it
serves, so `orchestr8 --help` stays fast.
"""

from __future__ import annotations

import asyncclick as click

from .._shell._options import GraceSeconds, providers_option, sync_workers_option
from .._shell._process import run_command
from ._serve import API_KEY_VARIABLE, DEFAULT_HOST, DEFAULT_PORT, MIB, run_service

__all__ = ["main", "register_serve", "serve_command"]


@click.command("serve")
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="The address to listen on; beyond loopback only with an API key.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="The TCP port; 0 picks a free one (the printed URL tells which).",
)
@click.option(
    "--journal",
    metavar="PATH|URL",
    default=None,
    help="The journal: a SQLite file, or a PostgreSQL URL (postgresql://...).  "
    "[default: $ORCHESTR8_JOURNAL, else ./.orchestr8/journal.db]",
)
@click.option(
    "--api-key",
    envvar=API_KEY_VARIABLE,
    show_envvar=True,
    default=None,
    metavar="KEY",
    help="Require `Authorization: Bearer KEY` on every route but /health. Prefer the "
    "environment variable: command lines are visible to other users.",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1),
    default=MIB,
    show_default=True,
    metavar="BYTES",
    help="The largest request body accepted.",
)
@click.option(
    "--cancel-grace",
    type=GraceSeconds(),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="On shutdown, how long steps may finish before being forced.",
)
@click.option(
    "--secrets-file",
    metavar="FILE",
    help="A JSON object of secrets by name for ${secrets.NAME}; "
    "over $ORCHESTR8_SECRET_NAME variables.",
)
@click.option(
    "--open",
    "open_browser",
    is_flag=True,
    help="Once listening, open the dashboard (URL/ui/) in a web browser ($BROWSER first).",
)
@sync_workers_option
@providers_option
async def serve_command(
    host: str,
    port: int,
    journal: str | None,
    api_key: str | None,
    max_body: int,
    cancel_grace: float,
    secrets_file: str | None,
    sync_workers: int | None,
    open_browser: bool,
    providers_file: str | None = None,
) -> int:
    """Serve the REST API and live event WebSockets (see docs/rest.md).

    Prints the URL it listens on; with --open, opens the dashboard (/ui/) in a browser. SIGINT or
    SIGTERM stops it cleanly: no new connections, running executions cancelled (recorded as
    cancelled), the journal saved; exit code 0. Exit code 4 when asked to listen beyond loopback
    without an API key.
    """
    return await run_service(
        host=host,
        port=port,
        journal=journal,
        api_key=api_key or None,
        max_body=max_body,
        cancel_grace=cancel_grace,
        secrets_file=secrets_file,
        sync_workers=sync_workers,
        open_browser=open_browser,
        providers_file=providers_file,
    )


def register_serve(cli: click.Group) -> None:
    """Add the `serve` command to a click group (the `orchestr8` command line)."""
    cli.add_command(serve_command)


def main(args: list[str] | None = None) -> None:
    """Run `serve` alone, as `python -m orchestr8._web._command`."""
    run_command(serve_command, args, prog_name="orchestr8 serve")


if __name__ == "__main__":
    main()
