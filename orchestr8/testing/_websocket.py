"""A WebSocket client for following an execution's events in tests, that never leaks its socket.

trio-websocket 0.12 leaves the TCP stream open when the server closes first or refuses the
handshake; `open_event_socket` owns the stream itself and always closes it, and raises a refused
handshake as the bare `trio_websocket.HandshakeError` rather than inside an ExceptionGroup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio
import trio_websocket


@asynccontextmanager
async def open_event_socket(
    url: str, *, headers: Sequence[tuple[str, str]] = ()
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """Connect to `url` (e.g. `ws://…/executions/ID/events?after=0`) for the block's duration."""
    parts = urlsplit(url)
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await trio.open_tcp_stream(parts.hostname or "", parts.port or 80)
    try:
        async with stream, trio.open_nursery() as nursery:
            socket = await trio_websocket.wrap_client_stream(
                nursery,
                stream,
                parts.netloc,
                resource,
                extra_headers=[(name.encode(), value.encode()) for name, value in headers],
            )
            try:
                yield socket
            finally:
                await socket.aclose()
    except BaseExceptionGroup as group:
        matched, _ = group.split(trio_websocket.HandshakeError)
        if matched is None:
            raise
        refused: BaseException = matched
        while isinstance(refused, BaseExceptionGroup):
            refused = refused.exceptions[0]
        raise refused from None
