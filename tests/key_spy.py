"""A key spy for tests: a tiny HTTP server on loopback recording the credentials each request sent.

The fakes (`FakeAnthropic`, `FakeOpenAI`) never keep credentials; this server keeps exactly
them (`x-api-key`, `authorization`, `api-key`), so a test can prove which key reached which host.
Each request is answered `status` with `body` (a 500 API error by default, which both SDKs read
as a retryable error) or, in `garbage` mode, with a 200 whose body is `body` as it is.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

CREDENTIAL_HEADERS = ("x-api-key", "authorization", "api-key")
API_ERROR = b'{"type":"error","error":{"type":"api_error","message":"spy"}}'


@attrs.define
class KeySpy:
    """What the spy saw: one dict of credential headers per request (empty: none was sent)."""

    status: int = 500
    content_type: str = "application/json"
    body: bytes = API_ERROR
    seen: list[dict[str, str]] = attrs.Factory(list)
    requested: trio.Event = attrs.Factory(trio.Event)
    """Set once the first request's credentials are recorded."""

    def sent(self, secret: str) -> bool:
        """Whether any request carried `secret` in a credential header."""
        return any(secret in value for headers in self.seen for value in headers.values())

    async def _answer(self, stream: trio.SocketStream) -> None:
        data = b""
        async with stream:
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[1:]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines)
            }
            length = int(headers.get("content-length", "0"))
            while len(rest) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                rest += chunk
            self.seen.append({k: v for k, v in headers.items() if k in CREDENTIAL_HEADERS})
            self.requested.set()
            reason = b"OK" if self.status == 200 else b"Error"
            await stream.send_all(
                b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s"
                % (self.status, reason, self.content_type.encode(), len(self.body), self.body)
            )

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve on a free loopback port for the block; yield its base URL."""
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, self._answer, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                nursery.cancel_scope.cancel()
