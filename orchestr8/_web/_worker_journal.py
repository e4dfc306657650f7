"""What a server does differently on a journal that workers run (PostgreSQL): it only serves.

Several `orchestr8 serve` processes on one PostgreSQL journal are interchangeable API servers in
front of `orchestr8 worker` processes (docs/scale-out.md, "Many API servers"). On such a journal a
server:

- opens the journal's LISTEN connection as it starts (`prepare_followers`), so the first event
  socket is woken at once and `/health` says from the start whether live events are pushed;
- queues what `POST /workflows/execute` admits (`Runtime.submit`: recorded `pending`, a worker
  picks it up) instead of running it, and refuses a request `timeout` there (`QUEUED_TIMEOUT`:
  the worker applies the workflow's own `timeout`);
- never adopts a `waiting` execution (at startup or when an answer arrives for one): a worker
  holds it, or claims it from the queue, and applies the answers recorded for it, so a server
  that resumed it would only compete with the workers for its lease.

On a SQLite or memory journal nothing changes: the server runs executions itself.
"""

from __future__ import annotations

from typing import Final

from .._errors import Problem
from .._journal._journal import Journal

__all__ = ["QUEUED_TIMEOUT", "prepare_followers", "workers_run"]

QUEUED_TIMEOUT: Final = Problem(
    "$.timeout",
    "a queued execution takes no request timeout: the worker that runs it applies the "
    "workflow's own `timeout` (set it in the workflow document)",
)
"""The problem of a `POST /workflows/execute` with a `timeout` on a journal workers run."""


def workers_run(journal: Journal) -> bool:
    """Whether workers run this journal's executions (a PostgreSQL journal), not this server."""
    return journal.event_wakeups


def prepare_followers(journal: Journal) -> None:
    """Open a PostgreSQL journal's LISTEN connection now rather than at the first follower."""
    from .._journal._postgres_notifications import ListeningJournal

    if isinstance(journal, ListeningJournal):
        journal.notifications.listen_now()
