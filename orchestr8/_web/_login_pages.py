"""The dashboard's sign-in pages: `GET`/`POST /ui/login`, `POST /ui/logout` and `GET /ui/logout`.

With an API key set, the login page takes the key in a plain HTML form (no script: the CSP
forbids inline code and the page needs none) and answers with the session cookie of
`_sessions`; a wrong key gets the form again with a 401 saying so. Without a key there is nothing
to sign in to and the login page sends the browser on to the dashboard. Logging in is not rate
limited (docs/dashboard.md says so): the key is meant to be long and random. Signing out takes a
POST (the top bar's button); a typed or bookmarked `GET /ui/logout` changes nothing and goes to
the dashboard, whose top bar has that button.
"""

from __future__ import annotations

import hmac
from typing import Final

from quart import Quart, Response, request

from ._dashboard import page_response
from ._sessions import SESSION_COOKIE, local_next, session_token, valid_session

__all__ = ["LoginPages", "register_login_pages"]

_DEFAULT_NEXT: Final = "/ui/"
_WRONG_KEY: Final = "That key is wrong: it is not this server's API key. Try again."


class LoginPages:
    """`/ui/login` and `/ui/logout` for a service with or without an API key."""

    def __init__(self, api_key: bytes | None) -> None:
        """Check keys against `api_key`; None means no login at all (loopback without a key)."""
        self.api_key = api_key

    async def login_form(self) -> Response:
        """`GET /ui/login`: the form asking for the key (no key, or signed in: go on to next)."""
        target = local_next(request.args.get("next"))
        if self.api_key is None or valid_session(request.cookies.get(SESSION_COOKIE), self.api_key):
            return _see_other(target)
        return _login_page(target, None, 200)

    async def login(self) -> Response:
        """`POST /ui/login`: the right key sets the session cookie; a wrong one says so (401)."""
        form = await request.form
        target = local_next(form.get("next"))
        if self.api_key is None:
            return _see_other(target)
        if not _is_the_key(form.get("key", ""), self.api_key):
            return _login_page(target, _WRONG_KEY, 401)
        response = _see_other(target)
        response.set_cookie(
            SESSION_COOKIE,
            session_token(self.api_key),
            path="/",
            secure=request.scheme in ("https", "wss"),
            httponly=True,
            samesite="Strict",
        )
        return response

    async def logout_link(self) -> Response:
        """`GET /ui/logout`: sign nothing out (a link must not); go to the dashboard instead."""
        return _see_other(_DEFAULT_NEXT)

    async def logout(self) -> Response:
        """`POST /ui/logout`: forget the session cookie in this browser and show the login page."""
        response = _see_other("/ui/login" if self.api_key is not None else _DEFAULT_NEXT)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
        return response


def _is_the_key(given: str, api_key: bytes) -> bool:
    """Whether `given` is the key, as typed or pasted with spaces around (constant time)."""
    if not given.isascii():
        return False
    typed = given.encode("ascii")
    # Both compared, always: the time taken does not say whether the spaces mattered.
    exact = hmac.compare_digest(typed, api_key)
    trimmed = hmac.compare_digest(typed.strip(), api_key)
    return exact or trimmed


def _see_other(location: str) -> Response:
    return Response("", 303, headers={"Location": location, "Cache-Control": "no-store"})


def _login_page(target: str, error: str | None, http_status: int) -> Response:
    return page_response(
        "login.html",
        http_status,
        page="login",
        title="Sign in",
        next=target,
        error=error,
        styles=["login"],
    )


def register_login_pages(app: Quart, api_key: bytes | None) -> None:
    """Add `/ui/login` and `/ui/logout` (GET and POST each) to the service app."""
    pages = LoginPages(api_key)
    app.add_url_rule("/ui/login", "dashboard_login_form", pages.login_form, methods=["GET"])
    app.add_url_rule("/ui/login", "dashboard_login", pages.login, methods=["POST"])
    app.add_url_rule("/ui/logout", "dashboard_logout", pages.logout, methods=["POST"])
    app.add_url_rule("/ui/logout", "dashboard_logout_link", pages.logout_link, methods=["GET"])
