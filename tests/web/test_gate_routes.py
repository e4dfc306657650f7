"""The gate routes over a real server on loopback: list gates, answer one, problems, adoption."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio_websocket
from gate_scripts import AMOUNT_SCHEMA, append, gate_opened, gate_resolved, record_gated

from orchestr8 import Runtime, open_runtime
from orchestr8._journal._events import EventType
from orchestr8._web._serve import serve


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(journal=tmp_path / "journal.db", cancel_grace=0.2) as opened:
        yield opened


@pytest.fixture
async def url(runtime: Runtime) -> AsyncIterator[str]:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [base] = await nursery.start(partial(serve, runtime, port=0, shutdown_trigger=stop.wait))
        yield base
        stop.set()


async def post(url: str, path: str, body: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post(path, json=body)


async def get(url: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.get(path)


def problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """Check a problem response and return its document."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = response.json()
    assert document["type"] == f"urn:orchestr8:problem:{kind}"
    return document


async def test_gates_list_their_status_and_the_answers_not_yet_applied(
    runtime: Runtime, url: str
) -> None:
    """`GET .../gates`: each gate from replay, then the answers recorded but not applied."""
    await record_gated(
        runtime.journal,
        "e1",
        gate_opened("sign", AMOUNT_SCHEMA),
        gate_opened("review[0]"),
        gate_resolved("review[0]", by="bob@desk"),
    )
    accepted = await post(
        url, "/executions/e1/gates/sign", {"approve": True, "input": {"amount": 10}}
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "recorded"
    document = (await get(url, "/executions/e1/gates")).json()
    assert document["execution_id"] == "e1"
    assert [(gate["gate_id"], gate["status"]) for gate in document["gates"]] == [
        ("sign", "open"),
        ("review[0]", "approved"),
    ]
    assert document["gates"][0]["schema"] == AMOUNT_SCHEMA
    assert document["gates"][1]["answer"]["by"] == "bob@desk"
    [pending] = document["pending_answers"]
    assert (pending["gate_id"], pending["approve"], pending["by"]) == ("sign", True, "api")
    assert [gate["expired"] for gate in document["gates"]] == [False, False]
    assert document["refused_answers"] == []
    await runtime.journal.settle_request(pending["request_id"], "refused", "too late")
    document = (await get(url, "/executions/e1/gates")).json()
    [refused] = document["refused_answers"]
    assert (refused["gate_id"], refused["detail"]) == ("sign", "too late")
    problem(await get(url, "/executions/nope/gates"), 404, "execution-not-found")


async def test_an_answer_that_does_not_fit_is_422_with_every_path(
    runtime: Runtime, url: str
) -> None:
    """Schema errors and a rejection without a reason: 422, each problem at its JSON path."""
    await record_gated(runtime.journal, "e1", gate_opened("sign", AMOUNT_SCHEMA))
    document = problem(
        await post(url, "/executions/e1/gates/sign", {"approve": True, "input": {"amount": "5"}}),
        422,
        "invalid-answer",
    )
    assert document["errors"] == [
        {"path": "$.input.amount", "message": "'5' is not of type 'integer'"}
    ]
    document = problem(
        await post(url, "/executions/e1/gates/sign", {"approve": False, "color": 1}),
        422,
        "invalid-answer",
    )
    assert [error["path"] for error in document["errors"]] == ["$.color", "$.reason"]
    problem(await post(url, "/executions/e1/gates/sign", [1]), 422, "invalid-answer")
    async with httpx.AsyncClient(base_url=url) as client:
        null = await client.post(
            "/executions/e1/gates/sign",
            content=b"null",
            headers={"Content-Type": "application/json"},
        )
    assert problem(null, 422, "invalid-answer")["errors"] == [
        {"path": "$", "message": "expected an object, got null"}
    ]
    assert await runtime.journal.requests("e1") == []


async def test_gate_ids_with_brackets_and_hashes_work_percent_encoded(
    runtime: Runtime, url: str
) -> None:
    """`review%5B1%5D` is the map item's gate `review[1]`; `%23` is a loop iteration's `#`."""
    await record_gated(runtime.journal, "e1")
    held = await post(url, "/executions/e1/gates/review%5B1%5D", {"approve": True})
    assert held.status_code == 202, held.text
    assert (held.json()["gate_id"], held.json()["held"]) == ("review[1]", True)
    document = problem(
        await post(url, "/executions/e1/gates/sign%232", {"approve": True}), 404, "gate-not-found"
    )
    assert "no gate 'sign#2'" in document["detail"]
    assert document["instance"] == "/executions/e1/gates/sign%232"
    document = problem(
        await post(url, "/executions/e1/gates/draft", {"approve": True}), 404, "gate-not-found"
    )
    assert "its approval steps: sign, review" in document["detail"]
    problem(
        await post(url, "/executions/nope/gates/x", {"approve": True}), 404, "execution-not-found"
    )


async def test_a_second_answer_or_a_resolved_gate_is_409_naming_who(
    runtime: Runtime, url: str
) -> None:
    """Answered already: who and when; resolved: by whom; ended: the execution's status."""
    await record_gated(runtime.journal, "e1", gate_opened("sign"), gate_opened("review[0]"))
    body = {"approve": False, "reason": "not now", "by": "ada@lab"}
    assert (await post(url, "/executions/e1/gates/sign", body)).status_code == 202
    document = problem(await post(url, "/executions/e1/gates/sign", body), 409, "gate-answered")
    assert "rejected by ada@lab at" in document["detail"]
    await append(runtime.journal, "e1", gate_resolved("review[0]", by="bob@desk"))
    document = problem(
        await post(url, "/executions/e1/gates/review%5B0%5D", {"approve": True}),
        409,
        "gate-answered",
    )
    assert "answered by bob@desk" in document["detail"]
    await append(runtime.journal, "e1", (EventType.EXECUTION_CANCELLED, None, {"reason": "x"}))
    document = problem(
        await post(url, "/executions/e1/gates/review%5B1%5D", {"approve": True}),
        409,
        "gate-answered",
    )
    assert document["detail"] == "execution e1 already cancelled; its gates take no answers"


async def test_the_websocket_passes_gate_events_through(runtime: Runtime, url: str) -> None:
    """`gate.opened` and `gate.resolved` are events like any other on the event socket."""
    await record_gated(
        runtime.journal,
        "e1",
        gate_opened("sign", AMOUNT_SCHEMA),
        gate_resolved("sign"),
        (EventType.EXECUTION_SUCCEEDED, None, {"output": None}),
    )
    socket_url = url.replace("http://", "ws://") + "/executions/e1/events"
    received: list[dict[str, Any]] = []
    async with trio_websocket.open_websocket_url(socket_url) as socket:
        while not received or received[-1]["type"] != "execution.succeeded":
            received.append(json.loads(await socket.get_message()))
    assert [event["type"] for event in received][1:3] == ["gate.opened", "gate.resolved"]
    assert received[1]["data"]["schema"] == AMOUNT_SCHEMA


async def test_gate_responses_match_their_documented_schemas(runtime: Runtime, url: str) -> None:
    """The list and the outcome validate against `/openapi.json`'s GateList and AnswerOutcome."""
    from jsonschema import Draft202012Validator

    from orchestr8._web._openapi import openapi_document

    components = openapi_document(auth=False)["components"]

    def check(document: Any, name: str) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": components}
        Draft202012Validator(schema).validate(document)

    await record_gated(runtime.journal, "e1", gate_opened("sign"), gate_resolved("sign"))
    await append(runtime.journal, "e1", gate_opened("review[0]", AMOUNT_SCHEMA))
    held = await post(url, "/executions/e1/gates/review%5B1%5D", {"approve": True})
    check(held.json(), "AnswerOutcome")
    check((await get(url, "/executions/e1/gates")).json(), "GateList")


def test_an_answer_to_an_adopted_execution_reports_what_its_run_did() -> None:
    """Applied: 200 with the gate; not yet: recorded, applied when the gate opens; refused: 409."""
    from orchestr8._execution._answers import AnswerOutcome
    from orchestr8._journal._replay import GateState
    from orchestr8._journal._requests import ControlRequest, RequestKind
    from orchestr8._web._gate_routes import adopted_outcome
    from orchestr8._web._problems import ProblemError

    request = ControlRequest(7, "e1", RequestKind.ANSWER, "sign", {"approve": True}, "t")
    outcome = AnswerOutcome("e1", "sign", request, "recorded", "nobody", False, None)
    gate = GateState("sign", status="approved")
    applied = adopted_outcome(outcome, attrs.evolve(request, outcome="applied"), gate)
    assert (applied["status"], applied["gate"]["status"]) == ("applied", "approved")
    pending = adopted_outcome(outcome, request, None)
    assert "status" not in pending
    assert pending["message"].endswith("applies it when the gate opens")
    refused = attrs.evolve(request, outcome="refused", detail="its deadline passed")
    with pytest.raises(ProblemError, match="refused the answer: its deadline passed") as raised:
        adopted_outcome(outcome, refused, None)
    assert raised.value.status == 409
