"""`_requests`: control requests are recorded durably, answered once per gate, settled once."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest
import trio
import trio.testing

from orchestr8._errors import ExecutionNotFoundError, GateAlreadyAnsweredError, JournalError
from orchestr8._journal._journal import ExecutionRecord, Journal, open_journal
from orchestr8._journal._requests import ControlRequest, RequestKind, RequestOutcome


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    """A journal of each kind holding executions `a` and `b`."""
    path: Path | str | None = None if request.param == "memory" else tmp_path / "journal.db"
    if request.param == "postgresql":
        path = request.getfixturevalue("postgres_url")
    async with open_journal(path) as opened:
        await opened.create_execution(ExecutionRecord("a", "w", {}))
        await opened.create_execution(ExecutionRecord("b", "w", {}))
        yield opened


async def test_a_submitted_request_is_pending_until_settled(journal: Journal) -> None:
    """A cancel is stored with its body, listed as pending, and no longer once settled."""
    request = await journal.submit_request("a", "cancel", {"reason": "enough", "by": "me"})
    assert request.kind is RequestKind.CANCEL
    assert request.body == {"reason": "enough", "by": "me"}
    assert request.pending
    assert await journal.pending_requests(["a"]) == [request]
    await journal.settle_request(request.request_id, RequestOutcome.APPLIED, "cancelled it")
    assert await journal.pending_requests(["a"]) == []
    (settled,) = await journal.requests("a")
    assert (settled.outcome, settled.detail) == ("applied", "cancelled it")
    assert settled.settled_at is not None


async def test_settling_twice_keeps_the_first_outcome(journal: Journal) -> None:
    """A request is acted on once: a second settle changes nothing."""
    request = await journal.submit_request("a", RequestKind.CANCEL, {})
    await journal.settle_request(request.request_id, "refused", "already finished")
    await journal.settle_request(request.request_id, "applied")
    (settled,) = await journal.requests("a")
    assert (settled.outcome, settled.detail) == ("refused", "already finished")


async def test_only_the_first_answer_to_a_gate_is_recorded(journal: Journal) -> None:
    """A second answer to one gate is refused, naming who answered first; other gates are free."""
    first = await journal.submit_request(
        "a", "answer", {"approve": True, "by": "ann"}, target="review[2]"
    )
    with pytest.raises(GateAlreadyAnsweredError, match="answered already by ann") as caught:
        await journal.submit_request("a", "answer", {"approve": False}, target="review[2]")
    assert caught.value.existing == first
    await journal.submit_request("a", "answer", {"approve": False}, target="review[3]")
    await journal.submit_request("b", "answer", {"approve": False}, target="review[2]")
    assert [request.target for request in await journal.requests("a")] == [
        "review[2]",
        "review[3]",
    ]


async def test_a_refused_answer_leaves_the_gate_free_to_answer(journal: Journal) -> None:
    """An answer the owner refused (too late, no longer fits) does not block a later one."""
    first = await journal.submit_request("a", "answer", {"approve": True}, target="g")
    await journal.settle_request(first.request_id, "refused", "the gate had timed out")
    second = await journal.submit_request("a", "answer", {"approve": False}, target="g")
    await journal.settle_request(second.request_id, "applied")
    with pytest.raises(GateAlreadyAnsweredError) as caught:
        await journal.submit_request("a", "answer", {"approve": True}, target="g")
    assert caught.value.existing == (await journal.requests("a"))[1]


async def test_pending_requests_are_those_of_the_asked_executions_after_an_id(
    journal: Journal,
) -> None:
    """The owner's poll reads only its executions' requests, newer than the last it saw."""
    one = await journal.submit_request("a", "cancel", {})
    two = await journal.submit_request("b", "cancel", {})
    three = await journal.submit_request("a", "answer", {}, target="g")
    assert await journal.pending_requests(["a"]) == [one, three]
    assert await journal.pending_requests(["a", "b"], after=one.request_id) == [two, three]
    assert await journal.pending_requests([]) == []
    assert await journal.pending_requests(["\ud800"]) == []


async def test_requests_for_unknown_executions_are_refused(journal: Journal) -> None:
    """A request must name an execution the journal holds."""
    with pytest.raises(ExecutionNotFoundError):
        await journal.submit_request("nope", "cancel", {})
    with pytest.raises(ExecutionNotFoundError):
        await journal.submit_request("\ud800", "cancel", {})
    assert await journal.requests("\ud800") == []


async def test_malformed_requests_are_refused(journal: Journal) -> None:
    """An answer needs a gate, a body must be an object, and the kind must be known."""
    with pytest.raises(ValueError, match="gate id"):
        await journal.submit_request("a", "answer", {})
    with pytest.raises(ValueError, match="JSON object"):
        await journal.submit_request("a", "cancel", [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pause"):
        await journal.submit_request("a", "pause", {})


async def test_the_body_is_copied_as_stored(journal: Journal) -> None:
    """Changing the caller's dict afterwards does not change the recorded request."""
    body = {"input": {"amount": 3}}
    await journal.submit_request("a", "answer", body, target="g")
    body["input"]["amount"] = 4
    (stored,) = await journal.requests("a")
    assert stored.body == {"input": {"amount": 3}}
    assert stored.to_json()["body"] == {"input": {"amount": 3}}


async def test_wait_for_request_wakes_on_a_submit_in_this_process(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The owner's poll hears of a request submitted here at once, not at its next tick."""
    woke_at: list[float] = []
    async with open_journal() as journal:
        await journal.create_execution(ExecutionRecord("a", "w", {}))

        async def waiter() -> None:
            await journal.wait_for_request(100)
            woke_at.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(5)
            await journal.submit_request("a", "cancel", {})
    assert woke_at == [pytest.approx(5)]


async def test_wait_for_request_gives_up_after_its_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With no request it returns after `within` seconds."""
    async with open_journal() as journal:
        await journal.wait_for_request(2)
        assert trio.current_time() == pytest.approx(2)


async def test_another_process_request_is_seen_through_the_file(tmp_path: Path) -> None:
    """A request written by another connection (another process) is pending for the owner."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as owner, open_journal(path) as other:
        await owner.create_execution(ExecutionRecord("a", "w", {}))
        await owner.flush()
        sent = await other.submit_request("a", "cancel", {"reason": "from afar"})
        seen = await owner.pending_requests(["a"])
    assert [request.request_id for request in seen] == [sent.request_id]
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT count(*) FROM requests").fetchone() == (1,)


async def test_a_closed_journal_takes_no_request(tmp_path: Path) -> None:
    """After the block ends, control calls raise `JournalError` like every other call."""
    for path in (None, tmp_path / "journal.db"):
        async with open_journal(path) as journal:
            await journal.create_execution(ExecutionRecord("a", "w", {}))
        with pytest.raises(JournalError, match="closed"):
            await journal.submit_request("a", "cancel", {})


def test_a_control_request_reads_as_json() -> None:
    """`to_json` names every field, the kind as text."""
    request = ControlRequest(7, "a", RequestKind.ANSWER, "g", {"approve": True}, "t")
    assert request.to_json() == {
        "request_id": 7,
        "execution_id": "a",
        "kind": "answer",
        "target": "g",
        "body": {"approve": True},
        "created_at": "t",
        "outcome": None,
        "detail": None,
        "settled_at": None,
    }
