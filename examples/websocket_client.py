"""Start a workflow on an `orchestr8 serve` and follow its events live over the WebSocket.

    orchestr8 serve --port 8080 &
    python examples/websocket_client.py http://127.0.0.1:8080 examples/hello.json name=Ada
    python examples/websocket_client.py http://127.0.0.1:8080 --follow EXECUTION_ID

It prints one line per event. When the server closes the socket with 1001 (shutting down) or 1013
(this client fell behind, or the server's journal cannot be read right now), it reconnects with
`after=<last seq>`, so no event is missed or shown twice. A handshake refused with 503 (the journal
is unavailable, e.g. its database restarts) is tried again after 0.5 s, then twice as long each
time up to 5 s, at most 10 times in a row. It exits 0 when the execution succeeded, 1 otherwise.
With `ORCHESTR8_API_KEY` set, it sends the key as `Authorization: Bearer <key>`, on the WebSocket
handshake too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
import trio_websocket

RECONNECT_CODES = {1001, 1013}
RETRY_STATUS = 503
FIRST_DELAY, LONGEST_DELAY, MOST_TRIES = 0.5, 5.0, 10


def auth_headers() -> list[tuple[str, str]]:
    """The Authorization header, when an API key is configured."""
    key = os.environ.get("ORCHESTR8_API_KEY")
    return [("Authorization", f"Bearer {key}")] if key else []


async def start(base_url: str, workflow_file: str, pairs: list[str]) -> str:
    """POST the workflow with `name=value` inputs; return the new execution's id."""
    workflow = json.loads(await trio.Path(workflow_file).read_text(encoding="utf-8"))
    inputs = dict(pair.split("=", 1) for pair in pairs)
    async with httpx.AsyncClient(base_url=base_url, headers=dict(auth_headers())) as http:
        response = await http.post(
            "/workflows/execute", json={"workflow": workflow, "inputs": inputs}
        )
    if response.status_code != 202:
        problem = response.json()
        details = [f"  {error['path']}: {error['message']}" for error in problem.get("errors", [])]
        raise SystemExit("\n".join([f"{problem['title']}: {problem['detail']}", *details]))
    return str(response.json()["execution_id"])


@asynccontextmanager
async def event_socket(url: str) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """Open a WebSocket, closing its TCP stream however the connection ends.

    (trio-websocket 0.12 leaves the stream open when the server closes first.)
    """
    parts = urlsplit(url)
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = [(name.encode(), value.encode()) for name, value in auth_headers()]
    stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 80)
    async with stream, trio.open_nursery() as nursery:
        socket = await trio_websocket.wrap_client_stream(
            nursery,
            stream,
            parts.netloc,
            resource,
            extra_headers=headers,
            max_message_size=16 * 1024 * 1024,
        )
        try:
            yield socket
        finally:
            await socket.aclose()


def rejection(error: BaseException) -> trio_websocket.ConnectionRejected | None:
    """The refused handshake inside `error` (alone or in exception groups), or None."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error if isinstance(error, trio_websocket.ConnectionRejected) else None


async def follow(base_url: str, execution_id: str) -> dict[str, Any]:
    """Print the execution's events until it ends; return the last event."""
    ws_url = base_url.replace("http", "ws", 1) + f"/executions/{execution_id}/events"
    last_seq = 0
    last: dict[str, Any] = {}
    delay, tries = FIRST_DELAY, 0
    while True:
        try:
            async with event_socket(f"{ws_url}?after={last_seq}") as socket:
                delay, tries = FIRST_DELAY, 0
                try:
                    while True:
                        event = json.loads(await socket.get_message())
                        last_seq, last = event["seq"], event
                        step = f" {event['step_id']}" if "step_id" in event else ""
                        print(f"{event['seq']:>4} {event['elapsed']:8.3f}s {event['type']}{step}")
                except trio_websocket.ConnectionClosed as closed:
                    reason = closed.reason
        except BaseException as error:
            refused = rejection(error)
            if refused is None or refused.status_code != RETRY_STATUS or tries >= MOST_TRIES:
                raise
            tries += 1
            print(f"refused with {RETRY_STATUS}; trying again in {delay:g} s", flush=True)
            await trio.sleep(delay)
            delay = min(delay * 2, LONGEST_DELAY)
            continue
        if reason.code not in RECONNECT_CODES:
            print(f"closed: {reason.code} {reason.reason or ''}".rstrip())
            return last
        print(f"reconnecting after seq {last_seq} ({reason.reason})", flush=True)


async def main(argv: list[str]) -> int:
    """Start (or pick) an execution, follow it, and return the exit code."""
    if len(argv) < 2:
        print(__doc__)
        return 2
    base_url = argv[0].rstrip("/")
    if argv[1] == "--follow":
        execution_id = argv[2]
    else:
        execution_id = await start(base_url, argv[1], argv[2:])
        print(f"execution {execution_id} started")
    try:
        last = await follow(base_url, execution_id)
    except BaseException as error:
        refused = rejection(error)
        if refused is None:
            raise
        print(f"refused: {refused.status_code} {(refused.body or b'').decode()}")
        return 1
    if last.get("type") == "execution.succeeded":
        print("output:", json.dumps(last["data"].get("output")))
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(trio.run(main, sys.argv[1:]))
