"""The REST API and the event WebSocket, through Quart's test client, over an in-memory runtime."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import hypercorn
import hypercorn.trio
import pytest
import trio
import trio.testing
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError
from quart.typing import TestClientProtocol as Client

from orchestr8 import Event, ExecutionRecord, Runtime, open_runtime
from orchestr8._agents._contract import AgentContext
from orchestr8._errors import ExecutionNotFoundError, JournalError, NonRetryableError
from orchestr8._journal._journal import STALLED_AFTER
from orchestr8._journal._requests import RequestKind
from orchestr8._observability._redaction import Redactor, set_default_redactor
from orchestr8._web._app import ServiceApp, create_app

GOLDEN = Path(__file__).parents[1] / "golden"
KEY = "s3cret-key-for-tests"

ECHO = {
    "schema_version": "1.0",
    "name": "greet",
    "inputs": {"type": "object", "properties": {"who": {"type": "string"}}, "required": ["who"]},
    "steps": [{"id": "greet", "agent": "echo", "input": {"hello": "${inputs.who}"}}],
    "output": {"greeting": "${steps.greet.output.hello}"},
}
SLEEP = {
    "schema_version": "1.0",
    "name": "nap",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 30}}],
}
FAIL = {
    "schema_version": "1.0",
    "name": "boom",
    "steps": [
        {
            "id": "boom",
            "agent": {"id": "fail", "config": {"message": "nope"}},
            "policy": {
                "retry": {
                    "max_attempts": 2,
                    "initial_delay": 0.01,
                    "max_delay": 0.01,
                    "jitter": "none",
                }
            },
        }
    ],
}
FAN_OUT = {
    "schema_version": "1.0",
    "name": "fan-out",
    "strategy": "parallel",
    "steps": [{"id": f"s{index}", "agent": "echo", "input": index} for index in range(40)],
}
BURST = {
    "schema_version": "1.0",
    "name": "burst",
    "steps": [
        {"id": "wait", "agent": "sleep", "input": {"seconds": 0.2}},
        *(
            {"id": f"s{index}", "agent": "echo", "input": index, "depends_on": ["wait"]}
            for index in range(40)
        ),
    ],
}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with open_runtime(cancel_grace=0.2) as opened:
        yield opened


@pytest.fixture
def app(runtime: Runtime) -> ServiceApp:
    return create_app(runtime)


@pytest.fixture
def client(app: ServiceApp) -> Client:
    return app.test_client()


async def start(client: Client, workflow: dict[str, Any], **body: Any) -> str:
    response = await client.post("/workflows/execute", json={"workflow": workflow, **body})
    assert response.status_code == 202, await response.get_data(as_text=True)
    document = await response.get_json()
    return str(document["execution_id"])


async def finish(runtime: Runtime, execution_id: str) -> None:
    """Wait until the execution has finished (it may have already)."""
    with trio.fail_after(5), contextlib.suppress(ExecutionNotFoundError):
        await runtime.get(execution_id).wait()
    assert (await runtime.result(execution_id)).status.is_terminal


async def problem(response: Any, status: int) -> dict[str, Any]:
    """Check that a response is an RFC 9457 problem with `status`, and return it."""
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    document: dict[str, Any] = json.loads(await response.get_data(as_text=True))
    assert {"type", "title", "status", "detail", "instance"} <= document.keys()
    assert document["status"] == status
    return document


async def refused(client: Client, path: str) -> Any:
    """Open a WebSocket that the server must refuse; return the HTTP response it sent instead."""
    with pytest.RaisesGroup(
        WebsocketResponseError, allow_unwrapped=True, flatten_subgroups=True
    ) as caught:
        async with client.websocket(path) as socket:
            await socket.receive()
    error: Any = caught.value
    if isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error.response


async def receive_all(socket: Any) -> tuple[list[dict[str, Any]], int]:
    """Read messages until the server closes; return the events and the close code."""
    events = []
    with trio.fail_after(5):
        while True:
            try:
                events.append(json.loads(await socket.receive()))
            except WebsocketDisconnectError as closed:
                return events, closed.args[0]


# -- starting executions ---------------------------------------------------------------------


async def test_execute_answers_202_with_location_and_the_execution_succeeds(
    client: Client, runtime: Runtime
) -> None:
    """POST /workflows/execute answers 202 with the id, status and Location; the run succeeds."""
    response = await client.post(
        "/workflows/execute", json={"workflow": ECHO, "inputs": {"who": "Ada"}}
    )
    assert response.status_code == 202
    document = await response.get_json()
    execution_id = document["execution_id"]
    assert document["status"] in ("running", "succeeded")
    assert response.headers["Location"] == f"/executions/{execution_id}"
    await finish(runtime, execution_id)
    detail = await (await client.get(response.headers["Location"])).get_json()
    assert detail["status"] == "succeeded"
    assert detail["output"] == {"greeting": "Ada"}


async def test_execution_detail_reports_timing_output_and_every_step(
    client: Client, runtime: Runtime
) -> None:
    """GET /executions/{id} reports status, times, duration, inputs, output and each step."""
    execution_id = await start(client, ECHO, inputs={"who": "Ada"}, correlation_id="req-7")
    await finish(runtime, execution_id)
    detail = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert detail["workflow"] == "greet"
    assert detail["correlation_id"] == "req-7"
    assert detail["inputs"] == {"who": "Ada"}
    assert detail["started_at"] <= detail["finished_at"]
    assert detail["duration"] >= 0
    assert detail["error"] is None
    assert detail["steps"] == {
        "greet": {
            "status": "succeeded",
            "attempts": 1,
            "duration": detail["steps"]["greet"]["duration"],
            "output": {"hello": "Ada"},
            "error": None,
            "reason": None,
            "cost_usd": None,
        }
    }
    assert detail["cost_usd"] is None
    assert detail["last_seq"] >= 5


MAP = {
    "schema_version": "1.1",
    "name": "map",
    "steps": [
        {
            "id": "each",
            "agent": {"id": "fail", "config": {"times": 0}},
            "for_each": "inputs.docs",
            "input": "${item}",
            "on_item_error": "continue",
        }
    ],
    "output": "${steps.each.output}",
}


async def test_a_map_step_counts_its_items_and_the_socket_carries_them(
    client: Client, runtime: Runtime
) -> None:
    """GET /executions/{id} counts a map's items under its step; the socket sends item events."""
    execution_id = await start(client, MAP, inputs={"docs": ["a", "b", "c"]})
    async with client.websocket(f"/executions/{execution_id}/events") as socket:
        events, code = await receive_all(socket)
    assert code == 1000
    kinds = [(event["type"], event.get("step_id")) for event in events]
    assert ("map.started", "each") in kinds
    assert ("step.succeeded", "each[2]") in kinds
    detail = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert detail["output"] == ["a", "b", "c"]
    assert list(detail["steps"]) == ["each"]
    assert detail["steps"]["each"]["items"] == {
        "count": 3,
        "succeeded": 3,
        "attempts": 3,
        "failed_items": [],
    }


async def test_a_filtered_map_counts_its_skipped_items(client: Client, runtime: Runtime) -> None:
    """A map's per-item `when`: the items it leaves out are `skipped` in the step's `items`."""
    step = {"id": "each", "agent": "echo", "for_each": "inputs.docs", "input": "${item}"}
    document = {**MAP, "steps": [{**step, "when": "item != 'b'"}]}
    execution_id = await start(client, document, inputs={"docs": ["a", "b", "c"]})
    await finish(runtime, execution_id)
    detail = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert detail["output"] == ["a", None, "c"]
    assert detail["steps"]["each"]["items"] == {
        "count": 3,
        "succeeded": 2,
        "skipped": 1,
        "attempts": 2,
        "failed_items": [],
    }


async def test_failed_step_reports_its_attempts_and_error(client: Client, runtime: Runtime) -> None:
    """A step that failed for good shows its attempts and error, and so does the execution."""
    execution_id = await start(client, FAIL)
    await finish(runtime, execution_id)
    detail = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert detail["status"] == "failed"
    assert detail["error"]["message"] == "nope"
    step = detail["steps"]["boom"]
    assert (step["status"], step["attempts"], step["error"]["message"]) == ("failed", 2, "nope")


async def test_timeout_in_the_body_bounds_the_execution(client: Client, runtime: Runtime) -> None:
    """`timeout` in the body overrides the workflow's: a 30 s nap fails after 0.1 s."""
    execution_id = await start(client, SLEEP, timeout=0.1)
    await finish(runtime, execution_id)
    detail = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert detail["status"] == "failed"


async def test_idempotency_key_returns_the_same_execution_for_a_repeat_request(
    client: Client, runtime: Runtime
) -> None:
    """A repeat request with the same Idempotency-Key gets the first execution, not a new one."""
    body = {"workflow": ECHO, "inputs": {"who": "Ada"}}
    headers = {"Idempotency-Key": "order-42"}
    first = await (await client.post("/workflows/execute", json=body, headers=headers)).get_json()
    await finish(runtime, first["execution_id"])
    repeat = await client.post("/workflows/execute", json=body, headers=headers)
    assert repeat.status_code == 202
    again = await repeat.get_json()
    assert again["execution_id"] == first["execution_id"]
    assert again["status"] == "succeeded"
    page = await (await client.get("/executions")).get_json()
    assert len(page["items"]) == 1


async def test_concurrent_requests_with_one_idempotency_key_start_one_execution(
    client: Client, runtime: Runtime
) -> None:
    """Requests racing with one Idempotency-Key all get the same single execution."""
    ids: list[str] = []

    async def post() -> None:
        response = await client.post(
            "/workflows/execute", json={"workflow": SLEEP}, headers={"Idempotency-Key": "race"}
        )
        ids.append((await response.get_json())["execution_id"])

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(post)
    assert len(set(ids)) == 1
    assert len((await (await client.get("/executions")).get_json())["items"]) == 1
    runtime.cancel_all("test over")


async def test_idempotency_key_reused_with_different_inputs_is_422(
    client: Client,
) -> None:
    """Reusing an Idempotency-Key for a different request is refused, naming the execution."""
    headers = {"Idempotency-Key": "k1"}
    first = await client.post(
        "/workflows/execute", json={"workflow": ECHO, "inputs": {"who": "Ada"}}, headers=headers
    )
    execution_id = (await first.get_json())["execution_id"]
    second = await client.post(
        "/workflows/execute", json={"workflow": ECHO, "inputs": {"who": "Bob"}}, headers=headers
    )
    document = await problem(second, 422)
    assert document["type"] == "urn:orchestr8:problem:idempotency-key-reused"
    assert execution_id in document["detail"]


async def test_idempotency_key_reused_with_only_another_secret_input_is_the_same_request(
    client: Client, runtime: Runtime
) -> None:
    """Secret inputs are compared redacted, as the journal keeps them (docs/rest.md says why)."""
    headers = {"Idempotency-Key": "k-secret"}
    workflow = {**KEYED, "steps": [{"id": "call", "agent": "echo", "input": "${inputs.api_key}"}]}
    first = await client.post(
        "/workflows/execute",
        json={"workflow": workflow, "inputs": {"api_key": "first-secret-1"}},
        headers=headers,
    )
    execution_id = (await first.get_json())["execution_id"]
    await finish(runtime, execution_id)
    repeat = await client.post(
        "/workflows/execute",
        json={"workflow": workflow, "inputs": {"api_key": "second-secret-2"}},
        headers=headers,
    )
    assert repeat.status_code == 202
    assert (await repeat.get_json())["execution_id"] == execution_id
    renamed = await client.post(
        "/workflows/execute",
        json={"workflow": {**workflow, "name": "other"}, "inputs": {"api_key": "first-secret-1"}},
        headers=headers,
    )
    assert (await problem(renamed, 422))["type"] == "urn:orchestr8:problem:idempotency-key-reused"


async def test_idempotency_keys_are_the_runtimes(client: Client, runtime: Runtime) -> None:
    """A key an embedding program used on the runtime binds requests too: repeat or 422."""
    handle = await runtime.start(ECHO, {"who": "Ada"}, idempotency_key="shared")
    await finish(runtime, handle.execution_id)
    headers = {"Idempotency-Key": "shared"}
    repeat = await client.post(
        "/workflows/execute", json={"workflow": ECHO, "inputs": {"who": "Ada"}}, headers=headers
    )
    assert (await repeat.get_json())["execution_id"] == handle.execution_id
    other = await client.post(
        "/workflows/execute", json={"workflow": ECHO, "inputs": {"who": "Bob"}}, headers=headers
    )
    document = await problem(other, 422)
    assert document["type"] == "urn:orchestr8:problem:idempotency-key-reused"
    assert handle.execution_id in document["detail"]


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "naïve"])
async def test_malformed_idempotency_key_is_400(client: Client, key: str) -> None:
    """An Idempotency-Key that is empty, too long or not visible ASCII is a 400 problem."""
    response = await client.post(
        "/workflows/execute",
        json={"workflow": ECHO, "inputs": {"who": "x"}},
        headers={"Idempotency-Key": key},
    )
    assert (await problem(response, 400))["type"] == "urn:orchestr8:problem:invalid-header"


# -- validation and malformed requests -------------------------------------------------------


def golden_cases() -> list[Any]:
    return [
        pytest.param(
            path.read_text(encoding="utf-8"),
            path.with_suffix(".expected").read_text(encoding="utf-8").splitlines(),
            id=path.stem,
        )
        for path in sorted(GOLDEN.glob("*.json"))
    ]


@pytest.mark.parametrize(("text", "expected"), golden_cases())
async def test_invalid_workflows_report_the_messages_of_validate_under_dollar_workflow(
    client: Client, text: str, expected: list[str]
) -> None:
    """Each golden broken workflow gives its `orchestr8 validate` lines, paths under $.workflow."""
    response = await client.post(
        "/workflows/execute",
        data=f'{{"workflow": {text}}}',
        headers={"Content-Type": "application/json"},
    )
    if expected[0].startswith("$: invalid JSON") or "is not valid JSON" in expected[0]:
        assert (await problem(response, 400))["type"] == "urn:orchestr8:problem:invalid-json"
        return
    document = await problem(response, 422)
    got = [f"{error['path']}: {error['message']}" for error in document["errors"]]
    assert got == ["$.workflow" + line[1:] for line in expected]


async def test_invalid_inputs_are_422_with_paths_under_inputs(client: Client) -> None:
    """Inputs that do not fit the workflow's schema are a 422 listing problems under $.inputs."""
    response = await client.post(
        "/workflows/execute", json={"workflow": ECHO, "inputs": {"who": 7}}
    )
    document = await problem(response, 422)
    assert document["type"] == "urn:orchestr8:problem:invalid-inputs"
    assert document["errors"] == [
        {"path": "$.inputs.who", "message": "expected a string, got an integer"}
    ]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ([], ["$: expected an object, got an array"]),
        ({}, ["$: missing required key 'workflow'"]),
        ({"workflow": ECHO, "input": {}}, ["$: unknown key 'input' (did you mean 'inputs'?)"]),
        ({"workflow": "x.json"}, ["$.workflow: expected an object, got a string"]),
        ({"workflow": ECHO, "inputs": [1]}, ["$.inputs: expected an object, got an array"]),
        (
            {"workflow": ECHO, "timeout": -1},
            ["$.timeout: expected a number of seconds above 0, got -1"],
        ),
        (
            {"workflow": ECHO, "correlation_id": 5},
            [
                "$.correlation_id: expected 1 to 200 printable ASCII characters, not starting "
                "or ending with a space (it is sent back in the X-Correlation-ID header), got 5"
            ],
        ),
        (
            {"workflow": ECHO, "timeout": 10**400},
            [f"$.timeout: expected a number of seconds above 0, got {str(10**400)[:40]}"],
        ),
    ],
)
async def test_request_shape_problems_are_422_with_every_problem(
    client: Client, body: Any, errors: list[str]
) -> None:
    """A JSON body of the wrong shape is a 422 naming each problem by its path in the body."""
    document = await problem(await client.post("/workflows/execute", json=body), 422)
    assert document["type"] == "urn:orchestr8:problem:invalid-request"
    assert [f"{error['path']}: {error['message']}" for error in document["errors"]] == errors


async def test_a_string_that_is_not_text_is_a_400_naming_its_path(client: Client) -> None:
    """`"\\ud800"` is valid JSON but not text, which no journal can store: refused, not run."""
    body = json.dumps({"workflow": ECHO, "correlation_id": "x\ud800"})
    response = await client.post(
        "/workflows/execute", data=body, headers={"Content-Type": "application/json"}
    )
    document = await problem(response, 400)
    assert document["detail"] == (
        "invalid JSON at $.correlation_id: a string holds an unpaired surrogate escape, which "
        "is not Unicode text"
    )


async def test_duplicate_keys_anywhere_in_the_body_are_422(client: Client) -> None:
    """Duplicate keys are reported where they are, as `validate` reports them in a file."""
    body = '{"workflow": {}, "workflow": {}, "inputs": {"who": "a", "who": "b"}}'
    response = await client.post(
        "/workflows/execute", data=body, headers={"Content-Type": "application/json"}
    )
    document = await problem(response, 422)
    assert [error["path"] for error in document["errors"]] == ["$", "$.inputs"]


async def test_an_integer_too_long_for_python_is_422_at_its_path(client: Client) -> None:
    """An integer of 5000 digits is named at its path in the body, not a bare parse failure."""
    digits = "9" * 5000
    body = f'{{"workflow": {json.dumps(ECHO)}, "inputs": {{"who": "x", "n": [{digits}]}}}}'
    response = await client.post(
        "/workflows/execute", data=body, headers={"Content-Type": "application/json"}
    )
    document = await problem(response, 422)
    assert [(error["path"], error["message"]) for error in document["errors"]] == [
        (
            "$.inputs.n[0]",
            "a number with 5000 digits is larger than any float (at most 1.7976931348623157e+308)",
        )
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"workflow": ', "invalid JSON at line 1, column 14"),
        (b'{"workflow": NaN}', "NaN is not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0xff at offset 0)"),
        (b'{"workflow": {"name": "\\ud800"}}', "invalid JSON at $.workflow.name"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
async def test_bad_json_is_400(client: Client, body: bytes, detail: str) -> None:
    """A body that is not valid JSON (or holds a lone surrogate) is a 400 problem saying why."""
    response = await client.post(
        "/workflows/execute", data=body, headers={"Content-Type": "application/json"}
    )
    document = await problem(response, 400)
    assert detail in document["detail"]


async def test_lone_surrogate_in_inputs_is_refused_and_the_journal_keeps_working(
    client: Client, runtime: Runtime
) -> None:
    """A lone surrogate (which no journal can store) is refused before it reaches the journal."""
    body = b'{"workflow": {}, "inputs": {"who": "\\udc80"}}'
    response = await client.post(
        "/workflows/execute", data=body, headers={"Content-Type": "application/json"}
    )
    await problem(response, 400)
    execution_id = await start(client, ECHO, inputs={"who": "still fine"})
    await finish(runtime, execution_id)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_non_json_content_type_is_415(client: Client, content_type: str | None) -> None:
    """A body that is not declared application/json (UTF-8) is a 415 problem."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await client.post(
        "/workflows/execute", data=json.dumps({"workflow": ECHO}), headers=headers
    )
    await problem(response, 415)


async def test_json_suffix_media_types_are_accepted(client: Client, runtime: Runtime) -> None:
    """`application/<x>+json` bodies are JSON too."""
    response = await client.post(
        "/workflows/execute",
        data=json.dumps({"workflow": ECHO, "inputs": {"who": "x"}}),
        headers={"Content-Type": "application/vnd.orchestr8+json"},
    )
    assert response.status_code == 202


async def test_body_over_the_limit_is_413(runtime: Runtime) -> None:
    """A body larger than `max_body` is a 413 problem, whatever it holds."""
    client = create_app(runtime, max_body=100).test_client()
    response = await client.post(
        "/workflows/execute", data=b"x" * 101, headers={"Content-Type": "application/json"}
    )
    document = await problem(response, 413)
    assert "100 bytes" in document["detail"]


async def test_default_body_limit_is_one_mib(client: Client) -> None:
    """The default limit is 1 MiB: a body of 1 MiB + 1 byte is refused."""
    response = await client.post(
        "/workflows/execute",
        data=b" " * (1024 * 1024 + 1),
        headers={"Content-Type": "application/json"},
    )
    await problem(response, 413)


async def test_wrong_method_is_405_with_allow(client: Client) -> None:
    """A method a route does not take is a 405 problem with an Allow header."""
    response = await client.delete("/workflows/execute")
    document = await problem(response, 405)
    assert "POST" in response.headers["Allow"]
    assert document["instance"] == "/workflows/execute"


async def test_unknown_route_is_404(client: Client) -> None:
    """An unknown route is a 404 problem pointing at /openapi.json."""
    document = await problem(await client.get("/nope"), 404)
    assert "/openapi.json" in document["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/executions/nope"),
        ("GET", "/executions/nope/journal"),
        ("POST", "/executions/nope/cancel"),
    ],
)
async def test_unknown_execution_is_404(client: Client, method: str, path: str) -> None:
    """Reading or cancelling an unknown execution is a 404 problem of its own type."""
    # quart's TestClientProtocol.open lacks the default the real client gives `json`.
    response = await client.open(path, method=method)  # type: ignore[call-arg]
    document = await problem(response, 404)
    assert document["type"] == "urn:orchestr8:problem:execution-not-found"


async def test_unexpected_error_is_a_500_problem_without_internals(
    client: Client,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug answers a 500 problem without traceback or message, and is logged for operators."""

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail 1234")

    monkeypatch.setattr(runtime.journal, "list_executions", broken)
    with caplog.at_level(logging.ERROR, "orchestr8.web"):
        response = await client.get("/executions")
    document = await problem(response, 500)
    text = json.dumps(document)
    assert "internal detail" not in text
    assert "Traceback" not in text
    assert "internal detail 1234" in caplog.text


async def test_journal_failure_is_a_503_problem(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the journal cannot be used, requests get a 503 problem."""

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise JournalError("disk full")

    monkeypatch.setattr(runtime.journal, "get_execution", failing)
    document = await problem(await client.get("/executions/x"), 503)
    assert document["type"] == "urn:orchestr8:problem:journal-unavailable"


# -- reading executions ----------------------------------------------------------------------


async def test_list_is_newest_first_filters_by_status_and_pages_with_a_cursor(
    client: Client, runtime: Runtime
) -> None:
    """GET /executions lists newest first, filters by status and pages with next_cursor."""
    ids = []
    for name in ("a", "b", "c"):
        ids.append(await start(client, ECHO, inputs={"who": name}))
        await finish(runtime, ids[-1])
    failed = await start(client, FAIL)
    await finish(runtime, failed)
    page = await (await client.get("/executions?limit=2")).get_json()
    assert [item["execution_id"] for item in page["items"]] == [failed, ids[2]]
    rest = await (await client.get(f"/executions?limit=2&cursor={page['next_cursor']}")).get_json()
    assert [item["execution_id"] for item in rest["items"]] == [ids[1], ids[0]]
    assert rest["next_cursor"] is None
    only = await (await client.get("/executions?status=failed")).get_json()
    assert [item["execution_id"] for item in only["items"]] == [failed]


async def test_an_unfinished_execution_no_process_runs_reads_as_interrupted(
    tmp_path: Path,
) -> None:
    """On a file journal, GET /executions[/{id}] say `interrupted` for it; `?status=` filters."""
    async with open_runtime(journal=tmp_path / "journal.db", cancel_grace=0.2) as runtime:
        client = create_app(runtime).test_client()
        await orphan(runtime, "orphan-3")
        live = await start(client, SLEEP)
        detail = await (await client.get("/executions/orphan-3")).get_json()
        assert detail["status"] == "interrupted"
        assert (await (await client.get(f"/executions/{live}")).get_json())["status"] == "running"
        listed = await (await client.get("/executions")).get_json()
        assert {item["execution_id"]: item["status"] for item in listed["items"]} == {
            "orphan-3": "interrupted",
            live: "running",
        }
        for status, expected in (("interrupted", ["orphan-3"]), ("running", [live])):
            page = await (await client.get(f"/executions?status={status}")).get_json()
            assert [item["execution_id"] for item in page["items"]] == expected


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=zzz", "cursor"),
        ("id_prefix=ABC", "id_prefix"),
        ("id_prefix=xyz", "id_prefix"),
        (f"id_prefix={'a' * 33}", "id_prefix"),
    ],
)
async def test_bad_list_parameters_are_400(client: Client, query: str, name: str) -> None:
    """A bad status, limit or cursor is a 400 problem naming the parameter."""
    document = await problem(await client.get(f"/executions?{query}"), 400)
    assert document["errors"][0]["path"] == name


async def test_list_filters_by_workflow_and_id_prefix_with_status_and_paging(
    client: Client, runtime: Runtime
) -> None:
    """`workflow` keeps one workflow's executions, `id_prefix` the ids starting so; both combine."""
    greeted = []
    for name in ("a", "b", "c"):
        greeted.append(await start(client, ECHO, inputs={"who": name}))
        await finish(runtime, greeted[-1])
    failed = await start(client, FAIL)
    await finish(runtime, failed)

    async def listed(query: str) -> list[str]:
        page = await (await client.get(f"/executions?{query}")).get_json()
        return [item["execution_id"] for item in page["items"]]

    assert await listed("workflow=greet") == greeted[::-1]
    assert await listed("workflow=boom&status=failed") == [failed]
    assert await listed("workflow=greet&status=failed") == []
    assert await listed(f"id_prefix={failed[:6]}") == [failed]
    assert await listed(f"workflow=greet&id_prefix={failed[:32]}") == []
    assert await listed("workflow=&id_prefix=") == [failed, *greeted[::-1]]
    first = await (await client.get("/executions?workflow=greet&limit=2")).get_json()
    rest = await listed(f"workflow=greet&limit=2&cursor={first['next_cursor']}")
    assert [item["execution_id"] for item in first["items"]] + rest == greeted[::-1]


async def test_journal_pages_events_in_seq_order_with_the_next_cursor(
    client: Client, runtime: Runtime
) -> None:
    """GET /executions/{id}/journal returns events after `after`, with next_after and has_more."""
    execution_id = await start(client, ECHO, inputs={"who": "x"})
    await finish(runtime, execution_id)
    seqs: list[int] = []
    after = 0
    while True:
        page = await (
            await client.get(f"/executions/{execution_id}/journal?after={after}&limit=2")
        ).get_json()
        seqs += [event["seq"] for event in page["events"]]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seqs == list(range(1, len(seqs) + 1))
    last = await (await client.get(f"/executions/{execution_id}/journal")).get_json()
    assert last["events"][-1]["type"] == "execution.succeeded"


@pytest.mark.parametrize(
    "query",
    [
        "after=-1",
        "after=x",
        "after=--5",
        "after=1e3",
        "after=" + "9" * 30,
        "limit=0",
        "limit=1001",
        "limit=%C2%B2",
    ],
)
async def test_bad_journal_parameters_are_400(client: Client, runtime: Runtime, query: str) -> None:
    """A negative or non-integer `after`, or a `limit` out of range, is a 400 problem."""
    execution_id = await start(client, ECHO, inputs={"who": "x"})
    await problem(await client.get(f"/executions/{execution_id}/journal?{query}"), 400)


# -- cancelling ------------------------------------------------------------------------------


async def test_cancel_answers_202_and_the_execution_ends_cancelled(
    client: Client, runtime: Runtime
) -> None:
    """Cancelling a running execution answers 202 (twice too) and it ends `cancelled`."""
    execution_id = await start(client, SLEEP)
    first = await client.post(f"/executions/{execution_id}/cancel")
    assert first.status_code == 202
    assert (await first.get_json())["cancel_requested"] is True
    assert (await client.post(f"/executions/{execution_id}/cancel")).status_code == 202
    await finish(runtime, execution_id)
    detail = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert detail["status"] == "cancelled"
    document = await problem(await client.post(f"/executions/{execution_id}/cancel"), 409)
    assert document["type"] == "urn:orchestr8:problem:execution-finished"


async def test_cancel_after_the_end_is_out_is_409_even_while_the_run_winds_up(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once an execution has emitted its end, cancelling it is 409, though its run still flushes."""
    execution_id = await start(client, SLEEP)
    journal = runtime.journal
    append_nowait, flush = journal.append_nowait, journal.flush
    ended, holding, released = trio.Event(), trio.Event(), trio.Event()

    def noting_the_end(event: Event) -> None:
        append_nowait(event)
        if event.is_terminal:
            ended.set()

    async def holding_the_final_flush() -> None:
        # The run's flush after its terminal event is held, so the run is not done yet.
        if ended.is_set() and not holding.is_set():
            holding.set()
            await released.wait()
        await flush()

    monkeypatch.setattr(journal, "append_nowait", noting_the_end)
    monkeypatch.setattr(journal, "flush", holding_the_final_flush)
    assert (await client.post(f"/executions/{execution_id}/cancel")).status_code == 202
    try:
        with trio.fail_after(5):
            await holding.wait()
        assert not runtime.get(execution_id).done
        document = await problem(await client.post(f"/executions/{execution_id}/cancel"), 409)
        assert document["type"] == "urn:orchestr8:problem:execution-finished"
    finally:
        released.set()
    await finish(runtime, execution_id)


async def test_cancel_of_an_execution_no_process_runs_cancels_it_now(
    client: Client, runtime: Runtime
) -> None:
    """An execution left `running` by a dead process is cancelled here, durably: 200."""
    await orphan(runtime, "orphan-1")
    response = await client.post(
        "/executions/orphan-1/cancel", json={"reason": "its process died", "by": "ops"}
    )
    assert response.status_code == 200
    document = await response.get_json()
    assert (document["execution_id"], document["status"]) == ("orphan-1", "cancelled")
    assert response.headers["Location"] == "/executions/orphan-1"
    events = await runtime.journal.events("orphan-1")
    assert (events[-1].type, events[-1].data["reason"]) == (
        "execution.cancelled",
        "its process died",
    )
    again = await problem(await client.post("/executions/orphan-1/cancel"), 409)
    assert again["detail"] == "execution orphan-1 already cancelled; nothing to cancel"


async def test_cancel_of_an_execution_another_process_runs_records_a_request(
    tmp_path: Path,
) -> None:
    """Locked elsewhere: 202 with the request's id; the request keeps the body's reason, force."""
    from orchestr8._execution._lock import ExecutionLocks

    async with open_runtime(journal=tmp_path / "journal.db") as runtime:
        client = create_app(runtime).test_client()
        await orphan(runtime, "elsewhere")
        other = ExecutionLocks(runtime.journal.path)
        try:
            assert other.acquire("elsewhere")
            response = await client.post(
                "/executions/elsewhere/cancel", json={"reason": "enough", "force": True}
            )
        finally:
            other.close()
        assert response.status_code == 202
        document = await response.get_json()
        assert document["cancel_requested"] is True
        [request] = await runtime.journal.pending_requests(["elsewhere"])
        assert document["request_id"] == request.request_id
        assert request.body == {"reason": "enough", "force": True, "by": "api"}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"reason": 3}, "$.reason"),
        ({"reason": ""}, "$.reason"),
        ({"by": "x" * 1001}, "$.by"),
        ({"force": "yes"}, "$.force"),
        ({"forse": True}, "$"),
        ([], "$"),
    ],
)
async def test_a_bad_cancel_body_is_422_naming_the_problem(
    client: Client, runtime: Runtime, body: Any, path: str
) -> None:
    """Each problem of the optional body is named by its JSON path; nothing is cancelled."""
    await orphan(runtime, "orphan-4")
    document = await problem(await client.post("/executions/orphan-4/cancel", json=body), 422)
    assert [error["path"] for error in document["errors"]] == [path]
    assert (await runtime.journal.get_execution("orphan-4")).status == "running"


async def orphan(runtime: Runtime, execution_id: str) -> None:
    """Record an execution that started in some other process and never finished."""
    await runtime.journal.create_execution(
        ExecutionRecord(execution_id=execution_id, workflow_name="ghost", workflow=SLEEP)
    )
    await runtime.journal.append(
        Event(execution_id, 1, "2025-01-01T00:00:00.000Z", 0.0, "execution.started")
    )
    await runtime.journal.flush()


# -- health, draining, security --------------------------------------------------------------


async def test_health_is_ok_then_draining_refuses_new_executions(
    app: ServiceApp, client: Client
) -> None:
    """/health says ok; once draining it says so with 503 and new executions get 503."""
    health = await client.get("/health")
    assert (await health.get_json())["status"] == "ok"
    app.start_draining()
    draining = await client.get("/health")
    assert draining.status_code == 503
    assert (await draining.get_json())["status"] == "draining"
    response = await client.post("/workflows/execute", json={"workflow": ECHO})
    assert (await problem(response, 503))["type"] == "urn:orchestr8:problem:shutting-down"


async def test_an_accepted_execution_is_journaled_with_its_started_event(tmp_path: Path) -> None:
    """Every 202 stands for an execution whose `execution.started` is committed with it."""
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path) as runtime:
        client = create_app(runtime).test_client()
        accepted = []
        for _ in range(10):
            accepted.append(await start(client, ECHO, inputs={"who": "you"}))
            with contextlib.closing(sqlite3.connect(path)) as connection:
                first = connection.execute(
                    "SELECT type FROM events WHERE execution_id = ? AND seq = 1", (accepted[-1],)
                ).fetchone()
            assert first == ("execution.started",)
        for execution_id in accepted:
            await finish(runtime, execution_id)


async def test_health_is_degraded_with_the_reason_while_the_journal_failed(
    runtime: Runtime, client: Client
) -> None:
    """A failed journal makes /health 503 `degraded`, naming the failure; reopened, it is ok."""
    await runtime.journal.append(
        Event("ghost", 1, "2025-01-01T00:00:00.000Z", 0.0, "step.progress", None, None, {})
    )
    with pytest.raises(JournalError):
        await runtime.journal.flush()
    degraded = await client.get("/health")
    assert degraded.status_code == 503
    document = await degraded.get_json()
    assert document == {
        "status": "degraded",
        "version": document["version"],
        "journal": "failed",
        "reason": "the journal failed: event seq 1 (step.progress) of execution 'ghost': no "
        "such execution (record it first)",
    }
    response = await client.post(
        "/workflows/execute", json={"workflow": ECHO, "inputs": {"who": "you"}}
    )
    assert (await problem(response, 503))["type"] == "urn:orchestr8:problem:journal-unavailable"
    await runtime.journal.reopen()
    healthy = await client.get("/health")
    assert (healthy.status_code, (await healthy.get_json())["status"]) == (200, "ok")
    await finish(runtime, await start(client, ECHO, inputs={"who": "you"}))


async def test_health_is_degraded_while_a_journal_write_is_stalled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A batch held up past STALLED_AFTER (trio clock) makes /health `degraded`, `stalled`."""
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path) as runtime:
        client = create_app(runtime).test_client()
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(
                        client.post,
                        "/workflows/execute",
                        json={"workflow": ECHO, "inputs": {"who": "you"}},
                    )
                )
                await trio.sleep(STALLED_AFTER + 1)
                stalled = await client.get("/health")
                other.execute("ROLLBACK")
        assert stalled.status_code == 503
        document = await stalled.get_json()
        assert (document["status"], document["journal"]) == ("degraded", "stalled")
        assert document["reason"].startswith("the journal is stalled: a batch has been writing")
        healthy = await client.get("/health")
        assert (await healthy.get_json())["status"] == "ok"


ROUTES = [
    ("GET", "/openapi.json"),
    ("POST", "/workflows/execute"),
    ("GET", "/executions"),
    ("GET", "/executions/x"),
    ("GET", "/executions/x/journal"),
    ("POST", "/executions/x/cancel"),
    ("GET", "/no/such/route"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {KEY}", KEY])
async def test_with_a_key_every_route_but_health_needs_the_bearer_key(
    runtime: Runtime, method: str, path: str, authorization: str | None
) -> None:
    """With an API key, any route but /health without `Bearer <key>` is a 401 problem."""
    client = create_app(runtime, api_key=KEY).test_client()
    headers = {} if authorization is None else {"Authorization": authorization}
    # quart's TestClientProtocol.open lacks the default the real client gives `json`.
    response = await client.open(path, method=method, headers=headers)  # type: ignore[call-arg]
    document = await problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert KEY not in json.dumps(document)
    # Problems are redacted whole: the server's own words must survive that intact.
    assert document["detail"] == "send the API key in the Authorization header, as `Bearer <key>`"


async def test_with_the_key_requests_pass_and_health_needs_none(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The right key opens every route; /health answers without one; the key is never logged."""
    client = create_app(runtime, api_key=KEY).test_client()
    headers = {"Authorization": f"Bearer {KEY}"}
    with caplog.at_level(logging.DEBUG):
        assert (await client.get("/health")).status_code == 200
        response = await client.post(
            "/workflows/execute", json={"workflow": ECHO, "inputs": {"who": "x"}}, headers=headers
        )
        assert response.status_code == 202
        execution_id = (await response.get_json())["execution_id"]
        await finish(runtime, execution_id)
        assert (await client.get(f"/executions/{execution_id}", headers=headers)).status_code == 200
    assert KEY not in caplog.text
    events = await runtime.journal.events(execution_id)
    record = await runtime.journal.get_execution(execution_id)
    assert KEY not in json.dumps([event.to_json() for event in events]) + repr(record)


async def test_websocket_needs_the_key_too(runtime: Runtime, client: Client) -> None:
    """With a key, the WebSocket handshake without it is refused with a 401 problem."""
    secured = create_app(runtime, api_key=KEY).test_client()
    execution_id = await start(client, ECHO, inputs={"who": "x"})
    response = await refused(secured, f"/executions/{execution_id}/events")
    assert (await problem(response, 401))["type"] == "urn:orchestr8:problem:unauthorized"
    async with secured.websocket(
        f"/executions/{execution_id}/events", headers={"Authorization": f"Bearer {KEY}"}
    ) as socket:
        events, code = await receive_all(socket)
    assert (events[-1]["type"], code) == ("execution.succeeded", 1000)


@pytest.mark.parametrize("key", ["", "tab\tkey", "clé"])
def test_unusable_api_keys_are_refused(key: str) -> None:
    """An empty or non-printable-ASCII API key is a configuration error."""
    with pytest.raises(ValueError, match="API key"):
        create_app(None, api_key=key)  # type: ignore[arg-type]


# -- the event WebSocket ---------------------------------------------------------------------


async def test_socket_sends_past_then_live_events_in_order_and_closes_1000(
    client: Client, runtime: Runtime
) -> None:
    """The socket sends every event once, in seq order from 1, then closes 1000 at the end."""
    execution_id = await start(client, FAN_OUT)
    async with client.websocket(f"/executions/{execution_id}/events") as socket:
        events, code = await receive_all(socket)
    assert code == 1000
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "execution.succeeded"
    assert len(events) == len(await runtime.journal.events(execution_id))


async def test_a_loop_shows_its_iterations_in_the_document_and_on_the_socket(
    client: Client, runtime: Runtime
) -> None:
    """GET /executions/{id} lists each iteration as `ID#k`; the socket sends iteration.finished."""
    loop = {
        "schema_version": "1.1",
        "name": "loop",
        "steps": [
            {
                "id": "draft",
                "agent": "echo",
                "input": {"round": "${iteration}"},
                "repeat": {"until": "output.round == `2`", "max_iterations": 3},
            }
        ],
    }
    execution_id = await start(client, loop)
    async with client.websocket(f"/executions/{execution_id}/events") as socket:
        events, _ = await receive_all(socket)
    finished = [event for event in events if event["type"] == "iteration.finished"]
    assert [(e["step_id"], e["data"]) for e in finished] == [
        ("draft", {"iteration": 1, "until": False}),
        ("draft", {"iteration": 2, "until": True}),
    ]
    detail = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert list(detail["steps"]) == ["draft", "draft#1", "draft#2"]
    assert detail["steps"]["draft"]["output"] == {"round": 2}
    assert detail["steps"]["draft#1"]["output"] == {"round": 1}


async def test_socket_after_a_finished_execution_replays_from_after(
    client: Client, runtime: Runtime
) -> None:
    """With `after=N` only later events come; for a finished execution the socket then closes."""
    execution_id = await start(client, ECHO, inputs={"who": "x"})
    await finish(runtime, execution_id)
    async with client.websocket(f"/executions/{execution_id}/events?after=3") as socket:
        events, code = await receive_all(socket)
    assert events[0]["seq"] == 4
    assert (events[-1]["type"], code) == ("execution.succeeded", 1000)


async def test_socket_follows_a_cancel_to_execution_cancelled(
    client: Client, runtime: Runtime
) -> None:
    """A socket following a long run sees `execution.cancelled` after a cancel, then 1000."""
    execution_id = await start(client, SLEEP)
    async with client.websocket(f"/executions/{execution_id}/events") as socket:
        first = json.loads(await socket.receive())
        assert first["type"] == "execution.started"
        await client.post(f"/executions/{execution_id}/cancel")
        events, code = await receive_all(socket)
    assert (events[-1]["type"], code) == ("execution.cancelled", 1000)


async def test_slow_socket_is_closed_1013_and_resumes_with_after_losing_nothing(
    runtime: Runtime,
) -> None:
    """A client reading nothing falls behind: closed 1013; reconnecting with after= loses none."""
    client = create_app(runtime, events_buffer=8).test_client()
    execution_id = await start(client, BURST)
    async with client.websocket(f"/executions/{execution_id}/events") as socket:
        seqs = [json.loads(await socket.receive())["seq"]]
        # The relay is live when the burst comes; the client reads nothing; the run does not wait.
        await trio.testing.wait_all_tasks_blocked()
        await finish(runtime, execution_id)
        events, code = await receive_all(socket)
    assert code == 1013
    seqs += [event["seq"] for event in events]
    assert seqs == list(range(1, len(seqs) + 1))
    async with client.websocket(f"/executions/{execution_id}/events?after={seqs[-1]}") as socket:
        events, code = await receive_all(socket)
    seqs += [event["seq"] for event in events]
    assert code == 1000
    assert seqs == list(range(1, len(await runtime.journal.events(execution_id)) + 1))


async def test_socket_of_an_execution_no_process_runs_closes_4409(
    client: Client, runtime: Runtime
) -> None:
    """An unfinished execution that nothing runs gets its past events, then close 4409."""
    await orphan(runtime, "orphan-2")
    async with client.websocket("/executions/orphan-2/events") as socket:
        events, code = await receive_all(socket)
    assert ([event["type"] for event in events], code) == (["execution.started"], 4409)


async def test_sockets_close_1001_when_the_server_shuts_down(
    app: ServiceApp, client: Client, runtime: Runtime
) -> None:
    """Closing the event streams closes open sockets with 1001 while the run goes on."""
    execution_id = await start(client, SLEEP)
    async with client.websocket(f"/executions/{execution_id}/events") as socket:
        await socket.receive()
        app.close_event_streams()
        _, code = await receive_all(socket)
    assert code == 1001
    assert not runtime.get(execution_id).done
    runtime.cancel_all("test over")


@pytest.mark.parametrize(("query", "status"), [("?after=-1", 400), ("?after=x", 400), ("", 404)])
async def test_socket_handshake_errors_are_problem_responses(
    client: Client, query: str, status: int
) -> None:
    """A bad `after` (400) or an unknown execution (404) refuses the handshake with a problem."""
    await problem(await refused(client, f"/executions/nope/events{query}"), status)


async def test_socket_handshake_with_a_failed_journal_is_refused_503(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the journal cannot be read, the handshake is refused with a 503 problem."""

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise JournalError("disk full")

    monkeypatch.setattr(runtime.journal, "get_execution", failing)
    document = await problem(await refused(client, "/executions/x/events"), 503)
    assert document["instance"] == "/executions/x/events"


async def test_refusing_a_body_unread_closes_the_connection_and_reading_it_keeps_it(
    runtime: Runtime,
) -> None:
    """A request refused before its body is read gets `Connection: close`; others keep alive."""
    client = create_app(runtime, api_key=KEY).test_client()
    body = json.dumps({"workflow": ECHO, "inputs": {"who": "x"}})

    async def post(content_type: str, **headers: str) -> Any:
        return await client.post(
            "/workflows/execute",
            data=body,
            headers={"Content-Type": content_type, "Content-Length": str(len(body)), **headers},
        )

    refused = await post("application/json")
    assert (refused.status_code, refused.headers["Connection"]) == (401, "close")
    auth = {"Authorization": f"Bearer {KEY}"}
    unsupported = await post("text/plain", **auth)
    assert (unsupported.status_code, unsupported.headers["Connection"]) == (415, "close")
    accepted = await post("application/json", **auth)
    assert accepted.status_code == 202
    assert "Connection" not in accepted.headers


async def test_correlation_id_header_is_stored_on_the_execution_and_returned(
    client: Client, runtime: Runtime
) -> None:
    """X-Correlation-ID names the execution's correlation id; every response carries one."""
    response = await client.post(
        "/workflows/execute",
        json={"workflow": ECHO, "inputs": {"who": "Ada"}},
        headers={"X-Correlation-ID": "req-17"},
    )
    assert response.status_code == 202
    assert response.headers["X-Correlation-ID"] == "req-17"
    execution_id = (await response.get_json())["execution_id"]
    await finish(runtime, execution_id)
    record = await runtime.journal.get_execution(execution_id)
    assert record.correlation_id == "req-17"
    started = (await runtime.journal.events(execution_id))[0]
    assert started.data["correlation_id"] == "req-17"
    generated = await client.get("/health")
    assert len(generated.headers["X-Correlation-ID"]) == 32
    echoed = await client.get("/executions", headers={"X-Correlation-ID": "trace-9"})
    assert echoed.headers["X-Correlation-ID"] == "trace-9"


@pytest.mark.parametrize(
    "correlation_id", ["a\nb", "a\rb", "a\u0000b", "caf\u00e9", "\u2603", " padded", "x" * 201, ""]
)
async def test_a_correlation_id_no_header_can_carry_is_422_and_runs_nothing(
    client: Client, runtime: Runtime, correlation_id: str
) -> None:
    """A body correlation id X-Correlation-ID could not carry is refused before anything runs."""
    response = await client.post(
        "/workflows/execute",
        json={"workflow": ECHO, "inputs": {"who": "Ada"}, "correlation_id": correlation_id},
    )
    document = await problem(response, 422)
    assert [error["path"] for error in document["errors"]] == ["$.correlation_id"]
    assert len(response.headers["X-Correlation-ID"]) == 32
    assert (await runtime.journal.list_executions()).items == ()


async def test_a_header_http_cannot_carry_is_a_500_problem_over_a_real_server(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A response header HTTP cannot carry becomes a logged 500 problem, never an empty answer."""
    app = create_app(runtime)

    async def unsendable() -> Any:
        return "body", 200, {"X-Broken": "a\u0000b", "X-Snowman": "\u2603"}

    app.add_url_rule("/unsendable", "unsendable", unsendable, methods=["GET"])
    config = hypercorn.Config()
    config.bind = ["127.0.0.1:0"]
    stop = trio.Event()
    with caplog.at_level(logging.ERROR, "orchestr8.web"):
        async with trio.open_nursery() as nursery:
            urls: list[str] = await nursery.start(
                partial(hypercorn.trio.serve, app, config, shutdown_trigger=stop.wait)
            )
            async with httpx.AsyncClient(base_url=urls[0]) as http:
                response = await http.get("/unsendable", headers={"X-Correlation-ID": "req-5"})
            stop.set()
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["X-Correlation-ID"] == "req-5"
    assert response.json()["detail"] == (
        "the server could not encode its response header X-Broken, X-Snowman; the error was logged"
    )
    assert "X-Broken, X-Snowman" in caplog.text


async def test_idempotency_holds_for_a_workflow_whose_config_holds_a_secret(
    client: Client, runtime: Runtime
) -> None:
    """The journal keeps the workflow redacted; a repeat request still matches it."""
    config = {"url": "http://127.0.0.1:9/x", "headers": {"Authorization": "Bearer abcdefgh123"}}
    workflow = {
        "schema_version": "1.0",
        "name": "secretive",
        "steps": [
            {
                "id": "s",
                "agent": {"id": "http", "config": config},
                "policy": {"retry": {"max_attempts": 1}},
            }
        ],
    }
    headers = {"Idempotency-Key": "secret-1"}
    first = await client.post("/workflows/execute", json={"workflow": workflow}, headers=headers)
    assert first.status_code == 202, await first.get_data(as_text=True)
    first_id = (await first.get_json())["execution_id"]
    await finish(runtime, first_id)
    again = await client.post("/workflows/execute", json={"workflow": workflow}, headers=headers)
    assert again.status_code == 202, await again.get_data(as_text=True)
    assert (await again.get_json())["execution_id"] == first_id


async def test_metrics_are_served_in_the_prometheus_text_format(
    client: Client, runtime: Runtime
) -> None:
    """GET /metrics counts steps by workflow, step and agent, in Prometheus text format."""
    workflow = {
        "schema_version": "1.0",
        "name": "scraped",
        "steps": [
            {"id": "ok", "agent": "echo", "input": 1},
            {
                "id": "bad",
                "agent": "fail",
                "input": 2,
                "policy": {"retry": {"max_attempts": 2, "initial_delay": 0.01}},
            },
        ],
    }
    execution_id = await start(client, workflow)
    await finish(runtime, execution_id)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = await response.get_data(as_text=True)
    labels = 'workflow_name="scraped",step_id="ok",agent_id="echo"'
    assert "# TYPE orchestr8_step_succeeded_total counter" in text
    assert f"orchestr8_step_succeeded_total{{{labels}}} " in text
    bad = 'workflow_name="scraped",step_id="bad",agent_id="fail"'
    assert f"orchestr8_step_failed_total{{{bad}}} 1" in text
    assert f"orchestr8_step_retries_total{{{bad}}} 1" in text
    assert 'orchestr8_executions_in_flight{workflow_name="scraped"} 0' in text
    assert "orchestr8_step_duration_seconds_bucket{" in text


# -- resume, and secrets in problem bodies ---------------------------------------------------

DOWN: dict[str, int] = {}
"""Failures still to come, by step id, for `down_once`."""


async def down_once(input: Any, context: AgentContext) -> Any:
    """Fail while `DOWN[step_id]` counts down, then return the input (a fault fixed later)."""
    if DOWN.get(context.step_id, 0) > 0:
        DOWN[context.step_id] -= 1
        raise NonRetryableError("the service was down")
    return input


FLAKY_STEP: dict[str, Any] = {
    "id": "greet",
    "agent": {"id": "python", "config": {"callable": f"{__name__}:down_once"}},
    "input": {"hello": "${inputs.who}"},
    "policy": {"retry": {"max_attempts": 1}},
}
"""`ECHO`'s step, failing while `DOWN` says so (then echoing its input as before)."""

KEYED: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "keyed",
    "inputs": {
        "type": "object",
        "properties": {"api_key": {"type": "string"}},
        "required": ["api_key"],
    },
    "steps": [
        {
            "id": "call",
            "agent": {"id": "python", "config": {"callable": f"{__name__}:down_once"}},
            "input": {"key": "${inputs.api_key}"},
            "policy": {"retry": {"max_attempts": 1}},
        }
    ],
}


async def test_resume_continues_an_execution_and_names_redacted_inputs_it_needs(
    client: Client, runtime: Runtime
) -> None:
    """POST resume: 422 naming the redacted input, then 202 with it; the execution succeeds."""
    DOWN["call"] = 1
    execution_id = await start(client, KEYED, inputs={"api_key": "rest-key-12345"})
    await finish(runtime, execution_id)
    path = f"/executions/{execution_id}/resume"
    missing = await problem(await client.post(path), 422)
    assert missing["type"] == "urn:orchestr8:problem:invalid-inputs"
    assert [error["path"] for error in missing["errors"]] == ["$.inputs.api_key"]
    response = await client.post(path, json={"inputs": {"api_key": "rest-key-12345"}})
    assert response.status_code == 202, await response.get_data(as_text=True)
    assert response.headers["Location"] == f"/executions/{execution_id}"
    assert (await response.get_json())["status"] == "running"
    await finish(runtime, execution_id)
    document = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert document["status"] == "succeeded"
    assert document["inputs"] == {"api_key": "***"}
    done = await problem(await client.post(path, json={}), 409)
    assert done["type"] == "urn:orchestr8:problem:execution-not-resumable"
    assert "already succeeded" in done["detail"]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
async def test_an_empty_resume_body_is_no_body_whatever_its_content_type(
    client: Client, runtime: Runtime, content_type: str | None
) -> None:
    """The body is optional: zero bytes resume as is, even declared as JSON."""
    DOWN["greet"] = 1
    workflow = {**ECHO, "steps": [FLAKY_STEP]}
    execution_id = await start(client, workflow, inputs={"who": "x"})
    await finish(runtime, execution_id)
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(f"/executions/{execution_id}/resume", data=b"", headers=headers)
    assert response.status_code == 202, await response.get_data(as_text=True)
    await finish(runtime, execution_id)
    document = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert document["status"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "path"),
    [({"inputs": [1]}, "$.inputs"), ({"timeout": 0}, "$.timeout"), ({"input": {}}, "$")],
)
async def test_a_malformed_resume_body_is_422(
    client: Client, runtime: Runtime, body: Any, path: str
) -> None:
    """The resume body's shape is checked before anything is resumed."""
    execution_id = await start(client, ECHO, inputs={"who": "x"})
    await finish(runtime, execution_id)
    document = await problem(
        await client.post(f"/executions/{execution_id}/resume", json=body), 422
    )
    assert [error["path"] for error in document["errors"]] == [path]


async def test_resuming_an_unknown_execution_is_404(client: Client) -> None:
    """As for every other route of an execution."""
    document = await problem(await client.post("/executions/nope/resume"), 404)
    assert document["type"] == "urn:orchestr8:problem:execution-not-found"


async def test_a_missing_secret_makes_resume_422_naming_it(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`${secrets.NAME}` is resolved again on resume; unset, the problem names it."""
    monkeypatch.setenv("ORCHESTR8_SECRET_REST_TOKEN", "rest-token-value-1")
    workflow = {
        **KEYED,
        "inputs": {"type": "object"},
        "steps": [{**KEYED["steps"][0], "input": "${secrets.REST_TOKEN}"}],
    }
    DOWN["call"] = 1
    execution_id = await start(client, workflow)
    await finish(runtime, execution_id)
    monkeypatch.delenv("ORCHESTR8_SECRET_REST_TOKEN")
    document = await problem(await client.post(f"/executions/{execution_id}/resume"), 422)
    assert document["type"] == "urn:orchestr8:problem:missing-secrets"
    assert document["errors"] == [{"path": "secrets.REST_TOKEN", "message": "not set"}]
    assert "ORCHESTR8_SECRET_REST_TOKEN" in document["detail"]


async def test_executing_a_workflow_whose_secret_is_not_set_is_422(client: Client) -> None:
    """Nothing is started; the problem names the secret and the variable to set."""
    workflow = {
        **ECHO,
        "steps": [{"id": "greet", "agent": "echo", "input": "${secrets.NOT_SET_ANYWHERE}"}],
    }
    response = await client.post(
        "/workflows/execute", json={"workflow": workflow, "inputs": {"who": "x"}}
    )
    document = await problem(response, 422)
    assert document["type"] == "urn:orchestr8:problem:missing-secrets"
    assert document["errors"] == [{"path": "secrets.NOT_SET_ANYWHERE", "message": "not set"}]
    assert (await (await client.get("/executions")).get_json())["items"] == []


async def test_problem_bodies_never_echo_a_secret(runtime: Runtime) -> None:
    """The API key and environment secrets in a request come back as `***` in problems."""
    previous = set_default_redactor(Redactor.from_environment({"GITHUB_TOKEN": "ghp_env_secret_1"}))
    try:
        client = create_app(runtime, api_key=KEY).test_client()
        headers = {"Authorization": f"Bearer {KEY}"}
        for secret in (KEY, "ghp_env_secret_1"):
            response = await client.get(f"/executions/{secret}", headers=headers)
            text = await response.get_data(as_text=True)
            assert response.status_code == 404
            assert secret not in text
            document = json.loads(text)
            assert document["detail"] == "no execution '***'"
            assert document["instance"] == "/executions/***"
    finally:
        set_default_redactor(previous)


# -- conditions ------------------------------------------------------------------------------

ROUTED = {
    "schema_version": "1.1",
    "name": "routed",
    "steps": [
        {"id": "classify", "agent": "echo", "input": {"label": "billing"}},
        {
            "id": "technical",
            "agent": "echo",
            "depends_on": ["classify"],
            "when": "steps.classify.output.label == 'technical'",
        },
        {
            "id": "answer",
            "agent": "echo",
            "depends_on": ["technical"],
            "input": "${steps.technical.output}",
        },
    ],
}


async def test_a_skip_carries_its_reason_in_the_document_and_on_the_socket(
    client: Client, runtime: Runtime
) -> None:
    """GET /executions/{id} gives each skipped step its reason; the socket's events carry it."""
    execution_id = await start(client, ROUTED)
    await finish(runtime, execution_id)
    detail = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert detail["status"] == "succeeded"
    steps = detail["steps"]
    assert steps["technical"]["status"] == "skipped"
    assert steps["technical"]["reason"] == (
        "when was false: steps.classify.output.label == 'technical'"
    )
    assert steps["answer"]["reason"] == "a step it reads was skipped: technical"
    assert steps["classify"]["reason"] is None
    async with client.websocket(f"/executions/{execution_id}/events") as socket:
        events, _ = await receive_all(socket)
    skipped = {e["step_id"]: e["data"] for e in events if e["type"] == "step.skipped"}
    assert skipped == {
        "technical": {"reason": steps["technical"]["reason"]},
        "answer": {"reason": steps["answer"]["reason"]},
    }


GATED = {
    "schema_version": "1.1",
    "name": "gated",
    "steps": [{"id": "g", "approval": {"prompt": "ok?"}}],
}


async def test_an_open_gate_shows_its_step_waiting_and_refused_answers_are_listed(
    client: Client, runtime: Runtime
) -> None:
    """steps.g is `waiting` while its gate is open; an answer refused is in refused_answers."""
    execution_id = await start(client, GATED)
    handle = runtime.get(execution_id)
    await handle.wait_blocked_on_gates()
    request = await runtime.journal.submit_request(
        execution_id, RequestKind.ANSWER, {"approve": True, "by": "ops"}, target="nope"
    )
    assert handle.gates is not None
    await handle.gates.deliver(request)
    detail = await (await client.get(f"/executions/{execution_id}")).get_json()
    assert detail["steps"]["g"]["status"] == "waiting"
    assert detail["gates"]["g"]["status"] == "open"
    assert detail["gates"]["g"]["expired"] is False
    (answer,) = detail["refused_answers"]
    assert answer["gate_id"] == "nope"
    assert answer["by"] == "ops"
    assert answer["detail"] == "no approval gate 'nope'"
    handle.cancel()
    await finish(runtime, execution_id)
