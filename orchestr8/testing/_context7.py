"""A fake of the Context7 REST API for tests: scripted libraries and docs, scripted failures.

`FakeContext7` answers exactly the two calls the research agent makes, the way Context7 does:

- `GET {base}/v2/libs/search?libraryName=NAME&query=Q` → `{"results": [library, ...]}`, the
  scripted libraries whose name or id contains NAME (case-insensitive);
- `GET {base}/v2/context?libraryId=/owner/repo&query=Q&type=txt|json` → the scripted text, or
  `{"codeSnippets": [], "infoSnippets": [{"content": text}]}`; 404 for an unknown library.

A missing parameter is a 400 and, when the fake has an `api_key`, a missing or wrong
`Authorization: Bearer` is a 401, as with the real API. Failures are scripted with `fail`
(a 429 carries `retryAfterSeconds` in its JSON body), every request is recorded in `requests`,
and a request the fake was not scripted for (another path or method) is answered 500 and kept in
`unscripted`: leaving `serve()` then raises `AssertionError`, and the MockTransport raises it at
once, so a test can never pass by accident against an unexpected call.

Use it as a real loopback server (``async with fake.serve() as base_url``) or in process
(``httpx.AsyncClient(transport=fake.transport())`` with `fake.base_url`).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import attrs
import httpx
import trio

if TYPE_CHECKING:
    from hypercorn.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        HTTPResponseStartEvent,
        Scope,
    )

__all__ = ["Context7Request", "FakeContext7", "ScriptedFailure"]

MOCK_BASE_URL: Final = "http://context7.test/api"
_PREFIX: Final = "/api"

_Reply = tuple[int, dict[str, str], bytes]


@attrs.frozen
class Context7Request:
    """One request the fake received: method, path (below the base URL), query and headers."""

    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    """Header names are lower-case."""

    @property
    def authorization(self) -> str | None:
        """The `Authorization` header, if any."""
        return self.headers.get("authorization")


@attrs.frozen
class ScriptedFailure:
    """A scripted answer that replaces the next matching normal one."""

    status: int
    endpoint: str | None = None
    """`"search"`, `"context"` or `None` for either."""
    retry_after: float | None = None
    """For a 429: the body's `retryAfterSeconds`."""
    retry_after_header: str | None = None
    """A `Retry-After` header to send as well."""
    delay: float = 0.0
    """Seconds (trio clock) to wait before answering: slow upstreams and timeouts."""
    body: Any = None
    """A JSON body replacing the default error body."""


@attrs.define
class _Library:
    id: str
    name: str
    description: str
    total_snippets: int
    trust_score: float
    versions: tuple[str, ...]
    docs: str

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "title": self.name,
            "description": self.description,
            "totalSnippets": self.total_snippets,
            "trustScore": self.trust_score,
            "versions": list(self.versions),
        }


class FakeContext7:
    """A scripted fake of the Context7 API, served on loopback or as an httpx MockTransport."""

    def __init__(self, *, api_key: str | None = None) -> None:
        """Start with no libraries; with `api_key`, require `Authorization: Bearer <api_key>`."""
        self.api_key = api_key
        self.requests: list[Context7Request] = []
        self.unscripted: list[Context7Request] = []
        self._libraries: dict[str, _Library] = {}
        self._failures: deque[ScriptedFailure] = deque()

    def add_library(
        self,
        library_id: str,
        name: str,
        docs: str = "",
        *,
        description: str = "",
        total_snippets: int = 100,
        trust_score: float = 7.0,
        versions: Sequence[str] = (),
    ) -> None:
        """Script a library (id like `/owner/repo`) and the documentation text it returns."""
        self._libraries[library_id] = _Library(
            library_id, name, description, total_snippets, trust_score, tuple(versions), docs
        )

    def fail(
        self,
        status: int,
        *,
        endpoint: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
        retry_after_header: str | None = None,
        delay: float = 0.0,
        body: Any = None,
    ) -> None:
        """Answer the next `times` requests to `endpoint` (or any) with `status` instead."""
        if endpoint not in (None, "search", "context"):
            raise ValueError(f"endpoint must be 'search', 'context' or None, got {endpoint!r}")
        failure = ScriptedFailure(status, endpoint, retry_after, retry_after_header, delay, body)
        self._failures.extend([failure] * times)

    @property
    def base_url(self) -> str:
        """The base URL to use with `transport()` (the loopback server yields its own)."""
        return MOCK_BASE_URL

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering in process; unscripted requests raise AssertionError."""

        async def handler(request: httpx.Request) -> httpx.Response:
            headers = {name.lower(): value for name, value in request.headers.items()}
            seen = len(self.unscripted)
            status, reply_headers, body = await self.respond(
                request.method, request.url.path, request.url.query.decode(), headers
            )
            if len(self.unscripted) > seen:
                raise AssertionError(f"unscripted Context7 request: {request.method} {request.url}")
            return httpx.Response(status, headers=reply_headers, content=body)

        return httpx.MockTransport(handler)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve the fake on a free loopback port; yield its base URL (`http://127.0.0.1:N/api`).

        Raises:
            AssertionError: on exit, when it received requests it was not scripted for.
        """
        import hypercorn.trio
        from hypercorn.config import Config

        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = logging.getLogger("orchestr8.testing.context7")
        config.graceful_timeout = 1.0
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            urls: list[str] = await nursery.start(
                partial(hypercorn.trio.serve, self._asgi, config, shutdown_trigger=stop.wait)
            )
            try:
                yield urls[0].rstrip("/") + _PREFIX
            finally:
                stop.set()
        self.assert_scripted()

    def assert_scripted(self) -> None:
        """Raise `AssertionError` naming the requests the fake was not scripted for, if any."""
        if self.unscripted:
            shown = ", ".join(f"{one.method} {one.path}" for one in self.unscripted)
            raise AssertionError(f"unscripted Context7 requests: {shown}")

    async def respond(
        self, method: str, path: str, query: str, headers: Mapping[str, str]
    ) -> _Reply:
        """Record one request and compute the answer: `(status, headers, body)`."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        local = path.removeprefix(_PREFIX)
        recorded = Context7Request(method, local, params, dict(headers))
        self.requests.append(recorded)
        endpoint = {"/v2/libs/search": "search", "/v2/context": "context"}.get(local)
        if method != "GET" or endpoint is None or not path.startswith(_PREFIX):
            self.unscripted.append(recorded)
            return _json(500, {"error": f"unscripted request {method} {path}"})
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return _json(401, {"error": "Unauthorized: invalid or missing API key"})
        failure = self._next_failure(endpoint)
        if failure is not None:
            if failure.delay:
                await trio.sleep(failure.delay)
            return _failure_reply(failure)
        if endpoint == "search":
            return self._search(params)
        return self._context(params)

    def _next_failure(self, endpoint: str) -> ScriptedFailure | None:
        for index, failure in enumerate(self._failures):
            if failure.endpoint in (None, endpoint):
                del self._failures[index]
                return failure
        return None

    def _search(self, params: Mapping[str, str]) -> _Reply:
        name = params.get("libraryName", "").strip().lower()
        if not name or not params.get("query", "").strip():
            return _json(400, {"error": "libraryName and query are required"})
        found = [
            library.document()
            for library in self._libraries.values()
            if name in library.name.lower() or name in library.id.lower()
        ]
        return _json(200, {"results": found})

    def _context(self, params: Mapping[str, str]) -> _Reply:
        library_id = params.get("libraryId", "")
        kind = params.get("type", "txt")
        if not library_id or not params.get("query", "").strip() or kind not in ("txt", "json"):
            return _json(400, {"error": "libraryId and query are required; type is txt or json"})
        library = self._libraries.get(library_id)
        if library is None:
            return _json(404, {"error": f"Library {library_id} not found"})
        if kind == "json":
            return _json(200, {"codeSnippets": [], "infoSnippets": [{"content": library.docs}]})
        return 200, {"content-type": "text/plain; charset=utf-8"}, library.docs.encode()

    async def _asgi(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = bool((await receive()).get("more_body", False))
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        status, reply_headers, body = await self.respond(
            scope["method"], scope["path"], scope["query_string"].decode("latin-1"), headers
        )
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status,
            "headers": [(name.encode(), value.encode()) for name, value in reply_headers.items()],
            "trailers": False,
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _json(status: int, document: Any) -> _Reply:
    return status, {"content-type": "application/json"}, json.dumps(document).encode()


def _failure_reply(failure: ScriptedFailure) -> _Reply:
    body = failure.body
    if body is None:
        body = {
            "error": "Too many requests" if failure.status == 429 else "Upstream failure",
            "status": failure.status,
        }
        if failure.retry_after is not None:
            body["retryAfterSeconds"] = failure.retry_after
    status, headers, content = _json(failure.status, body)
    if failure.retry_after_header is not None:
        headers["retry-after"] = failure.retry_after_header
    return status, headers, content
