"""Signing in to the dashboard: the login and logout pages, and the cookie the whole API accepts."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError
from quart.typing import TestClientProtocol as Client

from orchestr8 import Runtime, open_runtime
from orchestr8._errors import ExecutionNotFoundError
from orchestr8._observability._redaction import redact_text
from orchestr8._web._app import create_app
from orchestr8._web._sessions import SESSION_COOKIE, session_token

KEY = "s3cret-key-for-tests"
TOKEN = session_token(KEY.encode())
COOKIE = {"Cookie": f"{SESSION_COOKIE}={TOKEN}"}
SAME_ORIGIN = {"Origin": "http://localhost"}
ECHO = {
    "schema_version": "1.0",
    "name": "greet",
    "steps": [{"id": "greet", "agent": "echo", "input": {"hello": "you"}}],
}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with open_runtime(cancel_grace=0.2) as opened:
        yield opened


@pytest.fixture
def keyed(runtime: Runtime) -> Client:
    """A test client of a service with an API key (no cookie jar: cookies are sent by hand)."""
    return create_app(runtime, api_key=KEY).test_client()


@pytest.fixture
def open_service(runtime: Runtime) -> Client:
    """A test client of a service without an API key (loopback only)."""
    return create_app(runtime).test_client()


async def text(response: Any) -> str:
    """The body of a response as text."""
    body: str = await response.get_data(as_text=True)
    return body


async def problem_type(response: Any) -> str:
    """The problem type of a problem+json response."""
    assert response.mimetype == "application/problem+json"
    kind: str = json.loads(await text(response))["type"]
    return kind


async def run_echo(client: Client, headers: dict[str, str], runtime: Runtime) -> str:
    """Start ECHO with `headers` and wait for its end; its execution id."""
    response = await client.post("/workflows/execute", json={"workflow": ECHO}, headers=headers)
    assert response.status_code == 202, await text(response)
    execution_id = str((await response.get_json())["execution_id"])
    with trio.fail_after(5), contextlib.suppress(ExecutionNotFoundError):
        await runtime.get(execution_id).wait()
    return execution_id


async def test_the_login_page_asks_for_the_key_in_a_plain_form(keyed: Client) -> None:
    """GET /ui/login: a form posting the key and the page to come back to; no script at all."""
    response = await keyed.get("/ui/login", query_string={"next": "/ui/executions/abc"})
    assert response.status_code == 200
    page = await text(response)
    assert '<form class="login-form" method="post" action="/ui/login">' in page
    assert '<input type="hidden" name="next" value="/ui/executions/abc">' in page
    assert 'type="password"' in page
    assert "autofocus" in page
    assert "<script" not in page
    assert "/ui/static/css/login.css" in page
    assert "Sign out" not in page
    assert "Content-Security-Policy" in response.headers


async def test_the_right_key_sets_a_strict_http_only_session_cookie(keyed: Client) -> None:
    """POST the key: 303 to `next`, and a cookie holding the token (never the key)."""
    response = await keyed.post("/ui/login", form={"key": KEY, "next": "/ui/executions/abc"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/executions/abc"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={TOKEN};")
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    assert "Secure" not in cookie
    assert KEY not in cookie


@pytest.mark.parametrize("typed", [f" {KEY}", f"{KEY}\n", f"\t{KEY} "])
async def test_a_key_pasted_with_spaces_around_still_signs_in(keyed: Client, typed: str) -> None:
    """Spaces or a newline picked up around the key when pasting it do not make it wrong."""
    response = await keyed.post("/ui/login", form={"key": typed})
    assert response.status_code == 303
    assert response.headers["Set-Cookie"].startswith(f"{SESSION_COOKIE}={TOKEN};")


async def test_signed_in_the_login_page_goes_on_to_next(keyed: Client) -> None:
    """Opening the login page with a valid session skips the form."""
    response = await keyed.get("/ui/login", query_string={"next": "/ui/compare"}, headers=COOKIE)
    assert (response.status_code, response.headers["Location"]) == (303, "/ui/compare")


async def test_over_https_the_cookie_is_secure(keyed: Client) -> None:
    """Behind https the session cookie is marked Secure."""
    response = await keyed.open("/ui/login", method="POST", form={"key": KEY}, scheme="https")  # type: ignore[call-arg]
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize("wrong", ["", "nope", KEY + "x", KEY[:-1], "clé", KEY[:-1] + "€"])
async def test_a_wrong_key_is_a_401_page_that_says_so(keyed: Client, wrong: str) -> None:
    """A wrong key sets no cookie and shows the form again, saying the key is wrong."""
    response = await keyed.post("/ui/login", form={"key": wrong, "next": "/ui/compare"})
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    page = await text(response)
    assert "That key is wrong" in page
    assert 'role="alert"' in page
    assert 'aria-invalid="true"' in page
    assert 'value="/ui/compare"' in page


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/ui/", "/\\evil.example", "/metrics"]
)
async def test_the_login_never_sends_the_browser_off_the_dashboard(
    keyed: Client, target: str
) -> None:
    """`next` naming another host or anything outside /ui/ ends at the executions list."""
    form = await text(await keyed.get("/ui/login", query_string={"next": target}))
    assert 'name="next" value="/ui/"' in form
    response = await keyed.post("/ui/login", form={"key": KEY, "next": target})
    assert response.headers["Location"] == "/ui/"


async def test_without_a_key_there_is_no_login(open_service: Client) -> None:
    """With no API key the login page sends the browser on to the dashboard, form or post."""
    shown = await open_service.get("/ui/login", query_string={"next": "/ui/compare"})
    assert (shown.status_code, shown.headers["Location"]) == (303, "/ui/compare")
    posted = await open_service.post("/ui/login", form={"key": "anything"})
    assert (posted.status_code, posted.headers["Location"]) == (303, "/ui/")
    assert "Set-Cookie" not in posted.headers
    page = await text(await open_service.get("/ui/"))
    assert "Sign out" not in page
    logout = await open_service.post("/ui/logout")
    assert (logout.status_code, logout.headers["Location"]) == (303, "/ui/")


@pytest.mark.parametrize("path", ["/", "/ui", "/ui/", "/ui/executions/abc", "/ui/no/such/page"])
async def test_pages_without_credentials_go_to_the_login_page(keyed: Client, path: str) -> None:
    """A page load without the cookie is a 303 to /ui/login, coming back to the page after."""
    response = await keyed.get(path, query_string={"a": "1"})
    assert response.status_code == 303
    expected = f"{path}%3Fa%3D1" if path.startswith("/ui/") else "/ui/"
    assert response.headers["Location"] == f"/ui/login?next={expected}"


async def test_static_files_and_health_need_no_credentials(keyed: Client) -> None:
    """The login page's own assets load before signing in; /health stays open."""
    assert (await keyed.get("/ui/static/css/login.css")).status_code == 200
    assert (await keyed.get("/ui/static/css/dashboard.css")).status_code == 200
    assert (await keyed.get("/health")).status_code == 200


async def test_api_requests_without_credentials_still_answer_401(keyed: Client) -> None:
    """The API is not redirected: a 401 problem, as before; a wrong cookie is no credential."""
    response = await keyed.get("/executions")
    assert response.status_code == 401
    assert await problem_type(response) == "urn:orchestr8:problem:unauthorized"
    wrong = {"Cookie": f"{SESSION_COOKIE}={session_token(b'old-key')}"}
    assert (await keyed.get("/executions", headers=wrong)).status_code == 401
    assert (await keyed.get("/ui/", headers=wrong)).status_code == 303


async def test_the_cookie_opens_pages_and_the_api_and_offers_to_sign_out(
    keyed: Client, runtime: Runtime
) -> None:
    """Signed in, pages render with a Sign out button and API reads answer."""
    page = await keyed.get("/ui/", headers=COOKIE)
    assert page.status_code == 200
    body = await text(page)
    assert '<form class="sign-out" method="post" action="/ui/logout">' in body
    execution_id = await run_echo(keyed, {**COOKIE, **SAME_ORIGIN}, runtime)
    read = await keyed.get(f"/executions/{execution_id}", headers=COOKIE)
    assert read.status_code == 200
    assert (await read.get_json())["status"] == "succeeded"
    assert (await keyed.get(f"/ui/executions/{execution_id}", headers=COOKIE)).status_code == 200


@pytest.mark.parametrize(
    "origin",
    [
        {},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://[::1"},
        {"Referer": "http://evil/ui/"},
    ],
)
async def test_a_cookie_post_from_another_site_is_refused(
    keyed: Client, origin: dict[str, str]
) -> None:
    """CSRF: a cookie-authenticated POST without an Origin/Referer of this host is a 403."""
    response = await keyed.post(
        "/workflows/execute", json={"workflow": ECHO}, headers={**COOKIE, **origin}
    )
    assert response.status_code == 403
    assert await problem_type(response) == "urn:orchestr8:problem:cross-site-request"


async def test_a_cookie_post_with_a_same_host_referer_passes(
    keyed: Client, runtime: Runtime
) -> None:
    """A Referer of this host stands in for a missing Origin."""
    await run_echo(keyed, {**COOKIE, "Referer": "http://localhost/ui/"}, runtime)


async def test_the_bearer_key_needs_no_origin(keyed: Client, runtime: Runtime) -> None:
    """API clients with the Bearer header are not browsers: no Origin asked of them."""
    await run_echo(keyed, {"Authorization": f"Bearer {KEY}"}, runtime)


async def test_a_foreign_origin_is_refused_even_without_a_key(open_service: Client) -> None:
    """Without a key, another site's page still cannot start runs on the loopback server."""
    response = await open_service.post(
        "/workflows/execute", json={"workflow": ECHO}, headers={"Origin": "http://evil.example"}
    )
    assert response.status_code == 403
    assert await problem_type(response) == "urn:orchestr8:problem:cross-site-request"
    read = await open_service.get("/executions", headers={"Origin": "http://evil.example"})
    assert read.status_code == 200


async def refused_handshake(client: Client, path: str, headers: dict[str, str]) -> Any:
    """Open a WebSocket the server must refuse; the HTTP response it sent instead."""
    with pytest.RaisesGroup(
        WebsocketResponseError, allow_unwrapped=True, flatten_subgroups=True
    ) as caught:
        async with client.websocket(path, headers=headers) as socket:
            await socket.receive()
    error: Any = caught.value
    if isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error.response


async def test_the_websocket_takes_the_cookie_with_a_same_host_origin(
    keyed: Client, runtime: Runtime
) -> None:
    """The events socket accepts the cookie when the handshake's Origin is this host."""
    execution_id = await run_echo(keyed, {"Authorization": f"Bearer {KEY}"}, runtime)
    path = f"/executions/{execution_id}/events"
    types = []
    async with keyed.websocket(path, headers={**COOKIE, **SAME_ORIGIN}) as socket:
        with trio.fail_after(5):
            while True:
                try:
                    types.append(json.loads(await socket.receive())["type"])
                except WebsocketDisconnectError:
                    break
    assert types[-1] == "execution.succeeded"


@pytest.mark.parametrize("origin", [{}, {"Origin": "http://evil.example"}])
async def test_a_cookie_handshake_from_elsewhere_is_refused(
    keyed: Client, runtime: Runtime, origin: dict[str, str]
) -> None:
    """A cookie handshake without this host's Origin is refused with a 403 problem."""
    execution_id = await run_echo(keyed, {"Authorization": f"Bearer {KEY}"}, runtime)
    response = await refused_handshake(
        keyed, f"/executions/{execution_id}/events", {**COOKIE, **origin}
    )
    assert response.status_code == 403
    assert await problem_type(response) == "urn:orchestr8:problem:cross-site-request"


async def test_logout_forgets_the_cookie_and_shows_the_login_page(keyed: Client) -> None:
    """POST /ui/logout: 303 to the login page and the cookie expired in this browser."""
    response = await keyed.post("/ui/logout", headers=COOKIE)
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/login"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=;")
    assert "Max-Age=0" in cookie or "Expires=Thu, 01 Jan 1970" in cookie


async def test_the_session_token_is_redacted_like_the_key(runtime: Runtime) -> None:
    """The token is a credential too: wherever the key would be redacted, so is it."""
    create_app(runtime, api_key=KEY)
    assert TOKEN not in redact_text(f"cookie {TOKEN} seen")


async def test_a_typed_logout_link_goes_to_the_dashboard_and_keeps_the_session(
    keyed: Client,
) -> None:
    """GET /ui/logout (typed or bookmarked) is no 404: 303 to /ui/, the cookie left alone."""
    response = await keyed.get("/ui/logout", headers=COOKIE)
    assert (response.status_code, response.headers["Location"]) == (303, "/ui/")
    assert "set-cookie" not in response.headers
