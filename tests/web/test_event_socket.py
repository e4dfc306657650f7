"""The event relay on its own, over a socket the test controls: close codes and reasons."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from orchestr8 import Event, ExecutionRecord, Runtime, open_runtime
from orchestr8._errors import JournalError
from orchestr8._execution._lock import ExecutionLocks
from orchestr8._journal._journal import Journal
from orchestr8._web._event_socket import stream_events

BURST = {
    "schema_version": "1.0",
    "name": "burst",
    "steps": [
        {"id": "wait", "agent": "sleep", "input": {"seconds": 0.1}},
        *(
            {"id": f"s{index}", "agent": "echo", "input": index, "depends_on": ["wait"]}
            for index in range(30)
        ),
    ],
}
ECHO = {"schema_version": "1.0", "name": "echo", "steps": [{"id": "a", "agent": "echo"}]}


class Socket:
    """A socket that records what is sent and can hold sends until released."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.open = trio.Event()
        self.open.set()
        self.changed = trio.Event()

    async def send(self, data: str) -> None:
        await self.open.wait()
        self.sent.append(json.loads(data))
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, count: int) -> None:
        """Wait until `count` messages were sent."""
        while len(self.sent) < count:
            await self.changed.wait()

    async def receive(self) -> str:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with open_runtime(cancel_grace=0.1) as opened:
        yield opened


async def test_a_stalled_client_is_closed_1013_with_the_seq_to_resume_after(
    runtime: Runtime,
) -> None:
    """While sends stall, the buffer fills; the socket closes 1013 naming the last seq sent."""
    socket = Socket()
    handle = await runtime.start(BURST)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(relay, socket, runtime, handle.execution_id, 4)
        with trio.fail_after(5):
            await socket.wait_for(3)
            # Everything so far is sent and the relay waits for live events: now the client
            # stops reading, just before the burst.
            await trio.testing.wait_all_tasks_blocked()
            socket.open = trio.Event()
            await handle.wait()
        socket.open.set()
    last = socket.sent[-1]["seq"]
    assert socket.closed == (1013, f"client too slow; reconnect with after={last}")
    assert [event["seq"] for event in socket.sent] == list(range(1, last + 1))


async def relay(socket: Socket, runtime: Runtime, execution_id: str, buffer: int) -> None:
    """Stream the execution's events from the start to `socket`, with no shutdown."""
    await stream_events(socket, runtime, execution_id, after=0, buffer=buffer, closing=trio.Event())


async def test_a_journal_failure_closes_1013_try_again_later_without_details(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the journal fails mid-stream, the socket closes 1013 (try again later), says so and
    where to resume, nothing more."""
    handle = await runtime.start(ECHO)
    await handle.wait()

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise JournalError("disk on fire")

    monkeypatch.setattr(runtime.journal, "events", failing)
    socket = Socket()
    with trio.fail_after(5):
        await relay(socket, runtime, handle.execution_id, 16)
    assert socket.closed == (1013, "the journal is unavailable; reconnect with after=0")


async def test_closing_sends_what_is_queued_then_closes_1001(runtime: Runtime) -> None:
    """On shutdown the stream closes 1001 with the last seq sent, the run going on."""
    handle = await runtime.start(
        {**ECHO, "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 30}}]}
    )
    socket = Socket()
    closing = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                stream_events,
                socket,
                runtime,
                handle.execution_id,
                after=0,
                buffer=16,
                closing=closing,
            )
        )
        with trio.fail_after(5):
            await socket.wait_for(3)
        closing.set()
    assert socket.closed == (1001, "server shutting down; reconnect with after=3")
    assert not handle.done
    handle.cancel()


async def test_the_end_is_sent_only_once_the_journal_has_committed_it(tmp_path: Path) -> None:
    """When the terminal event goes out, the journal has written it, so REST reads show the end."""
    written_at_end: list[int] = []
    runtime: Runtime  # bound by the `async with` below, before any send

    class Checking(Socket):
        async def send(self, data: str) -> None:
            if json.loads(data)["type"] == "execution.succeeded":
                # The only execution of this runtime: its events are all the journal wrote.
                written_at_end.append(runtime.journal.statistics().events_written)
            await super().send(data)

    # A file journal writes on a thread, so the bus is well ahead of it.
    async with open_runtime(journal=tmp_path / "journal.db") as runtime:
        socket = Checking()
        handle = await runtime.start(
            {**ECHO, "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 0.05}}]}
        )
        with trio.fail_after(5):
            await relay(socket, runtime, handle.execution_id, 64)
    assert written_at_end == [socket.sent[-1]["seq"]]
    assert socket.closed == (1000, "execution.succeeded")


async def test_an_interrupted_run_closes_4409_saying_interrupted(tmp_path: Path) -> None:
    """Unfinished, run by no process: its past events, then 4409 saying `interrupted`."""
    journal_path = tmp_path / "journal.db"
    async with open_runtime(journal=journal_path) as runtime:
        await orphan(runtime, "dead")
        socket = Socket()
        with trio.fail_after(5):
            await relay(socket, runtime, "dead", 16)
    assert [event["type"] for event in socket.sent] == ["execution.started"]
    assert socket.closed == (
        4409,
        "interrupted: the journal says running, but no process "
        "runs it; resume it, then reconnect with after=1",
    )


async def orphan(runtime: Runtime, execution_id: str) -> None:
    """Record an unfinished execution that no runtime of this test runs."""
    await orphan_in(runtime.journal, execution_id)


def event(execution_id: str, seq: int, kind: str, step_id: str | None = None) -> Event:
    return Event(execution_id, seq, "2025-01-01T00:00:00.000Z", float(seq), kind, step_id)


@pytest.mark.parametrize("ending", ["finishes", "dies"])
async def test_an_execution_another_process_runs_is_tailed_from_the_journal(
    tmp_path: Path, ending: str
) -> None:
    """Locked elsewhere: its events come from the journal as they are written, then 1000 after
    its end; 4409 `interrupted` if its process lets go without an end."""
    journal_path = tmp_path / "journal.db"
    async with open_runtime(journal=journal_path) as runtime:
        await orphan(runtime, "elsewhere")
        other = ExecutionLocks(journal_path)
        assert other.acquire("elsewhere")
        socket = Socket()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(relay, socket, runtime, "elsewhere", 16)
                with trio.fail_after(5):
                    await socket.wait_for(1)
                    await runtime.journal.append(event("elsewhere", 2, "step.started", "a"))
                    await runtime.journal.flush()
                    await socket.wait_for(2)
                    if ending == "finishes":
                        await runtime.journal.append(event("elsewhere", 3, "execution.succeeded"))
                        await runtime.journal.flush()
                    else:
                        other.release("elsewhere")
        finally:
            other.close()
    if ending == "finishes":
        assert [sent["seq"] for sent in socket.sent] == [1, 2, 3]
        assert socket.closed == (1000, "execution.succeeded")
    else:
        assert [sent["seq"] for sent in socket.sent] == [1, 2]
        assert socket.closed is not None
        assert socket.closed[0] == 4409
        assert socket.closed[1].startswith("interrupted: the journal says running")


async def test_a_tail_closes_1001_when_the_server_shuts_down(tmp_path: Path) -> None:
    """While tailing another process's execution, shutting down closes 1001 with after=N."""
    journal_path = tmp_path / "journal.db"
    async with open_runtime(journal=journal_path) as runtime:
        await orphan(runtime, "elsewhere")
        other = ExecutionLocks(journal_path)
        assert other.acquire("elsewhere")
        socket = Socket()
        closing = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(
                        stream_events,
                        socket,
                        runtime,
                        "elsewhere",
                        after=0,
                        buffer=16,
                        closing=closing,
                    )
                )
                with trio.fail_after(5):
                    await socket.wait_for(1)
                closing.set()
        finally:
            other.close()
    assert socket.closed == (1001, "server shutting down; reconnect with after=1")


async def test_a_tail_of_an_execution_that_ended_before_after_closes_1000(
    tmp_path: Path,
) -> None:
    """A client that has every event, the end included, is told the ending at once."""
    journal_path = tmp_path / "journal.db"
    async with open_runtime(journal=journal_path) as runtime:
        handle = await runtime.start(ECHO)
        await handle.wait()
        last = await runtime.journal.last_seq(handle.execution_id)
        socket = Socket()
        with trio.fail_after(5):
            await stream_events(
                socket,
                runtime,
                handle.execution_id,
                after=last,
                buffer=16,
                closing=trio.Event(),
            )
    assert socket.sent == []
    assert socket.closed == (1000, "execution.succeeded")


async def test_a_waiting_execution_is_tailed_until_it_is_cancelled(tmp_path: Path) -> None:
    """Waiting for approval, run by no process: not interrupted; a cancel ends the stream 1000."""
    journal_path = tmp_path / "journal.db"
    async with open_runtime(journal=journal_path) as runtime:
        await orphan(runtime, "waiting")
        await runtime.journal.append(
            Event(
                "waiting",
                2,
                "2025-01-01T00:00:00.000Z",
                1.0,
                "execution.waiting",
                None,
                None,
                {"gates": ["review"]},
            )
        )
        await runtime.journal.flush()
        socket = Socket()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay, socket, runtime, "waiting", 16)
            with trio.fail_after(5):
                await socket.wait_for(2)
                await runtime.cancel("waiting", reason="nobody answered")
    assert [sent["type"] for sent in socket.sent] == [
        "execution.started",
        "execution.waiting",
        "execution.cancelled",
    ]
    assert socket.closed == (1000, "execution.cancelled")


async def test_a_tail_past_the_end_closes_1000_once_it_has_ended(tmp_path: Path) -> None:
    """A client whose `after` is past everything gets nothing, then 1000 once it has ended."""
    journal_path = tmp_path / "journal.db"
    async with open_runtime(journal=journal_path) as runtime:
        await orphan(runtime, "elsewhere")
        other = ExecutionLocks(journal_path)
        assert other.acquire("elsewhere")
        socket = Socket()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(
                        stream_events,
                        socket,
                        runtime,
                        "elsewhere",
                        after=9,
                        buffer=16,
                        closing=trio.Event(),
                    )
                )
                await runtime.journal.append(event("elsewhere", 2, "execution.succeeded"))
                await runtime.journal.flush()
        finally:
            other.close()
    assert socket.sent == []
    assert socket.closed == (1000, "execution.succeeded")


async def test_a_tail_on_postgresql_is_woken_by_each_commit_not_by_a_timer(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """Another process's commits reach the socket with the trio clock stopped: only the
    writer's NOTIFY (or the LISTEN connection's first wake-up) can wake the tail."""
    from orchestr8._execution._claims import open_claims
    from orchestr8._journal._journal import open_journal

    pytest.importorskip("psycopg")
    async with (
        open_journal(postgres_url) as served,
        open_journal(postgres_url) as other,
        open_claims(other, ttl=60) as claims,
        open_runtime(journal=served) as runtime,
    ):
        await orphan_in(other, "elsewhere")
        # Leased by the other "process": it runs the execution, so the socket tails it.
        assert await claims.acquire("elsewhere")
        socket = Socket()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay, socket, runtime, "elsewhere", 16)
            await socket.wait_for(1)
            for seq in (2, 3):
                await other.append(event("elsewhere", seq, "step.started", f"s{seq}"))
                await other.flush()
                await socket.wait_for(seq)
            await other.append(event("elsewhere", 4, "execution.succeeded"))
            await other.flush()
    assert [sent["seq"] for sent in socket.sent] == [1, 2, 3, 4]
    assert socket.closed == (1000, "execution.succeeded")
    assert trio.current_time() == 0


async def orphan_in(journal: Journal, execution_id: str) -> None:
    """Record an unfinished execution in `journal` (as another process would have)."""
    await journal.create_execution(
        ExecutionRecord(execution_id=execution_id, workflow_name="echo", workflow=ECHO)
    )
    await journal.append(
        Event(execution_id, 1, "2025-01-01T00:00:00.000Z", 0.0, "execution.started")
    )
    await journal.flush()
