"""End to end: two `orchestr8 serve` processes on one PostgreSQL journal, and a third that runs.

A real `orchestr8 run --journal URL` runs a workflow of short naps then a long one; the servers
never run it, they read it from the database. A WebSocket client on the second server gets every
event in seq order (its server tails the journal, woken by the writer's NOTIFY), a cancel through
the first server's REST stops the run, and both servers list it and answer the same document.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
import trio_websocket
from cli_processes import environment
from serve_processes import drain, orchestr8_serve
from worker_processes import workers

from orchestr8.testing import open_event_socket

NAPS = 6
WORKFLOW = {
    "schema_version": "1.0",
    "name": "naps-then-long",
    "strategy": "sequential",
    "steps": [
        *(
            {"id": f"nap{index}", "agent": "sleep", "input": {"seconds": 0.1}}
            for index in range(NAPS)
        ),
        {"id": "long", "agent": "sleep", "input": {"seconds": 600}},
    ],
}


async def test_a_socket_on_one_server_streams_what_a_third_process_runs(
    postgres_url: str, tmp_path: Path
) -> None:
    """Server 2 streams every event, in order, of a run a third process runs; both list it
    and answer the same document, the events the socket got are the journal's."""
    short = {**WORKFLOW, "steps": WORKFLOW["steps"][:NAPS]}
    async with (
        orchestr8_serve(postgres_url) as first,
        orchestr8_serve(postgres_url) as second,
        httpx.AsyncClient(base_url=first.url) as one,
        httpx.AsyncClient(base_url=second.url) as two,
        _running(tmp_path, postgres_url, short) as (run, said, execution_id),
    ):
        url = f"{second.ws_url}/executions/{execution_id}/events"
        events: list[dict[str, Any]] = []
        async with open_event_socket(url) as socket:
            with trio.fail_after(30):
                closed = await _receive_until_closed(socket, events)
        with trio.fail_after(30):
            assert await run.wait() == 0, said.decode()
        assert (closed.code, closed.reason) == (1000, "execution.succeeded")
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert [event["step_id"] for event in events if event["type"] == "step.succeeded"] == [
            f"nap{index}" for index in range(NAPS)
        ]
        journal = (await one.get(f"/executions/{execution_id}/journal")).json()
        assert journal["events"] == events
        documents = [(await client.get(f"/executions/{execution_id}")) for client in (one, two)]
        assert documents[0].status_code == 200
        assert documents[0].content == documents[1].content
        assert documents[0].json()["status"] == "succeeded"
        for client in (one, two):
            listed = (await client.get("/executions")).json()["items"]
            assert [item["execution_id"] for item in listed] == [execution_id]


async def test_a_cancel_through_one_server_stops_what_a_third_process_runs(
    postgres_url: str, tmp_path: Path
) -> None:
    """Server 1's cancel is a request the running process applies; server 2's socket sees it."""
    async with (
        orchestr8_serve(postgres_url) as first,
        orchestr8_serve(postgres_url) as second,
        httpx.AsyncClient(base_url=first.url) as one,
        _running(tmp_path, postgres_url, WORKFLOW) as (run, said, execution_id),
    ):
        url = f"{second.ws_url}/executions/{execution_id}/events"
        events: list[dict[str, Any]] = []
        async with open_event_socket(url) as socket:
            with trio.fail_after(30):
                while not _succeeded(events, f"nap{NAPS - 1}"):
                    events.append(json.loads(await socket.get_message()))
                cancel = await one.post(
                    f"/executions/{execution_id}/cancel", json={"reason": "enough"}
                )
                assert cancel.status_code == 202, cancel.text
                assert "request_id" in cancel.json()
                closed = await _receive_until_closed(socket, events)
        with trio.fail_after(30):
            assert await run.wait() == 130, said.decode()
        assert (closed.code, closed.reason) == (1000, "execution.cancelled")
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert events[-1]["data"]["reason"] == "enough"


@asynccontextmanager
async def _running(
    directory: Path, url: str, workflow: dict[str, Any]
) -> AsyncIterator[tuple[trio.Process, bytearray, str]]:
    """`orchestr8 run --journal URL` of `workflow`, once it started: the process, what it
    wrote on stderr (kept up to date), the execution id."""
    path = directory / "workflow.json"
    path.write_text(json.dumps(workflow))
    run = await trio.lowlevel.open_process(
        [
            *(sys.executable, "-m", "orchestr8", "run", str(path)),
            *("--journal", url, "--cancel-grace", "0.5"),
        ],
        cwd=directory,
        env=environment(directory),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    said = bytearray()
    try:
        async with trio.open_nursery() as nursery:
            execution_id = await _started(run, said)
            nursery.start_soon(drain, run.stderr, said)
            yield run, said, execution_id
            nursery.cancel_scope.cancel()
    finally:
        if run.returncode is None:
            run.kill()
        await run.wait()


async def _started(run: trio.Process, said: bytearray) -> str:
    """The execution id `orchestr8 run` prints on stderr once it has started."""
    assert run.stderr is not None
    with trio.fail_after(30):
        while (match := re.search(rb"execution ([0-9a-f]{32}) started", said)) is None:
            chunk = await run.stderr.receive_some()
            assert chunk, f"run exited: {said.decode()}"
            said += chunk
    return match.group(1).decode()


def _succeeded(events: list[dict[str, Any]], step_id: str) -> bool:
    return any(
        event["type"] == "step.succeeded" and event.get("step_id") == step_id for event in events
    )


async def _receive_until_closed(
    socket: trio_websocket.WebSocketConnection, events: list[dict[str, Any]]
) -> trio_websocket.CloseReason:
    while True:
        try:
            events.append(json.loads(await socket.get_message()))
        except trio_websocket.ConnectionClosed as closed:
            reason = closed.reason
            break
    assert reason is not None, "the socket closed without a close reason"
    return reason


async def test_an_execution_queued_through_one_server_runs_on_a_worker_and_streams_on_another(
    postgres_url: str, tmp_path: Path
) -> None:
    """POST on server 1 queues it (202 pending); a worker runs it; server 2 streams every event."""
    short = {**WORKFLOW, "steps": WORKFLOW["steps"][:NAPS]}
    async with (
        orchestr8_serve(postgres_url) as first,
        orchestr8_serve(postgres_url) as second,
        httpx.AsyncClient(base_url=first.url) as one,
        httpx.AsyncClient(base_url=second.url) as two,
    ):
        response = await one.post("/workflows/execute", json={"workflow": short})
        assert response.status_code == 202, response.text
        queued = response.json()
        assert queued["status"] == "pending"
        execution_id = queued["execution_id"]
        events: list[dict[str, Any]] = []
        with workers(tmp_path, postgres_url, 1):
            url = f"{second.ws_url}/executions/{execution_id}/events"
            async with open_event_socket(url) as socket:
                with trio.fail_after(30):
                    closed = await _receive_until_closed(socket, events)
        assert (closed.code, closed.reason) == (1000, "execution.succeeded")
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        documents = [(await client.get(f"/executions/{execution_id}")) for client in (one, two)]
        assert documents[0].content == documents[1].content
        assert documents[0].json()["status"] == "succeeded"
