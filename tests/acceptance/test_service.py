"""End to end: a real `orchestr8 serve` process, driven with httpx and trio-websocket.

Each server listens on a free loopback port (`--port 0`; the URL is read from its output) with its
own journal, and is stopped with SIGTERM as an operator would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_websocket
from serve_processes import environment, orchestr8_serve

from orchestr8.testing import open_event_socket

KEY = "acceptance-key-7f3a9c"
STEPS = {
    "schema_version": "1.0",
    "name": "three-naps",
    "strategy": "sequential",
    "steps": [
        {"id": f"nap{index}", "agent": "sleep", "input": {"seconds": 0.15}} for index in range(3)
    ],
    "output": {"last": "${steps.nap2.output}"},
}
LONG = {
    "schema_version": "1.0",
    "name": "long",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 60}}],
}


async def receive_until_closed(
    socket: trio_websocket.WebSocketConnection,
) -> tuple[list[dict[str, Any]], trio_websocket.CloseReason]:
    events: list[dict[str, Any]] = []
    with trio.fail_after(15):
        while True:
            try:
                events.append(json.loads(await socket.get_message()))
            except trio_websocket.ConnectionClosed as closed:
                reason = closed.reason
                break
    assert reason is not None, "the socket closed without a close reason"
    return events, reason


async def execute(http: httpx.AsyncClient, workflow: dict[str, Any], **headers: str) -> str:
    response = await http.post("/workflows/execute", json={"workflow": workflow}, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["execution_id"])


async def test_execute_follow_live_events_to_succeeded_then_replay_after_a_seq(
    tmp_path: Path,
) -> None:
    """Execute, follow the live events in order to `execution.succeeded` (1000), replay after 3."""
    async with (
        orchestr8_serve(tmp_path / "journal.db") as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        execution_id = await execute(http, STEPS)
        events_url = f"{server.ws_url}/executions/{execution_id}/events"
        async with open_event_socket(events_url) as socket:
            events, reason = await receive_until_closed(socket)
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert (events[-1]["type"], reason.code) == ("execution.succeeded", 1000)
        detail = (await http.get(f"/executions/{execution_id}")).json()
        assert detail["status"] == "succeeded"
        assert [step["status"] for step in detail["steps"].values()] == ["succeeded"] * 3
        async with open_event_socket(f"{events_url}?after=3") as socket:
            replayed, reason = await receive_until_closed(socket)
        assert replayed == events[3:]
        assert reason.code == 1000


async def test_cancel_a_long_run_and_the_socket_shows_execution_cancelled(
    tmp_path: Path,
) -> None:
    """Cancelling a running execution answers 202; its socket gets `execution.cancelled`."""
    async with (
        orchestr8_serve(tmp_path / "journal.db") as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        execution_id = await execute(http, LONG)
        async with open_event_socket(f"{server.ws_url}/executions/{execution_id}/events") as socket:
            assert json.loads(await socket.get_message())["type"] == "execution.started"
            cancel = await http.post(f"/executions/{execution_id}/cancel")
            assert cancel.status_code == 202
            events, reason = await receive_until_closed(socket)
        assert (events[-1]["type"], reason.code) == ("execution.cancelled", 1000)
        again = await http.post(f"/executions/{execution_id}/cancel")
        assert again.status_code == 409
        assert again.headers["Content-Type"] == "application/problem+json"


async def test_a_restarted_server_on_the_same_journal_shows_earlier_executions(
    tmp_path: Path,
) -> None:
    """SIGTERM cancels running executions and exits 0; a new server on the journal shows all."""
    journal = tmp_path / "journal.db"
    async with orchestr8_serve(journal) as first:
        async with httpx.AsyncClient(base_url=first.url) as http:
            done = await execute(http, STEPS)
            running = await execute(http, LONG)
            async with open_event_socket(f"{first.ws_url}/executions/{done}/events") as socket:
                await receive_until_closed(socket)
        assert await first.stop() == 0
    assert "stopped" in first.stderr.decode()
    async with (
        orchestr8_serve(journal) as second,
        httpx.AsyncClient(base_url=second.url) as http,
    ):
        assert (await http.get(f"/executions/{done}")).json()["status"] == "succeeded"
        assert (await http.get(f"/executions/{running}")).json()["status"] == "cancelled"
        listed = (await http.get("/executions")).json()["items"]
        assert [item["execution_id"] for item in listed] == [running, done]
        async with open_event_socket(f"{second.ws_url}/executions/{done}/events") as socket:
            events, reason = await receive_until_closed(socket)
        assert (events[-1]["type"], reason.code) == ("execution.succeeded", 1000)


async def test_listening_beyond_loopback_without_a_key_exits_4(tmp_path: Path) -> None:
    """`serve --host 0.0.0.0` without an API key refuses to start: exit code 4, clear message."""
    done = await trio.run_process(
        [
            sys.executable,
            "-m",
            "orchestr8",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--journal",
            str(tmp_path / "journal.db"),
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=environment(),
    )
    assert done.returncode == 4
    assert b"without an API key" in done.stderr
    assert b"serving on" not in done.stdout


async def test_the_api_key_guards_http_and_websocket_and_is_never_written(
    tmp_path: Path,
) -> None:
    """With ORCHESTR8_API_KEY set, only `Bearer <key>` gets in; the key is in no output or file."""
    journal = tmp_path / "journal.db"
    auth = {"Authorization": f"Bearer {KEY}"}
    async with (
        orchestr8_serve(journal, env=environment(ORCHESTR8_API_KEY=KEY)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        assert (await http.get("/health")).status_code == 200
        refused = await http.post("/workflows/execute", json={"workflow": STEPS})
        assert refused.status_code == 401
        execution_id = await execute(http, STEPS, **auth)
        events_url = f"{server.ws_url}/executions/{execution_id}/events"
        with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
            async with open_event_socket(events_url):
                pass
        assert rejected.value.status_code == 401
        async with open_event_socket(events_url, headers=list(auth.items())) as socket:
            events, _ = await receive_until_closed(socket)
        assert events[-1]["type"] == "execution.succeeded"
        assert await server.stop() == 0
    written = b"".join(
        [await trio.Path(path).read_bytes() for path in await trio.Path(tmp_path).iterdir()]
    )
    for text in (bytes(server.stdout), bytes(server.stderr), written):
        assert KEY.encode() not in text
