"""`FakeAnthropic` over the network: a real HTTP server on a loopback port, for subprocesses.

In-process tests plug the fake in through its `httpx2` transport; a subprocess (the `orchestr8`
CLI under test) can only reach it over HTTP. `serve_on_loopback` runs hypercorn on a free port of
`host` with an ASGI app that hands each request to the fake and sends its answer's chunks, each
after its delay, then stops the server when the block is left.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

from ._anthropic_wire import WireResponse

Respond = Callable[[str, str, Mapping[str, str], bytes], WireResponse]
"""Answers one request: (method, path, headers, body) to the response to send."""

_Scope = Mapping[str, Any]
_Receive = Callable[[], Awaitable[Mapping[str, Any]]]
_Send = Callable[[Mapping[str, Any]], Awaitable[None]]


async def _serve_request(respond: Respond, scope: _Scope, receive: _Receive, send: _Send) -> None:
    """Answer one ASGI connection: lifespan events, or one HTTP request from `respond`."""
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
    response = respond(scope["method"], scope["path"], headers, body)
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(key.encode(), value.encode()) for key, value in response.headers.items()],
        }
    )
    for delay, chunk in response.chunks:
        if delay > 0:
            await trio.sleep(delay)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@asynccontextmanager
async def serve_on_loopback(respond: Respond, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `respond` over HTTP on a free port of `host`; yield the base URL, stop on exit."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{host}:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("orchestr8.testing.fake_anthropic")
    config.graceful_timeout = 1.0
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        app = partial(_serve_request, respond)
        urls: list[str] = await nursery.start(
            partial(serve, app, config, shutdown_trigger=stop.wait)
        )
        try:
            yield urls[0]
        finally:
            stop.set()
