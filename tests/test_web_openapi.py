"""The OpenAPI document: every route is in it, every reference resolves, responses match it."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from jsonschema import Draft202012Validator
from quart.typing import TestClientProtocol as Client

from orchestr8 import Runtime, open_runtime
from orchestr8._errors import ExecutionNotFoundError
from orchestr8._web import create_app
from orchestr8._web_openapi import openapi_document

SPEC = openapi_document(auth=False)
EXAMPLES = Path(__file__).parent.parent / "examples"
ECHO = {"schema_version": "1.0", "name": "doc",
        "steps": [{"id": "a", "agent": "echo", "input": "${inputs}"}]}
SLEEP = {"schema_version": "1.0", "name": "nap",
         "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 30}}]}


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
    """Each rule and method of the app is a documented operation, and each operation a rule."""
    app = create_app(None)  # type: ignore[arg-type]
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add((path, method.lower(), rule.websocket))
    documented = {
        (path, method, bool(operation.get("x-websocket")))
        for path, item in SPEC["paths"].items() for method, operation in item.items()
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
            declared = {parameter["name"] for parameter in operation.get("parameters", ())
                        if parameter["in"] == "path"}
            assert declared == set(re.findall(r"\{([^}]+)\}", path))
    assert len(ids) == len(set(ids))
    assert SPEC["openapi"] == "3.1.0"


def test_with_a_key_every_operation_but_health_requires_bearer() -> None:
    """With an API key the document requires bearer auth globally and exempts /health."""
    secured = openapi_document(auth=True)
    assert secured["security"] == [{"bearer": []}]
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
    accepted = await call(client, "post", "/workflows/execute", "/workflows/execute",
                          json={"workflow": ECHO, "inputs": {"x": 1}})
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
    running = (await call(client, "post", "/workflows/execute", "/workflows/execute",
                          json={"workflow": SLEEP}))["execution_id"]
    await call(client, "post", f"/executions/{running}/cancel", item + "/cancel")
    await call(client, "get", "/executions/nope", item)
    await call(client, "get", "/executions?limit=0", "/executions")
    await call(client, "post", "/workflows/execute", "/workflows/execute",
               json={"workflow": {"steps": []}})
    await call(client, "post", "/workflows/execute", "/workflows/execute", data=b"{",
               headers={"Content-Type": "application/json"})
    await call(client, "post", "/workflows/execute", "/workflows/execute", data=b"{}")
    await call(client, "delete", "/workflows/execute", "/workflows/execute")
