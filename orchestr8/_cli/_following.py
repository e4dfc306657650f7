"""`orchestr8 follow`: an execution's events, live, from the journal or from a server.

From the journal, the events after `--after` are read whenever the journal says some may have
been committed (`Journal.wait_for_events`: at once on PostgreSQL, woken by NOTIFY; every
`FOLLOW_POLL_INTERVAL` seconds, trio clock, on SQLite) and shown with the progress view of
`run`, so the lines look the same. From a server
(`--url`), they come over its events WebSocket; a close with 1001 (the server stops) or 1013 (too
slow) is followed by a reconnect with `after=` the last seq shown. Either way the command exits
with the execution's exit code once it ends (0, 2, 3 or 130, as `run`).

An execution no process runs is not an ending: an `interrupted` one (its process died) is said
once, with the command that resumes it, and followed on until it is resumed; one `waiting` for
approval is said once, with its open gates and how to answer them (from its `execution.waiting`
event, or through a server from `GET /executions/{id}` when that event is before `--after`).
Ctrl-C stops following (exit 130) and leaves the execution alone.

Imported by the `follow` command when it runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import trio

from .._journal._events import Event, EventType
from ._progress import ProgressView
from ._server_client import auth_headers, get_execution
from ._support import CommandError, status_exit_code

if TYPE_CHECKING:
    import trio_websocket

    from .._journal._journal import Journal
    from .._journal._replay import ExecutionState

FOLLOW_POLL_INTERVAL: Final = 0.25
"""Seconds between two reads of the journal while nothing new is in it."""

FOLLOW_CHECK_INTERVAL: Final = 1.0
"""On a journal that wakes followers (PostgreSQL), seconds between two reads while nothing
arrives: its events wake the follower at once, this only bounds noticing an interrupted run."""

RECONNECT_DELAY: Final = 1.0
"""Seconds before connecting again to a server that closed the socket with 4409."""

EVENTS_PAGE: Final = 500
"""Events read from the journal per query."""

_RECONNECT_CODES: Final = frozenset({1001, 1013})
_NOT_RUNNING: Final = 4409
_FINISHED: Final = 1000


class Follower:
    """Shows one execution's events and says, once each, when no process runs it."""

    def __init__(
        self, view: ProgressView, execution_id: str, command: Callable[[str], str]
    ) -> None:
        """Show on `view`; `command(name)` is how to call `orchestr8 NAME` (with `--journal`)."""
        self.view = view
        self.execution_id = execution_id
        self.command = command
        self.last = 0
        self.told: str | None = None
        """What was said about the execution last: `interrupted`, `waiting` or nothing."""

    def show(self, event: Event) -> None:
        """Show one event of the execution (once: those up to `last` are skipped)."""
        if event.seq <= self.last:
            return
        self.last = event.seq
        if event.type == EventType.EXECUTION_RESUMED:
            self.told = None
            self.view.note(f"execution {self.execution_id} resumed")
        self.view.show(event, self.execution_id)
        if event.type == EventType.EXECUTION_WAITING:
            gates = event.data.get("gates")
            self.tell_waiting([str(gate) for gate in gates] if isinstance(gates, list) else [])

    def tell_interrupted(self) -> None:
        """Say once that no process runs the execution, and how to resume it."""
        if self.told != "interrupted":
            self.told = "interrupted"
            self.view.note(
                f"execution {self.execution_id} is interrupted: no process runs it (the one "
                f"that did stopped). Following on until it is resumed: "
                f"{self.command('resume')} {self.execution_id}",
                "yellow",
            )

    def tell_waiting(self, gates: Sequence[str]) -> None:
        """Say once that the execution waits for answers, which gates, and how to answer them."""
        if self.told != "waiting":
            self.told = "waiting"
            shown = ", ".join(gates) or "(none open)"
            self.view.note(
                f"execution {self.execution_id} is waiting for approval: gate(s) {shown}. "
                f"Answer with `{self.command('approve')} {self.execution_id} GATE` or "
                f"`{self.command('reject')} {self.execution_id} GATE --reason TEXT`, then "
                f"`{self.command('resume')} {self.execution_id}`; following on",
                "yellow",
            )


async def follow_journal(journal: Journal, follower: Follower) -> int:
    """Show the execution's events from the journal until it ends; return its exit code."""
    from .._execution._liveness import INTERRUPTED, shown_status
    from .._journal._replay import replay

    execution_id = follower.execution_id
    while True:
        page = await journal.events(execution_id, after=follower.last, limit=EVENTS_PAGE)
        for event in page:
            follower.show(event)
        if len(page) == EVENTS_PAGE:
            continue
        record = await journal.get_execution(execution_id)
        if record.status.is_terminal:
            if await journal.events(execution_id, after=follower.last, limit=1):
                # Its end was committed after the page was read: show it first.
                continue
            state = replay(await journal.events(execution_id))
            return status_exit_code(str(state.status), state.error)
        if str(record.status) == "waiting":
            if follower.told != "waiting":
                state = replay(await journal.events(execution_id))
                follower.tell_waiting(_open_gates(state))
        elif await shown_status(journal, execution_id, record.status) == INTERRUPTED:
            follower.tell_interrupted()
        interval = FOLLOW_CHECK_INTERVAL if journal.event_wakeups else FOLLOW_POLL_INTERVAL
        await journal.wait_for_events(execution_id, follower.last, interval)


def _open_gates(state: ExecutionState) -> list[str]:
    """The ids of the gates still open in a replayed state, in the order they opened."""
    return [gate_id for gate_id, gate in state.gates.items() if gate.status == "open"]


async def follow_url(url: str, api_key: str | None, follower: Follower) -> int:
    """Show the execution's events from a server's WebSocket until it ends; its exit code."""
    import trio_websocket

    headers = auth_headers(api_key)
    base = url.rstrip("/")
    socket_base = "ws" + base[4:] if base.startswith("http") else base
    while True:
        resource = f"{socket_base}/executions/{follower.execution_id}/events?after={follower.last}"
        try:
            async with open_client_socket(resource, headers) as socket:
                while True:
                    message = await socket.get_message()
                    follower.show(Event.from_json(json.loads(message)))
        except trio_websocket.ConnectionClosed as closed:
            shut = closed.reason
            code, reason = (shut.code, shut.reason or "") if shut is not None else (1006, "")
        except trio_websocket.HandshakeError as error:
            raise CommandError(
                f"cannot follow through {url}: {_handshake_problem(error)}"
            ) from None
        except OSError as error:
            raise CommandError(f"cannot connect to {url}: {error.strerror or error}") from None
        if code == _FINISHED:
            document = await get_execution(base, headers, follower.execution_id)
            return status_exit_code(str(document.get("status")), document.get("error"))
        if code in _RECONNECT_CODES:
            continue
        if code != _NOT_RUNNING:
            raise CommandError(f"the server closed the event stream: {code} {reason}".rstrip())
        if reason.startswith("interrupted"):
            follower.tell_interrupted()
        await trio.sleep(RECONNECT_DELAY)


def tell_if_waiting(follower: Follower, document: dict[str, Any]) -> None:
    """Before `follow_url`: say that the execution waits for answers, if its document says so.

    Only when its last event (`execution.waiting`, which says it too) is not after
    `follower.last`: the socket never sends it then.
    """
    last_seq = document.get("last_seq")
    if document.get("status") != "waiting" or not isinstance(last_seq, int):
        return
    if follower.last < last_seq:
        return
    gates = document.get("gates")
    follower.tell_waiting(
        [
            str(gate_id)
            for gate_id, gate in (gates.items() if isinstance(gates, dict) else ())
            if isinstance(gate, dict) and gate.get("status") == "open"
        ]
    )


@asynccontextmanager
async def open_client_socket(
    url: str, headers: Sequence[tuple[str, str]]
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A client WebSocket to `url`, its TCP stream always closed when the block ends.

    trio-websocket 0.12 leaves the stream open when the server closes first or refuses the
    handshake, so the stream is owned here; a refused handshake or a closed connection raises
    its `HandshakeError` or `ConnectionClosed` alone, not inside an ExceptionGroup.
    """
    import trio_websocket

    parts = urlsplit(url)
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await trio.open_tcp_stream(parts.hostname or "", parts.port or 80)
    try:
        async with stream, trio.open_nursery() as nursery:
            socket = await trio_websocket.wrap_client_stream(
                nursery,
                stream,
                parts.netloc,
                resource,
                extra_headers=[(name.encode(), value.encode()) for name, value in headers],
            )
            try:
                yield socket
            finally:
                await socket.aclose()
    except BaseExceptionGroup as group:
        matched, _ = group.split((trio_websocket.HandshakeError, trio_websocket.ConnectionClosed))
        if matched is None:
            raise
        leaf: BaseException = matched
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from None


def _handshake_problem(error: Exception) -> str:
    """What a refused handshake says: the server's problem detail, or its status code."""
    status = getattr(error, "status_code", None)
    body = getattr(error, "body", None)
    if isinstance(body, bytes | bytearray):
        try:
            detail = json.loads(body).get("detail")
        except (ValueError, AttributeError):
            detail = None
        if isinstance(detail, str):
            return f"{status}: {detail}"
    return f"the server answered {status}" if status is not None else str(error)


async def server_steps(
    url: str, api_key: str | None, execution_id: str
) -> tuple[list[str], dict[str, Any]]:
    """The step ids of an execution a server knows, and its document (404: `CommandError`)."""
    headers = auth_headers(api_key)
    document = await get_execution(url.rstrip("/"), headers, execution_id)
    steps = document.get("steps")
    return (list(steps) if isinstance(steps, dict) else []), document


def progress_view(step_ids: Sequence[str], started_at: str | None = None) -> ProgressView:
    """The progress view of `follow`: the events on stdout, as `run` shows them on stderr.

    `started_at` is when the execution first started: the line that ends a resumed one gives
    its whole duration, as `inspect` does.
    """
    return ProgressView(sys.stdout, step_ids, started_at=started_at)
