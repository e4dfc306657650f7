"""Dashboard sessions: the sign-in cookie, the cross-site request check and the login pages.

A browser cannot put `Authorization: Bearer <key>` on a page load or a WebSocket handshake, so
with an API key set the dashboard's login page (`/ui/login`) takes the key once and answers with
a cookie, `orchestr8_session`, that the whole API and the WebSocket accept beside the bearer
header. The cookie never holds the key: it holds `HMAC-SHA256(key, "orchestr8 dashboard
session")` in hex, compared in constant time, so changing the server's key ends every session.
It is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Path=/, and
Secure when the request came over https.

Because a cookie rides along by itself, a cookie-authenticated unsafe request (a POST) or
WebSocket handshake must also show it comes from this host: an `Origin` (or, for a request,
`Referer`) naming this host, else a 403 `cross-site-request` problem. A request of any kind that
carries an `Origin` of another site is refused the same way, with or without a key.
The login and logout pages themselves are `_login_pages`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import quote, urlsplit

from quart import Response, g
from werkzeug.datastructures import Headers

__all__ = [
    "SESSION_COOKIE",
    "cross_site",
    "is_signed_in",
    "local_next",
    "login_redirect",
    "mark_signed_in",
    "needs_login_page",
    "public_path",
    "same_host",
    "session_token",
    "unsafe_without_origin",
    "valid_session",
]

SESSION_COOKIE: Final = "orchestr8_session"
"""The name of the dashboard's session cookie."""

_PURPOSE: Final = b"orchestr8 dashboard session"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_PUBLIC_PATHS: Final = frozenset({"/health", "/ui/login", "/ui/logout"})
_DEFAULT_NEXT: Final = "/ui/"
_SIGNED_IN: Final = "orchestr8_signed_in"


def session_token(api_key: bytes) -> str:
    """The cookie's value for `api_key`: an HMAC of a fixed purpose, so the key never leaves."""
    return hmac.new(api_key, _PURPOSE, hashlib.sha256).hexdigest()


def valid_session(cookie: str | None, api_key: bytes) -> bool:
    """Whether a session cookie's value was made from `api_key` (compared in constant time)."""
    if not cookie:
        return False
    return hmac.compare_digest(cookie.encode("latin-1", "replace"), session_token(api_key).encode())


def mark_signed_in() -> None:
    """Remember, for this request, that its credentials were the session cookie."""
    setattr(g, _SIGNED_IN, True)


def is_signed_in() -> bool:
    """Whether this request came with a valid session cookie (pages then offer to sign out)."""
    return bool(getattr(g, _SIGNED_IN, False))


def public_path(path: str) -> bool:
    """Whether `path` needs no credentials: /health, the login and logout pages, static files."""
    return path in _PUBLIC_PATHS or path.startswith("/ui/static/")


def needs_login_page(method: str, path: str) -> bool:
    """Whether a request without credentials is a page load to send to the login page."""
    if method not in ("GET", "HEAD"):
        return False
    return path in ("/", "/ui") or path.startswith("/ui/")


def local_next(value: str | None) -> str:
    """`value` when it is a local path under /ui/, else /ui/: the login never sends elsewhere."""
    if not value or not value.startswith(_DEFAULT_NEXT) or "\\" in value:
        return _DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or ".." in parts.path.split("/"):
        return _DEFAULT_NEXT
    if any(ord(character) < 0x21 or ord(character) == 0x7F for character in value):
        return _DEFAULT_NEXT
    return value


def login_redirect(path: str, query: str) -> Response:
    """A 303 to the login page that comes back to `path` (with its query) once signed in."""
    target = local_next(path + (f"?{query}" if query else ""))
    location = "/ui/login?next=" + quote(target, safe="/")
    return Response("", 303, headers={"Location": location, "Cache-Control": "no-store"})


def same_host(headers: Headers, host: str, *, websocket: bool) -> bool:
    """Whether the request's `Origin` (or `Referer`, not for WebSockets) names `host`."""
    origin = headers.get("Origin")
    if origin is None and not websocket:
        origin = headers.get("Referer")
    if not origin:
        return False
    try:
        named = urlsplit(origin).netloc
    except ValueError:  # not a URL at all (`http://[::1`): no host named
        return False
    return named.lower() == host.lower()


def cross_site(method: str, path: str, headers: Headers, host: str, *, websocket: bool) -> bool:
    """Whether an unsafe request or a handshake carries an `Origin` that is not this host."""
    if path in _PUBLIC_PATHS or (method in _SAFE_METHODS and not websocket):
        return False
    return "Origin" in headers and not same_host(headers, host, websocket=True)


def unsafe_without_origin(method: str, headers: Headers, host: str, *, websocket: bool) -> bool:
    """Whether a cookie-authenticated unsafe request or handshake fails to show it is same-host."""
    if method in _SAFE_METHODS and not websocket:
        return False
    return not same_host(headers, host, websocket=websocket)
