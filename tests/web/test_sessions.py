"""Dashboard sessions: the cookie's token, where a login may send the browser, same-host checks."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from orchestr8._web._sessions import (
    cross_site,
    local_next,
    login_redirect,
    needs_login_page,
    public_path,
    same_host,
    session_token,
    unsafe_without_origin,
    valid_session,
)

KEY = b"s3cret-key-for-tests"
HOST = "127.0.0.1:8080"


def test_the_token_is_an_hmac_of_a_fixed_purpose_and_never_holds_the_key() -> None:
    """The cookie holds HMAC-SHA256(key, purpose) in hex: 64 hex digits, not the key."""
    token = session_token(KEY)
    expected = hmac.new(KEY, b"orchestr8 dashboard session", hashlib.sha256).hexdigest()
    assert token == expected
    assert len(token) == 64
    assert KEY.decode() not in token


def test_a_session_is_valid_only_for_the_key_it_was_made_from() -> None:
    """Changing the server's key ends every session; a missing or odd cookie is no session."""
    token = session_token(KEY)
    assert valid_session(token, KEY)
    assert not valid_session(token, b"another-key")
    assert not valid_session(None, KEY)
    assert not valid_session("", KEY)
    assert not valid_session(KEY.decode(), KEY)
    assert not valid_session("é" + token[1:], KEY)


@pytest.mark.parametrize(
    "target",
    ["/ui/", "/ui/executions/abc", "/ui/?status=failed&workflow=greet", "/ui/compare?a=1&b=2"],
)
def test_local_dashboard_paths_are_kept_as_next(target: str) -> None:
    """A path under /ui/ on this server is where the login goes on to."""
    assert local_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "//evil.example/ui/",
        "https://evil.example/ui/",
        "/\\evil.example",
        "/ui/\\evil",
        "/\\/evil.example/ui/",
        "javascript:alert(1)",
        "/health",
        "/ui",
        "/ui/../executions",
        "/ui/x\n/y",
        "/ui/\tx",
        "ui/",
    ],
)
def test_anything_but_a_local_dashboard_path_goes_to_the_list(target: str | None) -> None:
    """No open redirect: other hosts, schemes, backslashes, escapes and ../ all become /ui/."""
    assert local_next(target) == "/ui/"


@given(st.text())
def test_next_is_always_a_local_path_under_ui(target: str) -> None:
    """Whatever `next` says, the login sends the browser to a path of this host under /ui/."""
    chosen = local_next(target)
    assert chosen.startswith("/ui/")
    assert "\\" not in chosen
    assert not chosen.startswith("//")


def test_the_login_redirect_carries_the_page_and_its_query() -> None:
    """A page load without credentials is sent to the login page, which will come back to it."""
    response = login_redirect("/ui/executions/abc", "tab=journal")
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/login?next=/ui/executions/abc%3Ftab%3Djournal"
    assert login_redirect("/", "").headers["Location"] == "/ui/login?next=/ui/"


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/health", True),
        ("/ui/login", True),
        ("/ui/logout", True),
        ("/ui/static/js/api.js", True),
        ("/ui/", False),
        ("/ui/static", False),
        ("/executions", False),
        ("/openapi.json", False),
    ],
)
def test_only_health_login_and_static_files_are_public(path: str, public: bool) -> None:
    """The static files and the login page need no key; everything else does."""
    assert public_path(path) is public


@pytest.mark.parametrize(
    ("method", "path", "page"),
    [
        ("GET", "/", True),
        ("GET", "/ui", True),
        ("GET", "/ui/", True),
        ("HEAD", "/ui/executions/x", True),
        ("POST", "/ui/", False),
        ("GET", "/executions", False),
        ("GET", "/uix", False),
    ],
)
def test_page_loads_go_to_the_login_page_api_requests_do_not(
    method: str, path: str, page: bool
) -> None:
    """Only GET/HEAD of the dashboard's pages are redirected; the API answers 401 itself."""
    assert needs_login_page(method, path) is page


@pytest.mark.parametrize(
    ("headers", "same"),
    [
        ({"Origin": f"http://{HOST}"}, True),
        ({"Origin": f"https://{HOST.upper()}"}, True),
        ({"Referer": f"http://{HOST}/ui/executions/x"}, True),
        ({"Origin": "http://evil.example", "Referer": f"http://{HOST}/ui/"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "http://[::1"}, False),
        ({"Referer": "http://[bad/ui/"}, False),
        ({"Origin": "http://127.0.0.1:9999"}, False),
        ({}, False),
    ],
)
def test_same_host_reads_the_origin_then_the_referer(headers: dict[str, str], same: bool) -> None:
    """A request is same-host when its Origin (or, lacking one, its Referer) names this host."""
    assert same_host(Headers(headers), HOST, websocket=False) is same


@given(st.text(st.characters(exclude_characters="\r\n")))
def test_any_origin_header_is_judged_without_error(origin: str) -> None:
    """Whatever a client puts in Origin, the check answers (never a 500)."""
    assert same_host(Headers({"Origin": origin}), HOST, websocket=True) in (True, False)


def test_a_websocket_handshake_counts_only_its_origin() -> None:
    """Browsers always send Origin on a WebSocket handshake: a Referer alone is not enough."""
    referer = Headers({"Referer": f"http://{HOST}/ui/"})
    assert not same_host(referer, HOST, websocket=True)
    assert same_host(Headers({"Origin": f"http://{HOST}"}), HOST, websocket=True)


def test_cross_site_means_an_unsafe_request_or_handshake_from_another_origin() -> None:
    """A foreign Origin on a POST or handshake is cross-site; reads and login/logout are not."""
    foreign = Headers({"Origin": "http://evil.example"})
    assert cross_site("POST", "/workflows/execute", foreign, HOST, websocket=False)
    assert cross_site("GET", "/executions/x/events", foreign, HOST, websocket=True)
    assert not cross_site("GET", "/executions", foreign, HOST, websocket=False)
    assert not cross_site("POST", "/ui/login", foreign, HOST, websocket=False)
    assert not cross_site("POST", "/workflows/execute", Headers(), HOST, websocket=False)
    local = Headers({"Origin": f"http://{HOST}"})
    assert not cross_site("POST", "/workflows/execute", local, HOST, websocket=False)


def test_a_cookie_alone_may_read_but_must_show_its_origin_to_change_anything() -> None:
    """With the cookie, GETs pass; POSTs and handshakes need a same-host Origin or Referer."""
    assert not unsafe_without_origin("GET", Headers(), HOST, websocket=False)
    assert unsafe_without_origin("POST", Headers(), HOST, websocket=False)
    assert unsafe_without_origin("GET", Headers(), HOST, websocket=True)
    local = Headers({"Origin": f"http://{HOST}"})
    assert not unsafe_without_origin("POST", local, HOST, websocket=False)
    assert not unsafe_without_origin("GET", local, HOST, websocket=True)
