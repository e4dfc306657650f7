"""A small client for the two Context7 calls the research agent makes: search and context.

`open_context7(...)` yields a `Context7Client` over one httpx client (trio, through anyio).
`search` resolves a library name to candidates; `best_match` picks one; `fetch_documentation`
reads at most `max_chars` characters of the `type=txt` documentation, stopping the download once
enough has arrived. HTTP outcomes map onto retry semantics: 429 (its `retryAfterSeconds`, else
`Retry-After`), 408, 5xx, connection errors and timeouts are `UpstreamUnavailableError`; other
4xx and malformed answers are `UpstreamRejectedError`. The API key is sent as
`Authorization: Bearer` and never appears in an error.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import httpx
import trio

from actors.http import excerpt, parse_retry_after, read_bounded, scrub

from ._errors import (
    LibraryNotFoundError,
    NoDocumentationError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)

__all__ = [
    "API_KEY_VARIABLE",
    "BASE_URL_VARIABLE",
    "DEFAULT_BASE_URL",
    "Context7Client",
    "Documentation",
    "Library",
    "best_match",
    "open_context7",
]

DEFAULT_BASE_URL: Final = "https://context7.com/api"
BASE_URL_VARIABLE: Final = "CONTEXT7_BASE_URL"
API_KEY_VARIABLE: Final = "CONTEXT7_API_KEY"
MAX_QUERY_CHARS: Final = 500
"""Context7 ranks by a query of 1 to 500 characters; longer questions are cut for the query."""

LIBRARY_ID: Final = re.compile(r"^/[^/\s]+/[^/\s]+(?:/[^/\s]+)?$")
"""A Context7 library id: `/owner/repo` or `/owner/repo/version`."""

_EMPTY_ANSWERS: Final = frozenset({"", "no content available", "no context data available"})
_SOURCE_LINE: Final = re.compile(r"^SOURCE:\s*(\S+)", re.MULTILINE)
_MAX_SOURCES: Final = 20


@attrs.frozen
class Library:
    """A library as Context7 describes it in search results."""

    id: str
    name: str
    description: str = ""
    total_snippets: int = 0
    trust_score: float = 0.0

    def as_json(self) -> dict[str, str]:
        """The `{"id", "name"}` object of the research output."""
        return {"id": self.id, "name": self.name}


@attrs.frozen
class Documentation:
    """Documentation text for one library and question, cut to the configured size."""

    text: str
    truncated: bool
    sources: tuple[str, ...] = ()


def best_match(candidates: Sequence[Library], wanted: str) -> Library | None:
    """The best candidate: an exact name (or repo) match first, then trust score, then snippets."""
    key = wanted.strip().lower()

    def rank(library: Library) -> tuple[bool, float, int]:
        repo = library.id.rstrip("/").split("/")[-1].lower()
        exact = key in (library.name.strip().lower(), repo, library.id.lower())
        return exact, library.trust_score, library.total_snippets

    return max(candidates, key=rank, default=None)


class Context7Client:
    """Calls Context7 over one httpx client; build it with `open_context7`."""

    def __init__(self, client: httpx.AsyncClient, api_key: str | None, timeout: float) -> None:
        """Use `client` (whose base URL is Context7's); bound each call by `timeout` seconds."""
        self._client = client
        self._secrets = [api_key] if api_key else []
        self._timeout = timeout

    async def search(self, library_name: str, question: str) -> list[Library]:
        """The libraries Context7 matches to `library_name`, ranked for `question`."""
        params = {"libraryName": library_name, "query": question[:MAX_QUERY_CHARS]}
        body, longer = await self._get("v2/libs/search", params, limit=4 * 1024 * 1024)
        if longer:
            raise UpstreamRejectedError("Context7 search answered with more than 4 MiB")
        try:
            document = json.loads(body)
        except ValueError:
            raise UpstreamRejectedError(
                f"Context7 search answered with something that is not JSON: {excerpt(body)}"
            ) from None
        results = document.get("results") if isinstance(document, Mapping) else document
        if not isinstance(results, list):
            raise UpstreamRejectedError("Context7 search answered without a list of results")
        return [library for item in results if (library := _library(item)) is not None]

    async def fetch_documentation(
        self, library: Library, question: str, *, max_chars: int
    ) -> Documentation:
        """At most `max_chars` characters of `library`'s documentation relevant to `question`.

        Raises:
            NoDocumentationError: Context7 has no documentation for it.
            LibraryNotFoundError: Context7 does not know the library id (404).
        """
        params = {"libraryId": library.id, "query": question[:MAX_QUERY_CHARS], "type": "txt"}
        # UTF-8 needs at most 4 bytes a character: this many bytes always hold max_chars.
        body, longer = await self._get(
            "v2/context", params, limit=4 * max_chars + 4, not_found=library.id
        )
        text = body.decode("utf-8", errors="replace").strip()
        if text.lower() in _EMPTY_ANSWERS:
            raise NoDocumentationError(
                f"Context7 has no documentation for {library.id} matching the question"
            )
        truncated = longer or len(text) > max_chars
        if len(text) > max_chars:
            cut = text[:max_chars]
            # End at a line break when one is near, so the model never sees half a line.
            newline = cut.rfind("\n")
            text = cut[:newline] if newline > max_chars * 0.8 else cut
        sources = tuple(dict.fromkeys(_SOURCE_LINE.findall(text)))[:_MAX_SOURCES]
        return Documentation(text, truncated, sources)

    async def _get(
        self, path: str, params: Mapping[str, str], *, limit: int, not_found: str | None = None
    ) -> tuple[bytes, bool]:
        """GET `path`; return at most `limit` bytes of a successful body, and if there was more."""
        what = f"Context7 {path.rsplit('/', 1)[-1]}"
        with trio.move_on_after(self._timeout):
            try:
                async with self._client.stream("GET", path, params=params) as response:
                    body, longer = await read_bounded(response, limit)
            except httpx.TransportError as error:
                detail = str(error) or type(error).__name__
                raise UpstreamUnavailableError(
                    scrub(f"{what} could not be reached: {detail}", self._secrets)
                ) from None
            if response.status_code < 300:
                return body, longer
            raise self._status_error(what, response, body, not_found)
        raise UpstreamUnavailableError(f"{what} did not answer within {self._timeout:g} s")

    def _status_error(
        self, what: str, response: httpx.Response, body: bytes, not_found: str | None
    ) -> Exception:
        status = response.status_code
        shown = scrub(excerpt(body), self._secrets)
        if status == 404 and not_found is not None:
            return LibraryNotFoundError(f"Context7 does not know the library {not_found}")
        if status == 429:
            retry_after = _body_retry_after(body)
            if retry_after is None:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            return UpstreamUnavailableError(
                f"{what} is rate-limiting this client (429){wait}", retry_after=retry_after
            )
        if status == 408 or status >= 500:
            return UpstreamUnavailableError(
                f"{what} failed with {status}: {shown}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status in (401, 403):
            return UpstreamRejectedError(
                f"{what} refused the request ({status}): check {API_KEY_VARIABLE}: {shown}"
            )
        return UpstreamRejectedError(f"{what} rejected the request ({status}): {shown}")


@asynccontextmanager
async def open_context7(
    base_url: str,
    api_key: str | None,
    *,
    call_timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Context7Client]:
    """Open a Context7 client for the block; each call may take `call_timeout` seconds."""
    headers = {"Accept": "application/json, text/plain;q=0.9"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    async with httpx.AsyncClient(
        base_url=base_url.rstrip("/") + "/",
        headers=headers,
        transport=transport,
        timeout=None,
        trust_env=False,
    ) as client:
        yield Context7Client(client, api_key, call_timeout)


def _body_retry_after(body: bytes) -> float | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("retryAfterSeconds") if isinstance(document, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _library(item: Any) -> Library | None:
    """A search result as a `Library`, or None when it has no usable id."""
    if not isinstance(item, Mapping):
        return None
    library_id = item.get("id")
    if not isinstance(library_id, str) or not LIBRARY_ID.match(library_id):
        return None
    name = item.get("name") or item.get("title") or library_id
    return Library(
        id=library_id,
        name=str(name),
        description=str(item.get("description") or ""),
        total_snippets=_number(item.get("totalSnippets"), int),
        trust_score=_number(item.get("trustScore"), float),
    )


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return kind(0)
    return kind(value)
