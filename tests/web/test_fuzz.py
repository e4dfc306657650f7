"""Fuzzing the service from its OpenAPI document: no request, however malformed, gets a 5xx.

Requests are drawn from the documented routes (their methods, path and query parameters, headers and
request bodies) mixed with junk: other methods, unknown paths, hostile path segments, out-of-range
and non-numeric query values, wrong content types, broken JSON and random bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

from orchestr8 import open_runtime
from orchestr8._web._app import create_app
from orchestr8._web._openapi import openapi_document

SPEC = openapi_document(auth=False)
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in SPEC["paths"].items()
    for method, operation in item.items()
    if not operation.get("x-websocket")
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
ECHO = {
    "schema_version": "1.0",
    "name": "fuzz",
    "steps": [{"id": "a", "agent": "echo", "input": "${inputs}"}],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)
segments = st.one_of(
    st.text(max_size=12).map(lambda text: quote(text, safe="")),
    st.sampled_from(["..", ".", "%00", "%zz", "%2F", "a" * 300, "0", "-1"]),
).map(lambda segment: segment or "_")


def fill(template: str, draw: Any) -> str:
    """Fill `{name}` placeholders of a documented path with hostile segments."""
    return re.sub(r"\{[^}]+\}", lambda _: draw(segments), template)


@st.composite
def query_values(draw: Any, operation: dict[str, Any]) -> dict[str, str]:
    documented = [item["name"] for item in operation.get("parameters", ()) if item["in"] == "query"]
    names = draw(st.lists(st.sampled_from([*documented, "junk", "after", "limit"]), max_size=3))
    values = st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        header_text,
        st.sampled_from(
            [
                "",
                "1e3",
                "0x10",
                " 5",
                "+5",
                "--5",
                "1_000",
                "\u0663",
                "\u00b2",
                "NaN",
                "failed",
                "running",
            ]
        ),
    )
    return {name: draw(values) for name in names}


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 4))
    if choice == 0:
        document: Any = {"workflow": ECHO, "inputs": draw(json_values)}
    elif choice == 1:
        document = {
            "workflow": draw(json_values),
            **draw(
                st.dictionaries(
                    st.sampled_from(["inputs", "timeout", "correlation_id", "junk"]), json_values
                )
            ),
        }
    elif choice == 2:
        document = draw(json_values)
    elif choice == 3:
        return draw(st.binary(max_size=200))
    else:
        text = json.dumps({"workflow": ECHO, "inputs": draw(json_values)})
        cut = draw(st.integers(0, len(text)))
        return (text[:cut] + draw(st.sampled_from(["", "}", "\\ud800", "NaN", ",,"]))).encode()
    return json.dumps(document).encode()


@st.composite
def requests(draw: Any) -> tuple[str, str, dict[str, str], bytes]:
    method, template, operation = draw(st.sampled_from(OPERATIONS))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(METHODS))
    path = fill(template, draw)
    if draw(st.integers(0, 9)) == 0:
        path = "/" + "/".join(draw(st.lists(segments, min_size=1, max_size=4)))
    query = draw(query_values(operation))
    if query:
        path = f"{path}?{urlencode(query)}"
    headers: dict[str, str] = {}
    content_type = draw(
        st.sampled_from(
            [
                None,
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
                "application/problem+json",
                "multipart/form-data; boundary=x",
                "application/json; charset=x",
            ]
        )
        | header_text
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(header_text)
    if draw(st.booleans()):
        headers["Authorization"] = draw(header_text)
    return method, path, headers, draw(bodies())


def assert_problem(status: int, content_type: str | None, body: bytes) -> None:
    """Refusals are RFC 9457 problems; nothing is a server error."""
    assert status < 500, body
    if status >= 400 and body:
        assert content_type == "application/problem+json"
        document = json.loads(body)
        assert document["status"] == status
        assert "Traceback" not in document["detail"]


@given(requests())
async def test_no_request_built_from_the_openapi_document_gets_a_5xx(
    request: tuple[str, str, dict[str, str], bytes],
) -> None:
    """Whatever the method, path, query, headers and body, the answer is below 500."""
    method, path, headers, body = request
    async with open_runtime(cancel_grace=0.05) as runtime:
        client = create_app(runtime, max_body=4096).test_client()
        with trio.fail_after(10):
            # quart's TestClientProtocol.open lacks the default the real client gives `json`.
            response = await client.open(  # type: ignore[call-arg]
                path, method=method, headers=headers, data=body
            )
            data = await response.get_data(as_text=False)
        assert_problem(response.status_code, response.mimetype, data)
        runtime.cancel_all("example over")


@given(
    segment=segments,
    after=st.one_of(st.integers(-(2**70), 2**70).map(str), header_text),
    known=st.booleans(),
)
async def test_no_event_websocket_handshake_gets_a_5xx(
    segment: str, after: str, known: bool
) -> None:
    """Any execution id and `after` value is refused with a problem or served and closed cleanly."""
    async with open_runtime(cancel_grace=0.05) as runtime:
        client = create_app(runtime).test_client()
        if known:
            segment = (await runtime.start(ECHO)).execution_id
        path = f"/executions/{segment}/events?{urlencode({'after': after})}"
        with (
            trio.fail_after(10),
            pytest.RaisesGroup(
                pytest.RaisesExc((WebsocketResponseError, WebsocketDisconnectError)),
                allow_unwrapped=True,
                flatten_subgroups=True,
            ) as ended,
        ):
            async with client.websocket(path) as socket:
                while True:
                    await socket.receive()
        error: Any = ended.value
        if isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        if isinstance(error, WebsocketResponseError):
            response = error.response
            data = await response.get_data(as_text=False)
            assert_problem(response.status_code, response.mimetype, data)
        else:
            assert error.args[0] in (1000, 4409)
