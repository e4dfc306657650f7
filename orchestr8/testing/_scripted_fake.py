"""The machinery `FakeAnthropic` and `FakeOpenAI` share: the script, the record, the checks.

Each fake keeps its own wire format, request class and scripting methods; this base holds what
is the same for both: the queue of scripted replies, the requests recorded without their
credentials, the unexpected requests remembered for `assert_all_used()` (also called when a
``with fake:`` block ends normally), and the in-process `httpx2` transport whose response
bodies arrive after their scripted delays on the trio clock.
"""

from __future__ import annotations

import itertools
import json
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import httpx2
import trio

from ._anthropic_wire import Chunks, WireResponse

__all__ = ["DelayedStream", "ScriptedFake"]


class _Labelled(Protocol):
    """A scripted reply: its label names it when it is left unused."""

    @property
    def label(self) -> str:
        """What the reply is, for failure messages."""
        ...


class _Described(Protocol):
    """A recorded request: it describes itself for failure messages."""

    def describe(self) -> str:
        """Method, path, model and last message."""
        ...


ReplyT = TypeVar("ReplyT", bound=_Labelled)
RequestT = TypeVar("RequestT", bound=_Described)

RequestFactory = Callable[[str, str, Mapping[str, str], Any, bool], RequestT]
"""Builds a fake's request record from method, path, headers, parsed JSON, has_credentials."""


class DelayedStream(httpx2.AsyncByteStream):
    """A response body whose chunks arrive after their delays (trio clock)."""

    def __init__(self, chunks: Chunks) -> None:
        """Send `chunks`, each ``(delay, bytes)``, in order."""
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield each chunk once its delay has passed."""
        for delay, chunk in self._chunks:
            if delay > 0:
                await trio.sleep(delay)
            yield chunk


class ScriptedFake(ABC, Generic[ReplyT, RequestT]):
    """The base of the scripted API fakes: replies in order, requests recorded, script checked."""

    def __init__(
        self,
        *,
        name: str,
        chunk_size: int,
        delay: float,
        credential_headers: frozenset[str],
        request_factory: RequestFactory[RequestT],
    ) -> None:
        """Check and keep the streaming options; `name` starts every failure message."""
        if chunk_size < 1 or not (math.isfinite(delay) and delay >= 0):
            raise ValueError("chunk_size must be >= 1 and delay a finite number >= 0")
        self.chunk_size = chunk_size
        self.delay = delay
        self.requests: list[RequestT] = []
        """Every request received, in order."""
        self.unexpected: list[str] = []
        """A description of every request the script did not cover."""
        self._name = name
        self._credential_headers = credential_headers
        self._request_factory = request_factory
        self._replies: deque[ReplyT] = deque()
        self._ids = itertools.count(1)
        self._tool_ids = itertools.count(1)
        self._tokens_used = 0

    # -- checking -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many scripted replies no request has taken yet."""
        return len(self._replies)

    def assert_all_used(self) -> None:
        """Fail unless every request was scripted and every scripted reply was used.

        Raises:
            AssertionError: naming each unexpected request and each unused reply.
        """
        problems = [f"unexpected request {text}" for text in self.unexpected]
        problems += [f"scripted reply never requested: {reply.label}" for reply in self._replies]
        if problems:
            raise AssertionError(f"{self._name}: " + "; ".join(problems))

    def __enter__(self) -> Self:
        """Use the fake for a block; leaving it normally calls `assert_all_used`."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Check the script was followed, unless the block already failed."""
        if exc_type is None:
            self.assert_all_used()

    # -- answering ------------------------------------------------------------------------------

    def _record(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> RequestT:
        """Record one request: lower-case headers without credentials, the body parsed if JSON."""
        lowered = {key.lower(): value for key, value in headers.items()}
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = self._request_factory(
            method.upper(),
            path,
            {k: v for k, v in lowered.items() if k not in self._credential_headers},
            parsed,
            bool(self._credential_headers & lowered.keys()),
        )
        self.requests.append(request)
        return request

    def _unexpected_request(self, request: RequestT, problem: str) -> str:
        """Remember the latest request as one the script did not cover; return the message."""
        text = f"#{len(self.requests)} {request.describe()}: {problem}"
        self.unexpected.append(text)
        return f"{self._name}: unexpected request {text}"

    @abstractmethod
    def _respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        """Record one request and build the answer the script holds for it (per fake)."""

    # -- in process -----------------------------------------------------------------------------

    async def _handle(self, request: httpx2.Request) -> httpx2.Response:
        response = self._respond(
            request.method, request.url.path, dict(request.headers), await request.aread()
        )
        return httpx2.Response(
            response.status,
            headers=dict(response.headers),
            stream=DelayedStream(response.chunks),
        )

    @property
    def transport(self) -> httpx2.MockTransport:
        """An `httpx2` transport answering from the script, for an `httpx2.AsyncClient`."""
        return httpx2.MockTransport(self._handle)

    def _client_settings(
        self, api_key: str, base_url: str, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An SDK client's keyword arguments: in process, never retrying, `options` winning."""
        return {
            "api_key": api_key,
            "base_url": base_url,
            "max_retries": 0,
            "timeout": 60.0,
            "http_client": httpx2.AsyncClient(transport=self.transport),
            **options,
        }
