"""What the `orchestr8` commands of every view share: option types, the journal path, user errors.

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


def journal_path(option: str | None, *, must_exist: bool = False) -> Path:
    """The journal to use: `--journal`, else `$ORCHESTR8_JOURNAL`, else `./.orchestr8/journal.db`.

    Raises:
        CommandError: `--journal` is empty, or `must_exist` and there is no file there.
    """
    if option is not None and not option.strip():
        raise CommandError("--journal: the path is empty")
    configured = option or os.environ.get("ORCHESTR8_JOURNAL")
    if configured:
        path = Path(configured).expanduser()
    elif must_exist:
        path = Path.cwd() / ".orchestr8" / "journal.db"
    else:
        from .._journal._journal import default_journal_path

        path = default_journal_path()
    if must_exist and not path.exists():
        raise CommandError(f"there is no journal at {path}")
    return path


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
