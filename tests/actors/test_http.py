"""Tests of the `http` agent against a real loopback server (and a MockTransport for MockClock)."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing

from actors.http import HttpAgent, parse_retry_after
from orchestr8 import (
    AgentConfigurationError,
    AgentContext,
    AgentRegistry,
    NonRetryableError,
    RetryableError,
    run_workflow,
)

SECRET = "s3cr3t-token-value"
API_KEY = "k3y-abcdef-123456"


@attrs.frozen
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[Received], Awaitable[Reply]]


@attrs.define
class LoopbackServer:
    """A tiny ASGI app on hypercorn: scripted replies by path, every request recorded."""

    routes: dict[str, Handler] = attrs.Factory(dict)
    received: list[Received] = attrs.Factory(list)
    url: str = ""

    def reply(
        self,
        path: str,
        status: int = 200,
        *,
        json_body: Any = None,
        text: str = "",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        body = json.dumps(json_body).encode() if json_body is not None else text.encode()
        kind = "application/json" if json_body is not None else "text/plain; charset=utf-8"

        async def handler(request: Received) -> Reply:
            if delay:
                await trio.sleep(delay)
            return status, {"content-type": kind, **(headers or {})}, body

        self.routes[path] = handler

    def replies(self, path: str, sequence: list[Reply]) -> None:
        remaining = list(sequence)

        async def handler(request: Received) -> Reply:
            return remaining.pop(0)

        self.routes[path] = handler

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = Received(
            scope["method"],
            scope["path"],
            scope["query_string"].decode(),
            {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body,
        )
        self.received.append(request)
        handler = self.routes.get(scope["path"])
        status, headers, content = await handler(request) if handler else (599, {}, b"no route")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": content})


@pytest.fixture
async def server() -> AsyncIterator[LoopbackServer]:
    import hypercorn.trio
    from hypercorn.config import Config

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.1
    fake = LoopbackServer()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            partial(hypercorn.trio.serve, fake.app, config, shutdown_trigger=stop.wait)
        )
        fake.url = urls[0]
        yield fake
        stop.set()


def context(**overrides: Any) -> AgentContext:
    return AgentContext(execution_id="exec-1", step_id="call", agent_id="http", **overrides)


async def test_get_returns_status_selected_headers_and_json(server: LoopbackServer) -> None:
    """A GET of a JSON resource returns its status, the default headers and the parsed body."""
    server.reply("/items", json_body={"items": [1, 2]}, headers={"etag": '"v1"', "x-other": "no"})
    agent = HttpAgent({"url": f"{server.url}/items", "params": {"page": 2, "all": True}})
    output = await agent.run(None, context())
    assert output == {
        "status": 200,
        "headers": {"content-type": "application/json", "etag": '"v1"'},
        "json": {"items": [1, 2]},
        "text": None,
    }
    request = server.received[0]
    assert (request.method, request.query) == ("GET", "page=2&all=true")
    assert request.headers["user-agent"].startswith("orchestr8-http/")
    assert "idempotency-key" not in request.headers
    assert request.body == b""


async def test_text_response_and_custom_header_selection(server: LoopbackServer) -> None:
    """A non-JSON body comes back as text; `response_headers` picks the headers copied."""
    server.reply("/hello", text="hello world", headers={"x-request-id": "r-1"})
    agent = HttpAgent({"url": f"{server.url}/hello", "response_headers": ["X-Request-Id"]})
    output = await agent.run({"ignored": True}, context())
    assert output == {
        "status": 200,
        "headers": {"x-request-id": "r-1"},
        "json": None,
        "text": "hello world",
    }


async def test_post_sends_step_input_as_json_with_idempotency_key(server: LoopbackServer) -> None:
    """POST sends the step input as the JSON body, with the context's idempotency key."""
    server.reply("/process", 201, json_body={"ok": True})
    agent = HttpAgent({"method": "post", "url": f"{server.url}/process"})
    output = await agent.run({"q": "ü", "n": [1, None]}, context())
    assert output["status"] == 201
    request = server.received[0]
    assert request.method == "POST"
    assert json.loads(request.body) == {"q": "ü", "n": [1, None]}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "exec-1:call"


async def test_config_json_body_wins_over_input(server: LoopbackServer) -> None:
    """A configured `json` body is sent instead of the step input."""
    server.reply("/put", json_body={})
    agent = HttpAgent({"method": "PUT", "url": f"{server.url}/put", "json": {"fixed": 1}})
    await agent.run({"from": "input"}, context())
    assert json.loads(server.received[0].body) == {"fixed": 1}


async def test_url_params_and_headers_from_input(server: LoopbackServer) -> None:
    """Without a configured url, the input object supplies url, json, params and headers."""
    server.reply("/dyn", json_body={"ok": 1})
    agent = HttpAgent({"method": "POST", "params": {"a": "1"}, "headers": {"X-A": "config"}})
    await agent.run(
        {
            "url": f"{server.url}/dyn",
            "json": [1],
            "params": {"b": "2"},
            "headers": {"x-a": "input"},
        },
        context(),
    )
    request = server.received[0]
    assert (request.query, request.headers["x-a"], json.loads(request.body)) == (
        "a=1&b=2",
        "input",
        [1],
    )


@pytest.mark.parametrize(
    ("bad_input", "message"),
    [
        ({"json": 1}, "must be an object with a 'url'"),
        ("http://x", "must be an object with a 'url'"),
        ({"url": "ftp://x/y"}, "absolute http"),
        ({"url": "http://x", "bogus": 1}, "unknown request input keys: bogus"),
    ],
)
async def test_bad_request_input_is_not_retryable(bad_input: Any, message: str) -> None:
    """A url-less agent given an unusable input fails with a NonRetryableError."""
    with pytest.raises(NonRetryableError, match=message):
        await HttpAgent({}).run(bad_input, context())


async def test_client_errors_are_not_retryable_and_name_status(server: LoopbackServer) -> None:
    """A 404 is a NonRetryableError naming the status and an excerpt of the body."""
    server.reply("/missing", 404, json_body={"error": "no such thing " + "x" * 500})
    with pytest.raises(NonRetryableError) as caught:
        await HttpAgent({"url": f"{server.url}/missing"}).run(None, context())
    message = str(caught.value)
    assert "answered 404 Not Found" in message
    assert "no such thing" in message
    assert len(message) < 300


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_throttling_and_server_errors_are_retryable(
    server: LoopbackServer, status: int
) -> None:
    """408, 429 and 5xx are RetryableErrors; without Retry-After there is no retry_after."""
    server.reply("/flaky", status, text="busy")
    with pytest.raises(RetryableError, match=f"answered {status}") as caught:
        await HttpAgent({"url": f"{server.url}/flaky"}).run(None, context())
    assert caught.value.retry_after is None


async def test_retry_after_seconds_and_http_date(server: LoopbackServer) -> None:
    """Retry-After in seconds and as an HTTP date both become `retry_after`."""
    server.reply("/seconds", 429, headers={"retry-after": "7"})
    server.reply(
        "/date",
        503,
        headers={"retry-after": email.utils.formatdate(time.time() + 120, usegmt=True)},
    )
    with pytest.raises(RetryableError) as seconds:
        await HttpAgent({"url": f"{server.url}/seconds"}).run(None, context())
    assert seconds.value.retry_after == 7.0
    with pytest.raises(RetryableError) as dated:
        await HttpAgent({"url": f"{server.url}/date"}).run(None, context())
    assert dated.value.retry_after is not None
    assert 110 <= dated.value.retry_after <= 121


def test_parse_retry_after_forms() -> None:
    """`parse_retry_after` reads seconds and dates, clamps the past to 0, rejects garbage."""
    now = 1_700_000_000.0
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    for bad in (None, "", "soon", "-1", "nan", "inf"):
        assert parse_retry_after(bad) is None


async def test_connection_refused_is_retryable() -> None:
    """A port nobody listens on gives a RetryableError."""
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryableError, match="failed: ConnectError"):
        await HttpAgent({"url": f"http://127.0.0.1:{port}/"}).run(None, context())


async def test_real_short_timeout_is_retryable(server: LoopbackServer) -> None:
    """A server slower than the config timeout gives a RetryableError after about that long."""
    server.reply("/slow", text="late", delay=5.0)
    start = trio.current_time()
    with pytest.raises(RetryableError, match=r"timed out after 0\.2 s"):
        await HttpAgent({"url": f"{server.url}/slow", "timeout": 0.2}).run(None, context())
    assert trio.current_time() - start < 2.0


def _sleeping_transport(seconds: float) -> httpx.MockTransport:
    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep(seconds)
        return httpx.Response(200, json={})

    return httpx.MockTransport(handler)


async def test_attempt_deadline_bounds_the_request(autojump_clock: trio.testing.MockClock) -> None:
    """The attempt's deadline bounds the request on the trio clock (MockClock: instant)."""
    agent = HttpAgent({"url": "http://service.test/"}, transport=_sleeping_transport(100))
    start = trio.current_time()
    with pytest.raises(RetryableError, match="timed out after 3 s"):
        await agent.run(None, context(deadline=start + 3))
    assert trio.current_time() - start == pytest.approx(3)


async def test_config_timeout_and_default_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """`timeout` wins when shorter than the deadline; without both, 30 s applies."""
    transport = _sleeping_transport(1000)
    start = trio.current_time()
    with pytest.raises(RetryableError, match="after 2 s"):
        await HttpAgent({"url": "http://s.test/", "timeout": 2}, transport=transport).run(
            None, context(deadline=start + 50)
        )
    with pytest.raises(RetryableError, match="after 30 s"):
        await HttpAgent({"url": "http://s.test/"}, transport=transport).run(None, context())


async def test_secrets_never_appear_in_errors(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secret header values (also echoed back by the server) and URL keys are redacted."""
    monkeypatch.setenv("HTTP_TEST_KEY", API_KEY)

    async def echo(request: Received) -> Reply:
        return 401, {"content-type": "application/json"}, json.dumps(request.headers).encode()

    server.routes["/auth"] = echo
    agent = HttpAgent(
        {
            "url": f"{server.url}/auth?api_key={API_KEY}&page=1",
            "headers": {"Authorization": f"Bearer {SECRET}"},
            "headers_from_env": {"X-Api-Key": "HTTP_TEST_KEY"},
        }
    )
    with pytest.raises(NonRetryableError) as caught:
        await agent.run(None, context())
    message = str(caught.value)
    assert server.received[0].headers["x-api-key"] == API_KEY
    assert "answered 401" in message
    assert SECRET not in message
    assert API_KEY not in message
    assert "[redacted]" in message
    assert "page=1" in message


async def test_missing_environment_header_names_the_variable() -> None:
    """A `headers_from_env` variable that is not set fails without a request."""
    agent = HttpAgent({"url": "http://s.test/", "headers_from_env": {"Authorization": "NOPE_X"}})
    with pytest.raises(NonRetryableError, match="NOPE_X, which is not set"):
        await agent.run(None, context())


async def test_body_over_max_bytes_is_refused(server: LoopbackServer) -> None:
    """A success body larger than `max_bytes` is a NonRetryableError, not a truncated output."""
    server.reply("/big", text="x" * 5000)
    with pytest.raises(NonRetryableError, match="larger than 1000 bytes"):
        await HttpAgent({"url": f"{server.url}/big", "max_bytes": 1000}).run(None, context())


async def test_invalid_declared_json_is_not_retryable(server: LoopbackServer) -> None:
    """A body declared as JSON that does not parse is a NonRetryableError with an excerpt."""
    server.replies("/bad", [(200, {"content-type": "application/json"}, b"{nope")])
    with pytest.raises(NonRetryableError, match="not the JSON it declares"):
        await HttpAgent({"url": f"{server.url}/bad"}).run(None, context())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "http://x", "verb": "GET"}, "unknown config key 'verb'"),
        ({"method": "FETCH"}, "method must be one of"),
        ({"url": "example.com/x"}, "absolute http"),
        ({"url": 3}, "non-empty string"),
        ({"url": "http://x", "json": {}}, "which GET has not"),
        ({"headers": {"Bad Name": "v"}}, "not a valid header name"),
        ({"headers": {"X": "a\nb"}}, "one-line string"),
        ({"params": {"a": {"b": 1}}}, "must map to a string"),
        ({"timeout": 0}, "timeout must be a number"),
        ({"max_bytes": 0}, "max_bytes must be an integer"),
        ({"response_headers": ["set-cookie"]}, "must not copy credentials"),
        ({"follow_redirects": "yes"}, "true or false"),
    ],
)
def test_config_is_validated_at_construction(config: dict[str, Any], message: str) -> None:
    """Bad configs fail when the agent is built, with a message naming the problem."""
    with pytest.raises(AgentConfigurationError, match=message):
        HttpAgent(config)


def test_config_errors_do_not_echo_header_values() -> None:
    """A rejected header value is not repeated in the configuration error."""
    with pytest.raises(AgentConfigurationError) as caught:
        HttpAgent({"headers": {"Authorization": f"Bearer {SECRET}\r\n"}})
    assert SECRET not in str(caught.value)


def test_registered_as_the_http_entry_point() -> None:
    """The registry finds the agent as `http` through the entry point."""
    agent = AgentRegistry().create("http", {"url": "http://example.test/"})
    assert isinstance(agent, HttpAgent)


async def test_workflow_retries_a_503_honouring_retry_after(server: LoopbackServer) -> None:
    """In a workflow a 503 is retried (after Retry-After) and the second answer is the output."""
    server.replies(
        "/once",
        [
            (503, {"retry-after": "0"}, b"warming up"),
            (200, {"content-type": "application/json"}, b'{"ready": true}'),
        ],
    )
    workflow = {
        "schema_version": "1.0",
        "name": "http-retry",
        "steps": [
            {
                "id": "call",
                "agent": {"id": "http", "config": {"url": f"{server.url}/once"}},
                "policy": {
                    "timeout": 5.0,
                    "retry": {
                        "max_attempts": 3,
                        "initial_delay": 0.01,
                        "max_delay": 0.01,
                        "jitter": "none",
                    },
                },
            }
        ],
        "output": "${steps.call.output.json.ready}",
    }
    result = await run_workflow(workflow)
    assert result.succeeded, result.error
    assert result.output is True
    assert result.steps["call"].attempts == 2
    assert len(server.received) == 2
