"""Keeping a long-running service's journal working: reopen it after a failure, with back-off.

A journal fails for good (`_journal`): a full disk, a file made read-only, a stray writer. A
one-shot `orchestr8 run` stops and says how to resume; a service should not need a restart once the
cause is gone. `keep_journal_working` waits for the journal to fail, then tries `Journal.reopen`
(fresh connections that must commit a write) after `first_delay` seconds, doubling the wait up to
`max_delay` between tries, until it works; then it waits for the next failure. Meanwhile the
journal refuses work, so `/health` says `degraded` and new executions get 503. The executions the
failure stopped stay stopped, and resumable.
"""

from __future__ import annotations

import logging
import math

import trio

from .._errors import JournalError
from ._journal import Journal

_logger = logging.getLogger("orchestr8.journal")


async def keep_journal_working(
    journal: Journal, *, first_delay: float = 1.0, max_delay: float = 30.0
) -> None:
    """Reopen `journal` whenever it fails, retrying with back-off; returns once it is closed.

    Raises:
        ValueError: a delay is not a positive number of seconds, or `max_delay < first_delay`.
    """
    if not (0 < first_delay <= max_delay and math.isfinite(max_delay)):
        raise ValueError(
            f"delays must be finite seconds with 0 < first_delay <= max_delay, got "
            f"{first_delay} and {max_delay}"
        )
    while not journal.closed:
        await _failure_of(journal)
        delay = first_delay
        while True:
            await trio.sleep(delay)
            try:
                await journal.reopen()
            except JournalError as error:
                if journal.closed:
                    return
                delay = min(delay * 2, max_delay)
                _logger.warning("%s; trying again in %g s", error, delay)
            else:
                break


async def _failure_of(journal: Journal) -> None:
    """Return once the journal has failed (at once if it has already)."""
    failed = trio.Event()
    stop_watching = journal.on_failure(lambda _: failed.set())
    try:
        await failed.wait()
    finally:
        stop_watching()
