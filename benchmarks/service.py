"""Benchmark of the service over loopback: starting executions, health checks, WebSocket events.

Starts `orchestr8 serve` (as `python -m orchestr8._web._command`, the same command) as a subprocess
on a free loopback port with a fresh SQLite journal, then prints one JSON object per line:

- `execute`: `POST /workflows/execute` of a one-step echo workflow with 1, 10 and 50 concurrent
  clients (httpx, keep-alive): executions accepted per second and p50/p99 latency in ms, and the
  p99 without each client's first request (which also opens the connection). Each accepted
  execution is recorded in the journal before the 202 and runs to its end in the server.
- `health`: the same for `GET /health` in the same run: the baseline of the HTTP stack alone.
- `websocket_live`: one client follows an execution that emits its events in a burst (a short
  sleep, then N parallel echo steps): events per second from the first to the last, and how often
  the server closed the socket as too slow (the client then resumes with `after=`).
- `websocket_replay`: the same execution's events again, from the journal, after it finished.
- `secret_inputs`: `execute` with 10 clients of a workflow whose input `api_key` is a secret,
  once with the same key on every request and once with a new key each time (every one is
  redacted while its execution runs, then released): executions per second of both, and their
  ratio, which must stay above 0.9 (the redactor does not grow with the keys it has seen).

    python benchmarks/service.py            # full size, about half a minute on 2 cores
    python benchmarks/service.py --quick    # small sizes, a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
import trio_websocket

ECHO = {
    "schema_version": "1.0",
    "name": "bench-echo",
    "steps": [{"id": "echo", "agent": "echo", "input": "${inputs}"}],
}
KEYED = {
    "schema_version": "1.0",
    "name": "bench-keyed",
    "inputs": {
        "type": "object",
        "properties": {"api_key": {"type": "string"}},
        "required": ["api_key"],
    },
    "steps": [{"id": "echo", "agent": "echo", "input": {"api_key": "${inputs.api_key}"}}],
}


def burst(steps: int) -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "name": "bench-burst",
        "strategy": "dag",
        "steps": [
            {"id": "wait", "agent": "sleep", "input": {"seconds": 0.3}},
            *(
                {"id": f"s{index}", "agent": "echo", "input": index, "depends_on": ["wait"]}
                for index in range(steps)
            ),
        ],
    }


@asynccontextmanager
async def server(journal: Path) -> AsyncIterator[str]:
    """Run the server on a free loopback port until the block ends; yield its URL."""
    env = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_API_KEY"}
    process = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "orchestr8._web._command",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--journal",
            str(journal),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdout is not None
    output = b""
    with trio.fail_after(30):
        while b"\n" not in output:
            chunk = await process.stdout.receive_some()
            if not chunk:
                raise SystemExit("the server did not start")
            output += chunk
    try:
        yield output.decode().split()[-1]
    finally:
        process.terminate()
        with trio.fail_after(30):
            await process.wait()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def load(
    url: str, name: str, clients: int, requests: int, body: Callable[[int], Any] | None = None
) -> dict[str, Any]:
    """Send `requests` requests from `clients` concurrent clients; report rate and latency.

    `body` gives the execute request body of the n-th request (default: the echo workflow).
    """
    latencies: list[float] = []
    warm: list[float] = []
    errors = 0
    per_client = requests // clients
    sent = itertools.count()

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for index in range(per_client):
                started = time.perf_counter()
                if name == "execute":
                    number = next(sent)
                    document = (
                        body(number)
                        if body is not None
                        else {"workflow": ECHO, "inputs": {"n": index}}
                    )
                    response = await http.post("/workflows/execute", json=document)
                    ok = response.status_code == 202
                else:
                    response = await http.get("/health")
                    ok = response.status_code == 200
                latencies.append(time.perf_counter() - started)
                if index:
                    warm.append(latencies[-1])
                errors += not ok

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
    elapsed = time.perf_counter() - started
    return {
        "benchmark": name,
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        # Without each client's first request, which also opens its connection.
        "p99_ms_open_connection": round(percentile(warm or latencies, 0.99) * 1000, 2),
    }


@asynccontextmanager
async def event_socket(url: str) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A WebSocket whose TCP stream is closed however it ends (trio-websocket 0.12 may leak it)."""
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 80)
    async with stream, trio.open_nursery() as nursery:
        socket = await trio_websocket.wrap_client_stream(
            nursery,
            stream,
            parts.netloc,
            f"{parts.path}?{parts.query}",
            message_queue_size=1024,
        )
        try:
            yield socket
        finally:
            await socket.aclose()


async def follow(ws_url: str, execution_id: str) -> tuple[int, float, int]:
    """Receive every event of the execution; return (events, seconds, reconnects).

    Events and seconds are counted from the end of the `wait` step, when the burst begins.
    """
    last_seq, reconnects = 0, 0
    first = last = 0.0
    count = 0
    while True:
        async with event_socket(
            f"{ws_url}/executions/{execution_id}/events?after={last_seq}"
        ) as socket:
            try:
                while True:
                    event = json.loads(await socket.get_message())
                    last = time.perf_counter()
                    if first:
                        count += 1
                    elif event["type"] == "step.succeeded" and event.get("step_id") == "wait":
                        first = last
                    last_seq = event["seq"]
            except trio_websocket.ConnectionClosed as closed:
                code = closed.reason.code
        if code != 1013:
            return count, last - first, reconnects
        reconnects += 1


async def websocket(url: str, steps: int) -> list[dict[str, Any]]:
    ws_url = url.replace("http", "ws", 1)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post("/workflows/execute", json={"workflow": burst(steps)})
        execution_id = response.json()["execution_id"]
    live, seconds, reconnects = await follow(ws_url, execution_id)
    replayed, replay_seconds, _ = await follow(ws_url, execution_id)
    return [
        {
            "benchmark": "websocket_live",
            "steps": steps,
            "events": live,
            "reconnects": reconnects,
            "per_second": round(live / max(seconds, 1e-9), 1),
        },
        {
            "benchmark": "websocket_replay",
            "steps": steps,
            "events": replayed,
            "per_second": round(replayed / max(replay_seconds, 1e-9), 1),
        },
    ]


async def secret_inputs(url: str, requests: int) -> dict[str, Any]:
    """Executions per second with one `api_key` for all requests, then a new one per request."""

    def constant(number: int) -> Any:
        return {"workflow": KEYED, "inputs": {"api_key": "sk-bench-constant-key"}}

    def distinct(number: int) -> Any:
        return {"workflow": KEYED, "inputs": {"api_key": f"sk-bench-distinct-{number:08d}"}}

    await load(url, "execute", 10, 100, constant)  # warm up
    same = await load(url, "execute", 10, requests, constant)
    new = await load(url, "execute", 10, requests, distinct)
    return {
        "benchmark": "secret_inputs",
        "clients": 10,
        "requests": requests,
        "errors": same["errors"] + new["errors"],
        "constant_per_second": same["per_second"],
        "distinct_per_second": new["per_second"],
        "distinct_vs_constant": round(new["per_second"] / same["per_second"], 3),
    }


async def main(quick: bool) -> None:
    requests = 100 if quick else 1000
    with tempfile.TemporaryDirectory() as directory:
        async with server(Path(directory) / "journal.db") as url:
            for name in ("health", "execute"):
                await load(url, name, 1, 20)  # warm up
            for clients in (1, 10, 50):
                for name in ("health", "execute"):
                    count = max(clients, (requests // 3 if clients == 1 else requests))
                    print(json.dumps(await load(url, name, clients, count)), flush=True)
            for line in await websocket(url, 100 if quick else 1000):
                print(json.dumps(line), flush=True)
            print(json.dumps(await secret_inputs(url, 300 if quick else 10_000)), flush=True)
    print(
        json.dumps(
            {
                "benchmark": "environment",
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "note": "one run over loopback; the server and the clients share the CPUs",
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    trio.run(main, parser.parse_args().quick)
