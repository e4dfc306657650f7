"""Serving the API with Hypercorn inside a runtime: URLs, shutdown, the bind rule, the command."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio_websocket

from orchestr8 import Runtime, open_runtime
from orchestr8._errors import InsecureBindError
from orchestr8._journal._journal import open_journal
from orchestr8._web._serve import (
    check_bind,
    is_loopback,
    run_service,
    serve,
)
from orchestr8.testing import open_event_socket

KEY = "serve-test-key-0123456789"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SLEEP = {
    "schema_version": "1.0",
    "name": "nap",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 30}}],
}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with open_runtime(cancel_grace=0.2) as opened:
        yield opened


async def served(nursery: trio.Nursery, runtime: Runtime, stop: trio.Event, **options: Any) -> str:
    """Start `serve` on a free loopback port; return its base URL."""
    urls: list[str] = await nursery.start(
        partial(serve, runtime, port=0, shutdown_trigger=stop.wait, **options)
    )
    return urls[0]


async def receive_until_closed(
    socket: trio_websocket.WebSocketConnection,
) -> tuple[list[dict[str, Any]], trio_websocket.CloseReason]:
    """Read events until the server closes the socket; return them and the close reason."""
    events: list[dict[str, Any]] = []
    while True:
        try:
            events.append(json.loads(await socket.get_message()))
        except trio_websocket.ConnectionClosed as closed:
            reason = closed.reason
            break
    assert reason is not None, "the socket closed without a close reason"
    return events, reason


async def test_serve_reports_its_url_and_port_0_picks_a_free_port(runtime: Runtime) -> None:
    """`nursery.start(serve, port=0)` returns the loopback URL of a port that answers."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await served(nursery, runtime, stop)
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")
        async with httpx.AsyncClient(base_url=url) as http:
            health = await http.get("/health")
        assert health.json()["status"] == "ok"
        stop.set()


async def test_shutdown_cancels_executions_and_their_sockets_see_them_end(
    runtime: Runtime,
) -> None:
    """With cancel_executions, shutdown cancels runs (recorded) and sockets get the end, 1000."""
    stop = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            url = await served(nursery, runtime, stop, cancel_executions=True)
            async with httpx.AsyncClient(base_url=url) as http:
                accepted = (await http.post("/workflows/execute", json={"workflow": SLEEP})).json()
            execution_id = accepted["execution_id"]
            events_url = url.replace("http", "ws", 1) + f"/executions/{execution_id}/events"
            async with open_event_socket(events_url) as socket:
                assert json.loads(await socket.get_message())["type"] == "execution.started"
                stop.set()
                events, reason = await receive_until_closed(socket)
    assert (events[-1]["type"], reason.code) == ("execution.cancelled", 1000)
    assert (await runtime.result(execution_id)).status == "cancelled"


async def test_shutdown_alone_closes_sockets_1001_and_leaves_runs_to_the_runtime(
    runtime: Runtime,
) -> None:
    """Without cancel_executions, open sockets close 1001 `reconnect with after=N`; runs go on."""
    stop = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            url = await served(nursery, runtime, stop)
            handle = await runtime.start(SLEEP)
            events_url = url.replace("http", "ws", 1) + f"/executions/{handle.execution_id}/events"
            async with open_event_socket(events_url) as socket:
                await socket.get_message()
                stop.set()
                events, reason = await receive_until_closed(socket)
    assert reason.code == 1001
    assert reason.reason == f"server shutting down; reconnect with after={1 + len(events)}"
    assert not handle.done
    handle.cancel()


async def test_api_key_is_required_over_http_and_websocket_and_never_logged(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """With a key, requests and handshakes without `Bearer <key>` get 401; logs never hold it."""
    stop = trio.Event()
    caplog.set_level(logging.DEBUG)
    async with trio.open_nursery() as nursery:
        url = await served(nursery, runtime, stop, api_key=KEY)
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/executions")).status_code == 401
            assert (
                await http.get("/executions", headers={"Authorization": "Bearer x"})
            ).status_code == 401
            assert (await http.get("/health")).status_code == 200
            auth = {"Authorization": f"Bearer {KEY}"}
            accepted = await http.post("/workflows/execute", json={"workflow": SLEEP}, headers=auth)
            assert accepted.status_code == 202
        events_url = url.replace("http", "ws", 1) + accepted.headers["Location"] + "/events"
        with pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with open_event_socket(events_url):
                pass
        assert refused.value.status_code == 401
        authorised = [("Authorization", f"Bearer {KEY}")]
        async with open_event_socket(events_url, headers=authorised) as socket:
            assert json.loads(await socket.get_message())["seq"] == 1
        runtime.cancel_all("test over")
        stop.set()
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    """Loopback means `localhost` or a loopback IP; any other name or address is not."""
    assert is_loopback(host) is loopback


def test_binding_beyond_loopback_needs_an_api_key() -> None:
    """A non-loopback host without a key is refused; with a key it is allowed."""
    with pytest.raises(InsecureBindError, match="ORCHESTR8_API_KEY"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", KEY)
    check_bind("127.0.0.1", None)


async def test_serve_refuses_a_non_loopback_bind_without_a_key(runtime: Runtime) -> None:
    """`serve` itself raises InsecureBindError before listening anywhere."""
    with pytest.raises(InsecureBindError):
        await serve(runtime, host="0.0.0.0", port=0)


async def test_run_service_exits_4_for_a_non_loopback_bind_without_a_key(tmp_path: Path) -> None:
    """The command's exit code for a non-loopback bind without a key is 4, with a clear message."""
    err = StringIO()
    code = await run_service(
        host="0.0.0.0", port=0, journal=str(tmp_path / "j.db"), out=StringIO(), err=err
    )
    assert code == 4
    assert "without an API key" in err.getvalue()
    assert not (tmp_path / "j.db").exists()


@pytest.mark.parametrize("journal", ["", "  "])
async def test_run_service_refuses_an_empty_journal_path(journal: str) -> None:
    """`--journal ''` is an error (exit 1), as for `orchestr8 run`, not the default journal."""
    err = StringIO()
    with trio.fail_after(10):  # were the path taken, the service would run until stopped
        code = await run_service(port=0, journal=journal, out=StringIO(), err=err)
    assert (code, err.getvalue()) == (1, "error: --journal: the path is empty\n")


async def test_run_service_exits_1_when_the_port_is_taken(tmp_path: Path) -> None:
    """A port in use is a configuration error (exit 1) with a clear message, not a traceback."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    err = StringIO()
    try:
        code = await run_service(port=port, journal=str(tmp_path / "j.db"), out=StringIO(), err=err)
    finally:
        for listener in listeners:
            await listener.aclose()
    assert code == 1
    assert err.getvalue().startswith(f"error: cannot listen on 127.0.0.1:{port}")


def test_importing_the_serve_command_does_not_import_quart_or_hypercorn() -> None:
    """The command module stays light, so `orchestr8 --help` stays fast."""
    probe = (
        "import sys, orchestr8._web._serve; "
        "print(sorted(m for m in ('quart', 'hypercorn', 'quart_trio') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.strip() == "[]"


async def test_shutdown_does_not_wait_for_idle_keep_alive_connections(runtime: Runtime) -> None:
    """A client holding an idle keep-alive connection does not hold up the shutdown."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await served(nursery, runtime, stop)
        parts = urlsplit(url)
        stream = await trio.open_tcp_stream(parts.hostname or "", parts.port or 80)
        async with stream:
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await stream.receive_some()).startswith(b"HTTP/1.1 200")
            started = trio.current_time()
            stop.set()
            with trio.fail_after(3):
                while await stream.receive_some():
                    pass
    assert trio.current_time() - started < 2.5


async def test_the_websocket_client_example_follows_a_workflow_to_its_output(
    runtime: Runtime,
) -> None:
    """examples/websocket_client.py starts hello.json, prints its events and output, exits 0."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await served(nursery, runtime, stop)
        done = await trio.run_process(
            [
                sys.executable,
                str(EXAMPLES / "websocket_client.py"),
                url,
                str(EXAMPLES / "hello.json"),
                "name=Ada",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        stop.set()
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 0, done.stderr.decode()
    assert lines[0].startswith("execution ")
    assert lines[1].endswith("execution.started")
    assert lines[-2:] == ["closed: 1000 execution.succeeded", 'output: {"message": "Hello, Ada!"}']


class Announcements(StringIO):
    """The service's `out`: `ready` is set once it has printed the URL it serves on."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = trio.Event()

    def flush(self) -> None:
        """Flush, and note when the URL is out."""
        super().flush()
        if "serving on " in self.getvalue():
            self.ready.set()


async def test_sigterm_after_a_journal_failure_still_stops_in_order_with_exit_0(
    tmp_path: Path,
) -> None:
    """A service whose journal failed says so on /health and, asked to stop, exits 0."""
    path = tmp_path / "journal.db"
    async with open_journal(path):
        pass
    with sqlite3.connect(path) as connection:
        # A real write error the journal cannot foresee, as a full disk would give.
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events"
            " BEGIN SELECT RAISE(FAIL, 'no space left for events'); END"
        )
    connection.close()
    out, err = Announcements(), StringIO()
    codes: list[int] = []
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            codes.append(await run_service(port=0, journal=str(path), out=out, err=err))

        nursery.start_soon(run)
        await out.ready.wait()
        url = out.getvalue().split("serving on ")[1].strip()
        async with httpx.AsyncClient(base_url=url) as http:
            refused = await http.post(
                "/workflows/execute",
                json={
                    "workflow": {
                        "schema_version": "1.0",
                        "name": "w",
                        "steps": [{"id": "a", "agent": "echo"}],
                    }
                },
            )
            health = await http.get("/health")
        assert refused.status_code == 503
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        assert "no space left for events" in health.json()["reason"]
        os.kill(os.getpid(), signal.SIGTERM)
    assert codes == [0]
    assert "Traceback" not in err.getvalue()
    assert err.getvalue().endswith("stay resumable\n") or err.getvalue().endswith("saved\n")


def test_sigterm_does_not_wait_forever_for_an_agent_that_ignores_cancel(tmp_path: Path) -> None:
    """`serve`, SIGTERM while a shielded agent runs: journaled cancelled, exit 0 after the grace."""
    (tmp_path / "shielded.py").write_text(
        "import sys, trio\n\nasync def f(input):\n"
        "    print('agent started', file=sys.stderr, flush=True)\n"
        "    with trio.CancelScope(shield=True):\n        await trio.sleep(120)\n"
    )
    step = {"id": "a", "agent": {"id": "python", "config": {"callable": "shielded:f"}}}
    environment = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), str(EXAMPLES.parent), *filter(None, [environment.get("PYTHONPATH")])]
    )
    command = [sys.executable, "-m", "orchestr8", "serve", "--port", "0", "--journal", "j.db"]
    with subprocess.Popen(
        [*command, "--cancel-grace", "0.5"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split("serving on ")[1].strip()
            workflow = {"schema_version": "1.0", "name": "sh", "steps": [step]}
            started = httpx.post(f"{url}/workflows/execute", json={"workflow": workflow})
            assert started.status_code == 202, started.text
            assert process.stderr is not None
            while "agent started" not in (line := process.stderr.readline()):
                assert line, "the server ended before the agent started"
            process.send_signal(signal.SIGTERM)
            # Bounded only so that a hang fails: the agent ignores cancellation for 120 s.
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, stderr
    assert "exiting without waiting for them" in stderr
    assert stderr.endswith("the journal is saved\n")
    with sqlite3.connect(f"file:{tmp_path / 'j.db'}?mode=ro", uri=True) as connection:
        [(last,)] = connection.execute(
            "SELECT type FROM events WHERE seq = (SELECT MAX(seq) FROM events)"
        ).fetchall()
    connection.close()
    assert last == "execution.cancelled"
