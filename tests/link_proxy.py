"""A TCP proxy on loopback whose link the test cuts and restores: a network failure on demand.

The browser talks to the server through it. `cut()` closes every connection passing through and
stops listening, so the browser sees its WebSocket drop and new connections refused, as if the
server's host vanished; `restore()` listens again on the same port. Threads, not trio: the
browser tests are synchronous.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import attrs


@attrs.define(eq=False)
class LinkProxy:
    """Forwards 127.0.0.1:`port` to `target_port`, until the link is cut."""

    target_port: int
    port: int = 0
    _listener: socket.socket | None = None
    _connections: set[socket.socket] = attrs.Factory(set)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    @property
    def url(self) -> str:
        """The proxy's base URL, used in place of the server's."""
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        """Listen (again) on the proxy's port and forward every connection."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close every connection and stop listening: the link is down."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextmanager
def link_proxy(target_port: int) -> Iterator[LinkProxy]:
    """A proxy to `target_port` on a free loopback port, for the block."""
    proxy = LinkProxy(target_port)
    proxy.restore()
    try:
        yield proxy
    finally:
        proxy.cut()
