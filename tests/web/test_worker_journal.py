"""A server on a PostgreSQL journal only serves (it queues for workers); /health says so."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio.testing
import trio_websocket
from gate_scripts import SIGN_ONLY, append, gate_opened, record_gated
from link_proxy import link_proxy
from postgres_server import PostgresServer
from worker_processes import query

from orchestr8 import Event, Runtime, open_runtime
from orchestr8._journal._events import EventType
from orchestr8._journal._journal import Journal, open_journal
from orchestr8._journal._postgres_notifications import ListeningJournal
from orchestr8._web import _journal_health
from orchestr8._web._app import create_app
from orchestr8._web._serve import serve
from orchestr8._web._worker_journal import prepare_followers, workers_run

pytest.importorskip("psycopg")


@asynccontextmanager
async def serving(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """`serve` (as `orchestr8 serve` runs it) on a free loopback port; a client of it."""
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        [url] = await nursery.start(
            partial(
                serve,
                runtime,
                port=0,
                shutdown_trigger=stop.wait,
                cancel_executions=True,
                adopt_waiting=True,
            )
        )
        async with httpx.AsyncClient(base_url=url) as client:
            yield client
        stop.set()


async def record_waiting(journal: Journal, execution_id: str) -> None:
    """A `waiting` execution of SIGN_ONLY that no process runs, its gate `sign` open."""
    await record_gated(journal, execution_id, gate_opened("sign"), workflow=SIGN_ONLY)
    await append(journal, execution_id, (EventType.EXECUTION_WAITING, None, {"gates": ["sign"]}))


async def test_only_a_postgresql_journal_is_run_by_workers(
    postgres_url: str, tmp_path: Path
) -> None:
    """SQLite and memory journals are run by the server; a PostgreSQL one by workers."""
    async with open_journal(postgres_url) as database, open_journal(tmp_path / "j.db") as file:
        assert workers_run(database)
        assert not workers_run(file)
    async with open_journal(None) as memory:
        assert not workers_run(memory)
        prepare_followers(memory)


async def test_health_names_the_database_without_its_password(postgres_url: str) -> None:
    """/health shows the redacted URL and that live events are pushed (`listening`)."""
    with_password = postgres_url.replace("postgres@", "postgres:hunter2@")
    async with (
        open_journal(with_password) as journal,
        open_runtime(journal=journal) as runtime,
        serving(runtime) as client,
    ):
        assert isinstance(journal, ListeningJournal)
        # Opened by the server as it starts, before any event socket.
        assert journal.notifications.wanted
        with trio.fail_after(10):
            await _until(lambda: journal.notifications.listening)
        response = await client.get("/health")
    assert response.status_code == 200
    document = response.json()
    assert "hunter2" not in response.text
    assert document["journal_location"] == postgres_url.replace("postgres@", "postgres:***@")
    assert document["notifications"] == "listening"
    assert document["status"] == "ok"


async def test_health_says_why_live_events_are_polled_until_the_link_is_back(
    postgres_server: PostgresServer, postgres_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A cut link: `notifications` says why (and the database is unreachable); restored,
    `listening` again."""
    database = postgres_url.rsplit("/", 1)[1]
    with link_proxy(postgres_server.port) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
        async with open_journal(url) as journal, open_runtime(journal=journal) as runtime:
            assert isinstance(journal, ListeningJournal)
            assert journal.wakeup_trouble is None
            client = create_app(runtime).test_client()
            prepare_followers(journal)
            await _until(lambda: journal.notifications.listening)
            proxy.cut()
            # First the loss, then each failed attempt to reopen it, is the trouble.
            await _until(lambda: "cannot reach" in (journal.notifications.trouble or ""))
            health = await (await client.get("/health")).get_json()
            assert health["status"] == "degraded"
            assert health["journal"].startswith("unreachable: ")
            assert health["notifications"].startswith("cannot reach the journal database")
            proxy.restore()
            await _until(lambda: journal.notifications.listening)
            health = await (await client.get("/health")).get_json()
            assert health["notifications"] == "listening"
            assert journal.notifications.connections == 2


async def test_a_waiting_execution_is_left_to_the_workers(postgres_url: str) -> None:
    """No adoption on PostgreSQL: at startup, nor when an answer arrives (202 `recorded`)."""
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        await record_waiting(journal, "waits")
        async with serving(runtime) as client:
            assert runtime.find("waits") is None
            response = await client.post(
                "/executions/waits/gates/sign", json={"approve": True, "input": {}}
            )
            assert response.status_code == 202, response.text
            document: dict[str, Any] = response.json()
            assert (document["status"], document["runner"]) == ("recorded", "nobody")
            assert runtime.find("waits") is None
        assert str((await journal.get_execution("waits")).status) == "waiting"
        [pending] = await journal.pending_requests(["waits"])
        assert pending.target == "sign"


async def _until(condition: Any) -> None:
    """Wait until `condition()` holds (on the autojump clock: as long as a thread needs)."""
    for _ in range(1_000_000):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_an_execute_request_is_queued_for_the_workers(postgres_url: str) -> None:
    """POST /workflows/execute records it `pending` and queues it; this server does not run it."""
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        client = create_app(runtime).test_client()
        body = {"workflow": SIGN_ONLY, "correlation_id": "order-7"}
        response = await client.post(
            "/workflows/execute", json=body, headers={"Idempotency-Key": "k-1"}
        )
        assert response.status_code == 202
        document = await response.get_json()
        execution_id = document["execution_id"]
        assert document["status"] == "pending"
        assert response.headers["Location"] == f"/executions/{execution_id}"
        assert runtime.find(execution_id) is None
        record = await journal.get_execution(execution_id)
        assert (str(record.status), record.correlation_id) == ("pending", "order-7")
        assert await journal.last_seq(execution_id) == 0
        again = await client.post(
            "/workflows/execute", json=body, headers={"Idempotency-Key": "k-1"}
        )
        assert (await again.get_json())["execution_id"] == execution_id
        queued = await trio.to_thread.run_sync(
            query, postgres_url, "SELECT count(*) FROM leases WHERE queued"
        )
        assert queued == [(1,)]


async def test_a_queued_execution_takes_no_request_timeout(postgres_url: str) -> None:
    """A `timeout` on a journal workers run is a 422 naming `$.timeout`; nothing is recorded."""
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        client = create_app(runtime).test_client()
        response = await client.post(
            "/workflows/execute", json={"workflow": SIGN_ONLY, "timeout": 5}
        )
        assert response.status_code == 422
        problem = await response.get_json()
        assert [error["path"] for error in problem["errors"]] == ["$.timeout"]
        assert "workflow's own `timeout`" in problem["errors"][0]["message"]
        assert not (await journal.list_executions()).items
        invalid = await client.post("/workflows/execute", json={"workflow": {"steps": []}})
        assert invalid.status_code == 422
        assert (await invalid.get_json())["type"] == "urn:orchestr8:problem:invalid-workflow"


async def test_the_first_requests_after_a_database_restart_succeed(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """An idle server's sessions end with the database: its next reads reconnect, never a 503."""
    async with open_journal(postgres_url) as journal, open_runtime(journal=journal) as runtime:
        client = create_app(runtime).test_client()
        body = {"workflow": SIGN_ONLY}
        first = await client.post("/workflows/execute", json=body)
        assert first.status_code == 202
        execution_id = (await first.get_json())["execution_id"]
        assert (await client.get("/executions")).status_code == 200
        assert (await client.get(f"/executions/{execution_id}")).status_code == 200
        postgres_server.stop("fast")
        postgres_server.start()
        listed = await client.get("/executions")
        assert listed.status_code == 200, await listed.get_data(as_text=True)
        shown = await client.get(f"/executions/{execution_id}")
        assert shown.status_code == 200, await shown.get_data(as_text=True)
        cancelled = await client.post(f"/executions/{execution_id}/cancel", json={})
        assert cancelled.status_code < 500, await cancelled.get_data(as_text=True)
        again = await client.post("/workflows/execute", json=body)
        assert again.status_code == 202, await again.get_data(as_text=True)


async def test_health_asks_the_database_and_says_when_it_is_unreachable(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Database down: 503, `journal: "unreachable: ..."` without the password; back: ok again."""
    monkeypatch.setattr(_journal_health, "CHECK_EVERY", 0.0)
    with_password = postgres_url.replace("postgres@", "postgres:hunter2@")
    async with open_journal(with_password) as journal, open_runtime(journal=journal) as runtime:
        client = create_app(runtime).test_client()
        healthy = await client.get("/health")
        assert healthy.status_code == 200
        assert (await healthy.get_json())["journal"] == "ok"
        postgres_server.stop("fast")
        try:
            down = await client.get("/health")
            document = await down.get_json()
        finally:
            postgres_server.start()
        assert down.status_code == 503
        assert document["status"] == "degraded"
        assert document["journal"].startswith("unreachable: cannot reach the journal database")
        assert document["reason"] in document["journal"]
        assert "hunter2" not in await down.get_data(as_text=True)
        back = await client.get("/health")
        assert back.status_code == 200
        assert (await back.get_json())["journal"] == "ok"


async def test_health_asks_the_database_at_most_once_a_second(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Load balancers may poll `/health` often: the database is asked once per second."""
    health = _journal_health.JournalHealth()
    async with open_journal(None) as journal:
        asked: list[float] = []

        async def counted(within: float) -> str | None:
            asked.append(within)
            return None if len(asked) == 1 else "down"

        assert await journal.unreachable(1.0) is None  # a local journal is always reachable
        journal.unreachable = counted  # type: ignore[method-assign]
        for _ in range(3):
            assert await health.unreachable(journal) is None
        assert asked == [_journal_health.CHECK_WITHIN]
        await trio.sleep(_journal_health.CHECK_EVERY)
        assert await health.unreachable(journal) == "down"
        assert len(asked) == 2


EXAMPLE_CLIENT = Path(__file__).resolve().parents[2] / "examples" / "websocket_client.py"


async def test_a_database_restart_closes_event_sockets_1013_and_the_example_retries_503(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Down: open sockets close 1013 (try again later), handshakes get 503, which
    examples/websocket_client.py retries with back-off; back up, it follows to the end."""
    async with (
        open_journal(postgres_url) as journal,
        open_runtime(journal=journal) as runtime,
        open_journal(postgres_url) as other,
        serving(runtime) as client,
    ):
        # Queued for the workers (none here): the socket tails it from the journal.
        execution_id = (await runtime.submit(SIGN_ONLY)).execution_id
        base = str(client.base_url).rstrip("/")
        events_url = f"{base.replace('http', 'ws', 1)}/executions/{execution_id}/events"
        parts = urlsplit(events_url)
        stream = await trio.open_tcp_stream("127.0.0.1", parts.port or 80)
        # Our own stream, closed here: trio-websocket leaves it open when the server closes.
        async with stream, trio.open_nursery() as nursery:
            socket = await trio_websocket.wrap_client_stream(
                nursery, stream, parts.netloc, parts.path
            )
            await trio.to_thread.run_sync(postgres_server.stop, "fast")
            try:
                with trio.fail_after(20), pytest.raises(trio_websocket.ConnectionClosed) as closed:
                    await socket.get_message()
            except BaseException:
                await trio.to_thread.run_sync(postgres_server.start)
                raise
            finally:
                await socket.aclose()
        try:
            reason = closed.value.reason
            assert reason is not None
            assert (reason.code, reason.reason) == (
                1013,
                "the journal is unavailable; reconnect with after=0",
            )
            process = await trio.lowlevel.open_process(
                [sys.executable, str(EXAMPLE_CLIENT), base, "--follow", execution_id],
                stdout=subprocess.PIPE,
            )
            assert process.stdout is not None
            printed = b""
            with trio.fail_after(20):
                while b"refused with 503; trying again" not in printed:
                    printed += await process.stdout.receive_some()
        finally:
            await trio.to_thread.run_sync(postgres_server.start)
        started = "2025-01-01T00:00:00.000Z"
        await other.append(Event(execution_id, 1, started, 0.0, "execution.started"))
        await other.append(
            Event(execution_id, 2, started, 0.1, "execution.succeeded", data={"output": 7})
        )
        await other.flush()
        with trio.fail_after(30):
            while chunk := await process.stdout.receive_some():
                printed += chunk
            assert await process.wait() == 0, printed.decode()
    lines = printed.decode().splitlines()
    assert lines[-2:] == ["closed: 1000 execution.succeeded", "output: 7"]
