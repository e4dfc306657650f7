"""A WebSocket client for following an execution's events in tests, that never leaks its socket.

trio-websocket 0.12 leaves the TCP stream open when the server closes first or refuses the
handshake. `open_event_socket` is the client `orchestr8 follow --url` uses, which owns the stream
itself and always closes it, and raises a refused handshake as the bare
`trio_websocket.HandshakeError` rather than inside an ExceptionGroup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio_websocket

from .._cli._following import open_client_socket


@asynccontextmanager
async def open_event_socket(
    url: str, *, headers: Sequence[tuple[str, str]] = ()
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """Connect to `url` (e.g. `ws://…/executions/ID/events?after=0`) for the block's duration."""
    async with open_client_socket(url, headers) as socket:
        yield socket
