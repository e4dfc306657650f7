"""The OpenAPI document: every route is in it, every reference resolves, responses match it."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import trio
import trio_websocket
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from quart.typing import TestClientProtocol as Client

from orchestr8 import Runtime, open_runtime
from orchestr8._errors import ExecutionNotFoundError
from orchestr8._web._app import create_app
from orchestr8._web._event_socket import CLOSE_MESSAGE_TOO_BIG, MAX_CLIENT_MESSAGE
from orchestr8._web._openapi import openapi_document
from orchestr8._web._serve import serve
from orchestr8.testing import open_event_socket

SPEC = openapi_document(auth=False)
EXAMPLES = Path(__file__).parents[2] / "examples"
ECHO = {
    "schema_version": "1.0",
    "name": "doc",
    "steps": [{"id": "a", "agent": "echo", "input": "${inputs}"}],
}
SLEEP = {
    "schema_version": "1.0",
    "name": "nap",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 30}}],
}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with open_runtime(cancel_grace=0.1) as opened:
        yield opened


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return create_app(runtime).test_client()


def resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = SPEC
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def test_every_route_of_the_app_is_documented_and_nothing_else() -> None:
    """Each rule and method of the app is a documented operation, and each operation a rule.

    A WebSocket operation also stands for the plain `GET` of its path, which answers 426 or 404.
    The dashboard's pages (`/`, `/ui/...`) are for browsers, not the API, and left out.
    """
    app = create_app(None)  # type: ignore[arg-type]
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("dashboard_"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add((path, method.lower(), rule.websocket))
    documented = {
        (path, method, websocket)
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        for websocket in ((True, False) if operation.get("x-websocket") else (False,))
    }
    assert served == documented


def test_every_reference_resolves_and_every_operation_is_complete() -> None:
    """All `$ref`s resolve; operations have unique ids, responses and their path parameters."""
    for pointer in references(SPEC):
        resolve(pointer)
    ids = []
    for path, item in SPEC["paths"].items():
        for operation in item.values():
            ids.append(operation["operationId"])
            assert operation["responses"]
            declared = {
                parameter["name"]
                for parameter in operation.get("parameters", ())
                if parameter["in"] == "path"
            }
            assert declared == set(re.findall(r"\{([^}]+)\}", path))
    assert len(ids) == len(set(ids))
    assert SPEC["openapi"] == "3.1.0"


def test_with_a_key_every_operation_but_health_requires_bearer() -> None:
    """With an API key the document requires bearer (or the session cookie) and exempts /health."""
    secured = openapi_document(auth=True)
    assert secured["security"] == [{"bearer": []}, {"cookieAuth": []}]
    assert secured["paths"]["/health"]["get"]["security"] == []
    assert "security" not in SPEC


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda path: path.stem)
def test_documented_workflow_schema_accepts_the_examples(path: Path) -> None:
    """The Workflow component (with its moved definitions) accepts every example workflow."""
    validator = Draft202012Validator({"$ref": "#/components/schemas/Workflow", **SPEC})
    validator.validate(json.loads(path.read_text()))
    assert not validator.is_valid({"schema_version": "1.0", "name": "x", "steps": [{"id": 1}]})


def check(response_document: Any, path: str, method: str, status: int, media: str) -> None:
    """Validate a response body against the schema the document gives for it."""
    operation = SPEC["paths"][path].get(method)
    if operation is None:
        # A method the route does not take: the shared problem responses describe the answer.
        response = SPEC["components"]["responses"][str(status)]
    else:
        response = operation["responses"][str(status)]
    if "$ref" in response:
        response = resolve(response["$ref"])
    schema = response["content"][media]["schema"]
    Draft202012Validator({**schema, "components": SPEC["components"]}).validate(response_document)


async def call(client: Client, method: str, url: str, template: str, **kwargs: Any) -> Any:
    response = await client.open(url, method=method.upper(), **kwargs)
    document = json.loads(await response.get_data(as_text=True))
    media = response.mimetype
    assert media, "the response names no media type"
    check(document, template, method, response.status_code, media)
    return document


async def test_responses_match_their_documented_schemas(client: Client, runtime: Runtime) -> None:
    """Real responses of every route, success and problem, fit the documented schemas."""
    accepted = await call(
        client,
        "post",
        "/workflows/execute",
        "/workflows/execute",
        json={"workflow": ECHO, "inputs": {"x": 1}},
    )
    execution_id = accepted["execution_id"]
    with trio.fail_after(5), contextlib.suppress(ExecutionNotFoundError):
        await runtime.get(execution_id).wait()
    item = "/executions/{execution_id}"
    await call(client, "get", f"/executions/{execution_id}", item)
    await call(client, "get", "/executions", "/executions")
    await call(client, "get", f"/executions/{execution_id}/journal", item + "/journal")
    await call(client, "get", "/health", "/health")
    await call(client, "get", "/openapi.json", "/openapi.json")
    await call(client, "post", f"/executions/{execution_id}/cancel", item + "/cancel")
    running = (
        await call(
            client, "post", "/workflows/execute", "/workflows/execute", json={"workflow": SLEEP}
        )
    )["execution_id"]
    await call(client, "post", f"/executions/{running}/cancel", item + "/cancel")
    await call(client, "get", "/executions/nope", item)
    await call(client, "get", "/executions?limit=0", "/executions")
    await call(
        client, "post", "/workflows/execute", "/workflows/execute", json={"workflow": {"steps": []}}
    )
    await call(
        client,
        "post",
        "/workflows/execute",
        "/workflows/execute",
        data=b"{",
        headers={"Content-Type": "application/json"},
    )
    await call(client, "post", "/workflows/execute", "/workflows/execute", data=b"{}")
    await call(client, "delete", "/workflows/execute", "/workflows/execute")


async def test_a_map_steps_items_match_the_documented_schema(
    client: Client, runtime: Runtime
) -> None:
    """The `items` counts of a map step (`for_each`) fit the documented step schema."""
    workflow = {
        "schema_version": "1.1",
        "name": "map",
        "steps": [{"id": "each", "agent": "echo", "for_each": "inputs.docs", "input": "${item}"}],
    }
    accepted = await call(
        client,
        "post",
        "/workflows/execute",
        "/workflows/execute",
        json={"workflow": workflow, "inputs": {"docs": [1, 2]}},
    )
    execution_id = accepted["execution_id"]
    with trio.fail_after(5), contextlib.suppress(ExecutionNotFoundError):
        await runtime.get(execution_id).wait()
    detail = await call(client, "get", f"/executions/{execution_id}", "/executions/{execution_id}")
    assert detail["steps"]["each"]["items"]["succeeded"] == 2


# The declared parameters, headers and codes are what a real server does


KEY = "openapi-test-key-0123456789"
DOCS_REST = Path(__file__).parents[2] / "docs" / "rest.md"


def parameter_schema(path: str, method: str, name: str) -> dict[str, Any]:
    """The declared schema of the parameter `name` of an operation."""
    [parameter] = [
        item for item in SPEC["paths"][path][method]["parameters"] if item["name"] == name
    ]
    schema: dict[str, Any] = parameter["schema"]
    return schema


def declared(path: str, method: str, name: str, raw: str) -> bool:
    """Whether the declared schema of a query or header parameter accepts the text `raw`."""
    schema = parameter_schema(path, method, name)
    value: Any = raw
    if schema.get("type") == "integer":
        if re.fullmatch(r"-?[0-9]+", raw) is None:
            return False
        value = int(raw)
    return Draft202012Validator(schema).is_valid(value)


def declared_headers(path: str, method: str, status: int) -> set[str]:
    """The response headers the document declares for an operation's answer with `status`."""
    operation = SPEC["paths"][path].get(method, {})
    response = operation.get("responses", {}).get(str(status)) or {
        "$ref": f"#/components/responses/{status}"
    }
    if "$ref" in response:
        response = resolve(response["$ref"])
    return {name.lower() for name in response.get("headers", {})}


SENT_ON_PURPOSE = {name.lower() for name in SPEC["components"]["headers"]}


async def start(client: Client, workflow: dict[str, Any]) -> str:
    """Start `workflow` through the API and return its execution id."""
    response = await client.post("/workflows/execute", json={"workflow": workflow})
    assert response.status_code == 202
    execution_id: str = (await response.get_json())["execution_id"]
    return execution_id


@contextlib.asynccontextmanager
async def served(runtime: Runtime, **options: Any) -> AsyncIterator[str]:
    """A real server on a free loopback port for the block; yields its base URL."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            partial(serve, runtime, port=0, shutdown_trigger=stop.wait, **options)
        )
        try:
            yield urls[0]
        finally:
            runtime.cancel_all("test over")
            stop.set()


@pytest.mark.parametrize("raw", ["0", "7", str(2**62), str(2**62 + 1), "-1", "x", "1e3"])
async def test_after_is_refused_exactly_beyond_its_declared_range(
    client: Client, runtime: Runtime, raw: str
) -> None:
    """`after` on the journal route is accepted exactly when the declared schema accepts it."""
    execution_id = await start(client, ECHO)
    response = await client.get(f"/executions/{execution_id}/journal?after={raw}")
    template = "/executions/{execution_id}/journal"
    assert (response.status_code == 200) == declared(template, "get", "after", raw)


visible_text = st.text(st.sampled_from('ab-Z09~!" \t'), max_size=6) | st.sampled_from(
    ["x" * 255, "x" * 256, '"' + "x" * 255 + '"', '"' + "x" * 256 + '"', '""', '"', "a b"]
)


@given(key=visible_text)
async def test_idempotency_keys_are_refused_exactly_as_declared(key: str) -> None:
    """An Idempotency-Key gets 400 invalid-header exactly when the declared pattern refuses it."""
    async with open_runtime() as runtime:
        client = create_app(runtime).test_client()
        response = await client.post(
            "/workflows/execute",
            data=b"{",
            headers={"Idempotency-Key": key.strip(), "Content-Type": "application/json"},
        )
        kind = json.loads(await response.get_data(as_text=True))["type"]
    refused = kind == "urn:orchestr8:problem:invalid-header"
    assert refused != declared("/workflows/execute", "post", "Idempotency-Key", key.strip())


async def test_a_cursor_outside_its_declared_pattern_is_refused(
    client: Client, runtime: Runtime
) -> None:
    """A cursor the declared pattern refuses is a 400, even one base64 would decode anyway."""
    for _ in range(3):
        await start(client, ECHO)
    first = await (await client.get("/executions?limit=1")).get_json()
    cursor = first["next_cursor"]
    assert declared("/executions", "get", "cursor", cursor)
    assert (await client.get(f"/executions?limit=1&cursor={cursor}")).status_code == 200
    for bent in (cursor + ".", cursor + "%0A", "%20" + cursor, cursor[:4] + "!" + cursor[4:]):
        assert not declared("/executions", "get", "cursor", unquote(bent))
        response = await client.get(f"/executions?limit=1&cursor={bent}")
        document = await response.get_json()
        assert (response.status_code, document["errors"][0]["path"]) == (400, "cursor")


async def test_response_headers_are_the_declared_ones_over_a_real_server(
    runtime: Runtime,
) -> None:
    """Each response carries every header declared for it, and no undeclared header of ours."""
    async with served(runtime, api_key=KEY) as url, httpx.AsyncClient(base_url=url) as http:
        auth = {"Authorization": f"Bearer {KEY}"}
        accepted = await http.post("/workflows/execute", json={"workflow": SLEEP}, headers=auth)
        execution = accepted.headers["Location"]
        events = execution + "/events"
        cases = [
            (await http.get("/health"), "/health", "get"),
            (accepted, "/workflows/execute", "post"),
            (await http.get("/executions", headers=auth), "/executions", "get"),
            (await http.get("/executions"), "/executions", "get"),
            (await http.delete("/executions", headers=auth), "/executions", "delete"),
            (await http.get(events, headers=auth), "/executions/{execution_id}/events", "get"),
            (
                await http.get("/executions/nope/events", headers=auth),
                "/executions/{execution_id}/events",
                "get",
            ),
            (
                await http.post("/workflows/execute", json={}, headers=auth),
                "/workflows/execute",
                "post",
            ),
            # Still running: resuming it is a conflict.
            (
                await http.post(execution + "/resume", headers=auth),
                "/executions/{execution_id}/resume",
                "post",
            ),
            (
                await http.post(execution + "/cancel", headers=auth),
                "/executions/{execution_id}/cancel",
                "post",
            ),
            (await http.get("/metrics", headers=auth), "/metrics", "get"),
            (
                await http.get("/executions?limit=0", headers=auth),
                "/executions",
                "get",
            ),
            (
                await http.post("/workflows/execute", content=b"{}", headers=auth),
                "/workflows/execute",
                "post",
            ),
        ]
        statuses = [response.status_code for response, _, _ in cases]
        assert statuses == [200, 202, 200, 401, 405, 426, 404, 422, 409, 202, 200, 400, 415]
        for response, path, method in cases:
            expected = declared_headers(path, method, response.status_code)
            sent = {name.lower() for name in response.headers} & SENT_ON_PURPOSE
            assert sent == expected, (path, method, response.status_code)


def test_every_response_declares_the_correlation_header() -> None:
    """Every response the document describes, errors and the WebSocket handshake too, has it."""
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = resolve(response["$ref"])
                assert "X-Correlation-ID" in response.get("headers", {}), (path, method, status)


async def test_an_accepted_handshake_carries_the_declared_headers(runtime: Runtime) -> None:
    """The 101 of the events WebSocket sends its correlation id, as declared."""
    async with served(runtime) as url, httpx.AsyncClient(base_url=url) as http:
        accepted = await http.post("/workflows/execute", json={"workflow": SLEEP})
        events = url.replace("http", "ws", 1) + accepted.headers["Location"] + "/events"
        async with open_event_socket(events, headers=[("X-Correlation-ID", "req-101")]) as socket:
            sent = {
                name.decode().lower(): value.decode() for name, value in socket.handshake_headers
            }
    expected = declared_headers("/executions/{execution_id}/events", "get", 101)
    assert sent.keys() & SENT_ON_PURPOSE == expected
    assert sent["x-correlation-id"] == "req-101"


async def refused_handshake(url: str, **options: Any) -> trio_websocket.ConnectionRejected:
    """The rejection of a WebSocket handshake that the server must refuse."""
    with pytest.raises(trio_websocket.ConnectionRejected) as refused:
        async with open_event_socket(url, **options):
            pass
    return refused.value


async def test_refused_handshakes_carry_the_declared_headers(runtime: Runtime) -> None:
    """A refused WebSocket handshake is a problem response with the headers declared for it."""
    async with served(runtime, api_key=KEY) as url:
        events = url.replace("http", "ws", 1) + "/executions/nope/events"
        refusals = [
            await refused_handshake(events),
            await refused_handshake(events, headers=[("Authorization", f"Bearer {KEY}")]),
            await refused_handshake(
                events + "?after=-1",
                headers=[("Authorization", f"Bearer {KEY}"), ("X-Correlation-ID", "req-3")],
            ),
        ]
    assert [refusal.status_code for refusal in refusals] == [401, 404, 400]
    for refusal in refusals:
        sent = {name.decode().lower(): value.decode() for name, value in refusal.headers or ()}
        expected = declared_headers(
            "/executions/{execution_id}/events", "get", refusal.status_code or 0
        )
        assert sent.keys() & SENT_ON_PURPOSE == expected
    assert sent["x-correlation-id"] == "req-3"


async def test_a_plain_get_of_the_events_route_is_426_or_404(runtime: Runtime) -> None:
    """Without the upgrade the events route answers 426 and `Upgrade: websocket`; 404 if unknown."""
    async with served(runtime) as url, httpx.AsyncClient(base_url=url) as http:
        accepted = await http.post("/workflows/execute", json={"workflow": SLEEP})
        plain = await http.get(accepted.headers["Location"] + "/events")
        unknown = await http.get("/executions/nope/events")
    assert (plain.status_code, plain.headers["Upgrade"]) == (426, "websocket")
    assert plain.json()["type"] == "urn:orchestr8:problem:upgrade-required"
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:orchestr8:problem:execution-not-found"
    responses = SPEC["paths"]["/executions/{execution_id}/events"]["get"]["responses"]
    assert {"404", "426"} <= responses.keys()


async def read_until_closed(socket: trio_websocket.WebSocketConnection) -> None:
    """Read and drop messages until the server closes the socket (ConnectionClosed)."""
    while True:
        await socket.get_message()


async def test_a_client_message_over_the_limit_closes_1009_as_documented(
    runtime: Runtime,
) -> None:
    """A client message over 64 KiB closes the socket with 1009, which the docs and spec name."""
    async with served(runtime) as url, httpx.AsyncClient(base_url=url) as http:
        accepted = await http.post("/workflows/execute", json={"workflow": SLEEP})
        events_url = url.replace("http", "ws", 1) + accepted.headers["Location"] + "/events"
        async with open_event_socket(events_url) as socket:
            assert json.loads(await socket.get_message())["seq"] == 1
            await socket.send_message("x" * (MAX_CLIENT_MESSAGE + 1))
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await read_until_closed(socket)
    assert closed.value.reason is not None
    assert closed.value.reason.code == CLOSE_MESSAGE_TOO_BIG == 1009
    description = SPEC["paths"]["/executions/{execution_id}/events"]["get"]["description"]
    assert "1009 the client sent a message over 64 KiB" in description
    assert re.search(r"^\| 1009 \|", DOCS_REST.read_text(encoding="utf-8"), re.MULTILINE)
