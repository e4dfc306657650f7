"""What the `orchestr8` commands of every view share: option types, the journal location, errors.

Both views that offer commands use them (`_cli`'s run and resume, `_web`'s serve), so they live
below both; only asyncclick is imported, keeping `orchestr8 --help` fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncclick as click


class GraceSeconds(click.ParamType[float]):
    """A grace period option: a finite number of seconds, 0 or more (click lets NaN through)."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """The seconds as a float, or a usage error naming the option and the value."""
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not (seconds >= 0 and seconds != float("inf")):
            self.fail(f"expected a finite number of seconds, 0 or more, got {value}", param, ctx)
        return seconds


def sync_workers_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--sync-workers N`: the worker threads blocking agent code may use (`open_runtime`)."""
    return click.option(
        "--sync-workers",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="How many worker threads blocking (sync) agent code may use at once; further "
        "calls wait for one. [default: 32]",
    )(function)


class CommandError(Exception):
    """A problem with what the user asked for; printed as `error: message`, exit code 1."""


JournalLocation = Path | str
"""Where a journal is: a SQLite file's path, or a PostgreSQL URL (`postgresql://...`)."""


def journal_location(option: str | None, *, must_exist: bool = False) -> JournalLocation:
    """The journal to use: `--journal`, else `$ORCHESTR8_JOURNAL`, else `./.orchestr8/journal.db`.

    A value `is_postgres_url` accepts is a PostgreSQL journal and is returned as the URL (a
    `str`); anything else is a SQLite file's path. `must_exist` asks for a journal that is
    there already: a file at the path, or a database that holds an orchestr8 journal.

    Raises:
        CommandError: `--journal` is empty, or `must_exist` and there is no journal there.
        JournalError: the value looks like a URL but is not a PostgreSQL one, the URL is
            malformed, the database cannot be reached (with
            `must_exist`), or psycopg is not installed.
    """
    from .._journal._postgres_schema import check_url, is_postgres_url, refuse_mistyped_url

    if option is not None and not option.strip():
        raise CommandError("--journal: the path is empty")
    configured = option or os.environ.get("ORCHESTR8_JOURNAL")
    if configured:
        refuse_mistyped_url(configured)
    if configured and is_postgres_url(configured):
        check_url(configured)
        if must_exist and not journal_exists(configured):
            raise CommandError(no_journal_message(configured))
        return configured
    if configured:
        path = Path(configured).expanduser()
    elif must_exist:
        path = Path.cwd() / ".orchestr8" / "journal.db"
    else:
        from .._journal._journal import default_journal_path

        path = default_journal_path()
    if must_exist and not path.exists():
        raise CommandError(no_journal_message(path))
    return path


def journal_exists(location: JournalLocation) -> bool:
    """Whether a journal is there: the file exists, or the database holds the journal's schema.

    Raises:
        JournalError: the database cannot be reached or logged into (the message says which).
    """
    from .._journal._postgres_schema import connect, found_version, is_postgres_url

    if not is_postgres_url(location):
        return Path(location).exists()
    assert isinstance(location, str)
    connection = connect(location, purpose="orchestr8 cli")
    try:
        return found_version(connection) is not None
    finally:
        connection.close()


def no_journal_message(location: JournalLocation) -> str:
    """Say that there is no journal at `location`, and for a database how to create one."""
    from .._journal._postgres_schema import is_postgres_url, redact_url

    if not is_postgres_url(location):
        return f"there is no journal at {location}"
    where = redact_url(str(location))
    return (
        f"the database {where} holds no orchestr8 journal; create one with: "
        f"orchestr8 journal migrate --journal {where}"
    )


def describe_journal(location: JournalLocation) -> str:
    """The journal's location for people: the path, or the URL without its password."""
    from .._journal._postgres_schema import is_postgres_url, redact_url

    if isinstance(location, str) and is_postgres_url(location):
        return redact_url(location)
    return str(location)


def journal_hint(journal_given: str | None) -> str:
    """` --journal VALUE` for a command a hint tells people to run, or "" without `--journal`.

    A URL's password becomes the placeholder `PASSWORD`, to be typed in: never printed, and
    never `***`, which the command would send as the password.
    """
    import shlex

    from .._journal._postgres_schema import is_postgres_url, redact_url

    if not journal_given:
        return ""
    shown = journal_given
    if is_postgres_url(journal_given):
        shown = redact_url(journal_given, mask="PASSWORD")
    return f" --journal {shlex.quote(shown)}"


def providers_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--providers FILE`: the provider config file (`providers_file`; `open_runtime`)."""
    return click.option(
        "--providers",
        "providers_file",
        metavar="FILE",
        default=None,
        help='A provider config file, {"providers": {NAME: {kind, base_url, api_key, ...}}},'
        " over the built-in anthropic, openai and local; default: $ORCHESTR8_PROVIDERS.",
    )(function)
