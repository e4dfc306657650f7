"""The client lease both providers use: one SDK client shared by its holders, closed after them.

A provider makes its client lazily on the first `hold()` and keeps it while any call or holder
is inside a `hold()` block; when the last one leaves, the client is dropped and closed, shielded
from cancellation and bounded by a timeout, so a cancelled run still releases its connections and
no socket outlives the runs that opened it. The next `hold()` makes a fresh client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, Protocol, TypeVar

import trio

__all__ = ["CLOSE_TIMEOUT", "ClientLease", "ClosableClient"]

CLOSE_TIMEOUT = 5.0
"""Seconds a released client gets to close its connections before it is abandoned."""


class ClosableClient(Protocol):
    """What a lease needs of an SDK client: an asynchronous `close()`."""

    async def close(self) -> None:
        """Close the client's connections."""


ClientT = TypeVar("ClientT", bound=ClosableClient)


class ClientLease(Generic[ClientT]):
    """Shares one lazily made client among its holders and closes it when the last one ends."""

    def __init__(self, make_client: Callable[[], ClientT]) -> None:
        """Remember how to make the client; nothing is made until the first `hold()`."""
        self._make_client = make_client
        self._client: ClientT | None = None
        self._users = 0

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[ClientT]:
        """Yield the shared client (made now if there is none); closed when the last holder ends.

        Raises:
            Whatever `make_client` raises (a missing package or API key), before anything is held.
        """
        if self._client is None:
            self._client = self._make_client()
        client = self._client
        self._users += 1
        try:
            yield client
        finally:
            self._users -= 1
            if self._users == 0 and self._client is client:
                self._client = None
                # Shielded and bounded, so a cancelled run still releases its connections.
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    await client.close()
