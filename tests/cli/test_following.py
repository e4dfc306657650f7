"""`follow` through a server: a real app on a loopback port, a scripted socket for reconnects."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from serve_processes import serving

from orchestr8 import Event, ExecutionRecord, Runtime, open_runtime
from orchestr8._cli import _following
from orchestr8._cli._following import Follower, follow_url, server_steps, tell_if_waiting
from orchestr8._cli._progress import ProgressView
from orchestr8._shell._options import CommandError

KEY = "follow-key-123456"
NAPS = {
    "schema_version": "1.0",
    "name": "naps",
    "strategy": "sequential",
    "steps": [
        {"id": "one", "agent": "sleep", "input": {"seconds": 0.05}},
        {"id": "two", "agent": "sleep", "input": {"seconds": 0.05}},
    ],
}


def follower(execution_id: str) -> tuple[Follower, io.StringIO]:
    stream = io.StringIO()
    view = ProgressView(stream, ["one", "two"], live=False)
    return Follower(view, execution_id, lambda name: f"orchestr8 {name}"), stream


async def orphan(runtime: Runtime, execution_id: str) -> None:
    await runtime.journal.create_execution(
        ExecutionRecord(execution_id=execution_id, workflow_name="naps", workflow=NAPS)
    )
    await runtime.journal.append(
        Event(execution_id, 1, "2025-01-01T00:00:00.000Z", 0.0, "execution.started")
    )
    await runtime.journal.flush()


async def test_follow_url_shows_a_run_and_exits_with_its_code(tmp_path: Path) -> None:
    """Through the server's WebSocket: the run's lines, then 0; the API key goes with it."""
    async with (
        open_runtime(journal=tmp_path / "journal.db") as runtime,
        serving(runtime, KEY) as url,
    ):
        handle = await runtime.start(NAPS)
        steps, document = await server_steps(url, KEY, handle.execution_id)
        assert (steps, document["execution_id"]) == (["one", "two"], handle.execution_id)
        shown, stream = follower(handle.execution_id)
        with trio.fail_after(10):
            assert await follow_url(url, KEY, shown) == 0
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines if "succeeded in" in line][:2] == ["one", "two"]
    assert "execution succeeded in" in lines[-1]


async def test_follow_url_says_interrupted_once_then_follows_to_the_end(tmp_path: Path) -> None:
    """4409 `interrupted`: said once, then reconnected until the execution ends (cancelled)."""
    async with (
        open_runtime(journal=tmp_path / "journal.db") as runtime,
        serving(runtime) as url,
    ):
        await orphan(runtime, "dead")
        shown, stream = follower("dead")
        told = trio.Event()
        tell = shown.tell_interrupted

        def telling() -> None:
            tell()
            told.set()

        shown.tell_interrupted = telling  # type: ignore[method-assign]
        code: list[int] = []

        async def follow() -> None:
            code.append(await follow_url(url, None, shown))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                await told.wait()
                await runtime.cancel("dead", reason="gone")
    assert code == [130]
    text = stream.getvalue()
    assert text.count("is interrupted: no process runs it") == 1
    assert "orchestr8 resume dead" in text
    assert "execution cancelled after" in text


async def test_follow_url_refusals_are_one_line_errors(tmp_path: Path) -> None:
    """A wrong key, an unknown id or no server: `CommandError`s that say what happened."""
    async with (
        open_runtime(journal=tmp_path / "journal.db") as runtime,
        serving(runtime, KEY) as url,
    ):
        await orphan(runtime, "dead")
        with pytest.raises(CommandError, match=r"^cannot follow through .*: 401: send the API key"):
            await follow_url(url, "wrong", follower("dead")[0])
        with pytest.raises(CommandError, match="404"):
            await server_steps(url, KEY, "nope")
    with pytest.raises(CommandError, match=r"^cannot connect to http://127\.0\.0\.1:9"):
        await follow_url("http://127.0.0.1:9", None, follower("dead")[0])


ScriptedClose = tuple[list[int], int, str]
"""One connection of a scripted server: the seqs it sends, then its close code and reason."""


@asynccontextmanager
async def scripted_server(connections: list[ScriptedClose]) -> AsyncIterator[tuple[str, list[str]]]:
    """A WebSocket server playing `connections` in turn; yields its URL and the paths asked."""
    paths: list[str] = []
    script = iter(connections)

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        paths.append(request.path)
        socket = await request.accept()
        seqs, code, reason = next(script)
        for seq in seqs:
            kind = "execution.succeeded" if seq == 3 else "step.started"
            step_id = None if seq == 3 else "one"
            event = Event("run-1", seq, "2025-01-01T00:00:00.000Z", float(seq), kind, step_id)
            await socket.send_message(json.dumps(event.to_json()))
        await socket.aclose(code, reason)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None)
        try:
            yield f"http://127.0.0.1:{server.port}", paths
        finally:
            nursery.cancel_scope.cancel()


def fake_status(status: str, error: Any = None) -> Callable[[str, Any, str], Any]:
    async def get_execution(base: str, headers: Any, execution_id: str) -> dict[str, Any]:
        return {"execution_id": execution_id, "status": status, "error": error}

    return get_execution


async def test_follow_url_reconnects_after_1001_and_1013_with_the_last_seq(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each reconnect asks for `after=` the last seq shown; nothing is shown twice."""
    monkeypatch.setattr(_following, "get_execution", fake_status("failed", {"type": "X"}))
    script = [([1], 1001, "server shutting down"), ([2], 1013, "client too slow"), ([3], 1000, "")]
    async with scripted_server(script) as (url, paths):
        shown, stream = follower("run-1")
        with trio.fail_after(10):
            assert await follow_url(url, None, shown) == 2
    assert paths == [
        "/executions/run-1/events?after=0",
        "/executions/run-1/events?after=1",
        "/executions/run-1/events?after=2",
    ]
    assert stream.getvalue().count("started") == 2


async def test_follow_url_stops_on_a_server_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """1011 (or any code it does not know) ends `follow` with the server's reason."""
    async with scripted_server([([], 1011, "server error")]) as (url, _):
        with pytest.raises(CommandError, match=r"^the server closed the event stream: 1011 server"):
            await follow_url(url, None, follower("run-1")[0])


async def test_a_resumed_execution_is_said_so(tmp_path: Path) -> None:
    """`execution.resumed` makes `follow` say so, and say `interrupted` again if it dies again."""
    shown, stream = follower("run-1")
    shown.tell_interrupted()
    shown.show(Event("run-1", 1, "2025-01-01T00:00:00.000Z", 0.0, "execution.resumed"))
    shown.show(Event("run-1", 1, "2025-01-01T00:00:00.000Z", 0.0, "execution.resumed"))
    shown.tell_interrupted()
    text = stream.getvalue()
    assert text.count("execution run-1 resumed") == 1
    assert text.count("is interrupted") == 2


async def waiting_orphan(runtime: Runtime, execution_id: str) -> None:
    """An execution a run left waiting at its gate `g` (no process runs it)."""
    await orphan(runtime, execution_id)
    stamp = "2025-01-01T00:00:01.000Z"
    opened = {"prompt": "ok?", "schema": None, "timeout": None, "on_timeout": "reject"}
    for seq, kind, step_id, data in (
        (2, "gate.opened", "g", {**opened, "deadline": None}),
        (3, "execution.waiting", None, {"gates": ["g"]}),
    ):
        await runtime.journal.append(
            Event(execution_id, seq, stamp, 1.0, kind, step_id, None, data)
        )
    await runtime.journal.flush()


@pytest.mark.parametrize("after", [0, 3])
async def test_follow_url_says_once_that_it_waits_at_its_gates(tmp_path: Path, after: int) -> None:
    """A waiting execution: its gates and how to answer, once (also from past its last event)."""
    async with (
        open_runtime(journal=tmp_path / "journal.db") as runtime,
        serving(runtime) as url,
    ):
        await waiting_orphan(runtime, "paused")
        shown, stream = follower("paused")
        shown.last = after
        tell_if_waiting(shown, (await server_steps(url, None, "paused"))[1])
        told = trio.Event()
        tell = shown.tell_waiting

        def telling(gates: Sequence[str]) -> None:
            tell(gates)
            told.set()

        shown.tell_waiting = telling  # type: ignore[method-assign]
        code: list[int] = []

        async def follow() -> None:
            code.append(await follow_url(url, None, shown))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                if not shown.told:
                    await told.wait()
                await runtime.cancel("paused", reason="no answer")
    assert code == [130]
    text = stream.getvalue()
    assert text.count("execution paused is waiting for approval: gate(s) g.") == 1
    assert "orchestr8 approve paused GATE" in text
    assert "execution cancelled after" in text


async def test_a_document_that_is_not_waiting_tells_nothing() -> None:
    """Running, or without `last_seq`: nothing is said before following."""
    shown, stream = follower("run-1")
    for document in ({"status": "running", "last_seq": 3}, {"status": "waiting"}):
        tell_if_waiting(shown, document)
    assert (shown.told, stream.getvalue()) == (None, "")


async def test_follow_journal_on_postgresql_is_woken_by_each_commit(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """`follow` on a PostgreSQL journal: the trio clock stopped, each commit still shows."""
    pytest.importorskip("psycopg")
    from orchestr8._journal._journal import open_journal

    stamp = "2025-01-01T00:00:00.000Z"
    async with open_journal(postgres_url) as followed, open_journal(postgres_url) as writer:
        await writer.create_execution(
            ExecutionRecord(execution_id="run", workflow_name="naps", workflow=NAPS)
        )
        await writer.append(Event("run", 1, stamp, 0.0, "execution.started"))
        await writer.flush()
        shown, stream = follower("run")
        async with trio.open_nursery() as nursery:

            async def follow() -> None:
                assert await _following.follow_journal(followed, shown) == 0

            nursery.start_soon(follow)
            await writer.append(Event("run", 2, stamp, 0.1, "step.started", "one"))
            await writer.append(Event("run", 3, stamp, 0.2, "step.succeeded", "one"))
            await writer.flush()
            await writer.append(Event("run", 4, stamp, 0.3, "execution.succeeded"))
            await writer.flush()
    assert shown.last == 4
    assert trio.current_time() == 0
    assert "one" in stream.getvalue()
