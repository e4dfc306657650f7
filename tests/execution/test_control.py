"""The control loop: a runtime acts on the cancel requests and answers its journal holds."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import trio
import trio.testing

from orchestr8 import ExecutionRecord, ExecutionStatus, Runtime, open_runtime
from orchestr8._errors import JournalError
from orchestr8._execution import _control
from orchestr8._execution._control import REQUEST_POLL_INTERVAL, ControlLoop
from orchestr8._execution._handle import ExecutionHandle
from orchestr8._journal._journal import Journal, open_journal
from orchestr8._journal._requests import ControlRequest, RequestKind

NAP = {
    "schema_version": "1.0",
    "name": "nap",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 1000}}],
}
GRACE = 10.0


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with open_runtime(cancel_grace=GRACE) as opened:
        yield opened


def cancel_body(reason: str | None = "stop it", *, force: bool = False) -> dict[str, Any]:
    return {"reason": reason, "force": force, "by": "tester@host"}


async def settled(runtime: Runtime, execution_id: str) -> list[ControlRequest]:
    return await runtime.journal.requests(execution_id)


async def test_a_cancel_request_cancels_with_its_reason_and_is_settled_applied(
    clock: trio.testing.MockClock, runtime: Runtime
) -> None:
    """A cancel in the journal ends the run `cancelled` with the request's reason, in the grace."""
    handle = await runtime.start(NAP)
    await trio.sleep(1)
    start = trio.current_time()
    await runtime.journal.submit_request(handle.execution_id, RequestKind.CANCEL, cancel_body())
    result = await handle.wait()
    assert result.status is ExecutionStatus.CANCELLED
    assert result.error == {"type": "Cancelled", "message": "stop it"}
    # The sleep ignores the cooperative phase: it is cancelled when the grace runs out.
    assert trio.current_time() - start == pytest.approx(GRACE, abs=1)
    events = await runtime.journal.events(handle.execution_id)
    assert events[-1].data["reason"] == "stop it"
    [request] = await settled(runtime, handle.execution_id)
    assert (request.outcome, request.detail) == ("applied", "cancelling")


async def test_a_forced_cancel_request_skips_the_grace(
    clock: trio.testing.MockClock, runtime: Runtime
) -> None:
    """`force`: the running steps are cancelled at once, not after the grace."""
    handle = await runtime.start(NAP)
    start = trio.current_time()
    await runtime.journal.submit_request(
        handle.execution_id, RequestKind.CANCEL, cancel_body(force=True)
    )
    assert (await handle.wait()).status is ExecutionStatus.CANCELLED
    assert trio.current_time() - start < 2 * REQUEST_POLL_INTERVAL
    [request] = await settled(runtime, handle.execution_id)
    assert (request.outcome, request.detail) == ("applied", "cancelled at once (forced)")


async def test_force_cuts_a_graceful_cancel_short(
    clock: trio.testing.MockClock, runtime: Runtime
) -> None:
    """A forced cancel while a graceful one waits out its grace ends the run at once."""
    handle = await runtime.start(NAP)
    await trio.sleep(1)
    assert handle.cancel("gently")
    await trio.sleep(10)
    assert not handle.done
    start = trio.current_time()
    assert handle.cancel("now", force=True)
    assert not handle.cancel("again", force=True)
    result = await handle.wait()
    assert trio.current_time() - start < 1
    assert result.error == {"type": "Cancelled", "message": "gently"}


async def test_a_cancel_without_a_reason_records_who_asked(
    clock: trio.testing.MockClock, runtime: Runtime
) -> None:
    """No reason: the recorded one names `by`; a second cancel is applied as already under way."""
    handle = await runtime.start(NAP)
    for _ in range(2):
        await runtime.journal.submit_request(
            handle.execution_id, RequestKind.CANCEL, cancel_body(None, force=True)
        )
    result = await handle.wait()
    assert result.error == {"type": "Cancelled", "message": "cancelled by tester@host"}
    details = [request.detail for request in await settled(runtime, handle.execution_id)]
    assert details == ["cancelled at once (forced)", "already being cancelled"]


async def test_an_answer_to_an_execution_without_approval_steps_is_refused(
    clock: trio.testing.MockClock, runtime: Runtime
) -> None:
    """No gate board: the answer is settled `refused`, naming the gate, and the run goes on."""
    handle = await runtime.start(NAP)
    await runtime.journal.submit_request(
        handle.execution_id,
        RequestKind.ANSWER,
        {"approve": True, "input": {}, "reason": None, "by": "tester"},
        target="review",
    )
    await trio.sleep(2 * REQUEST_POLL_INTERVAL)
    [request] = await settled(runtime, handle.execution_id)
    assert request.outcome == "refused"
    assert request.detail == (
        f"no approval step in execution {handle.execution_id}: it has no gate 'review' to answer"
    )
    assert not handle.done
    handle.cancel(force=True)


GATED = {
    "schema_version": "1.1",
    "name": "gated",
    "steps": [
        {"id": "review", "approval": {"prompt": "ship it?"}},
        {
            "id": "ship",
            "agent": "echo",
            "input": "${steps.review.output}",
            "depends_on": ["review"],
        },
    ],
}


async def test_an_answer_in_the_journal_goes_to_the_gate_board(
    clock: trio.testing.MockClock, runtime: Runtime
) -> None:
    """An answer another process recorded resolves the gate; the run goes on to its end."""
    handle = await runtime.start(GATED)
    await handle.wait_blocked_on_gates()
    await runtime.journal.submit_request(
        handle.execution_id,
        RequestKind.ANSWER,
        {"approve": True, "input": {}, "reason": None, "by": "tester"},
        target="review",
    )
    result = await handle.wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["ship"].output["approved"] is True
    [request] = await settled(runtime, handle.execution_id)
    assert request.outcome == "applied"


async def test_a_board_that_fails_on_an_answer_gets_it_refused_and_logged(
    clock: trio.testing.MockClock,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in acting on one request is logged, the request refused; the runtime goes on."""
    handle = await runtime.start(GATED)
    await handle.wait_blocked_on_gates()
    board = handle.gates
    assert board is not None

    async def failing(request: ControlRequest) -> None:
        raise RuntimeError("bug in the board")

    monkeypatch.setattr(board, "deliver", failing)
    await runtime.journal.submit_request(
        handle.execution_id,
        RequestKind.ANSWER,
        {"approve": True, "input": {}, "reason": None, "by": "tester"},
        target="review",
    )
    await trio.sleep(2 * REQUEST_POLL_INTERVAL)
    [request] = await settled(runtime, handle.execution_id)
    assert (request.outcome, request.detail) == (
        "refused",
        "the runtime failed to act on it (logged)",
    )
    assert "control request" in caplog.text
    handle.cancel(force=True)


async def test_an_idle_runtime_reads_no_requests(
    clock: trio.testing.MockClock, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no execution live the loop sleeps: the journal is not asked, however long it lasts."""
    reads: list[object] = []
    pending = runtime.journal.pending_requests

    async def counting(*args: Any, **kwargs: Any) -> list[ControlRequest]:
        reads.append(args)
        return await pending(*args, **kwargs)

    monkeypatch.setattr(runtime.journal, "pending_requests", counting)
    await trio.sleep(3600)
    assert reads == []
    handle = await runtime.start(NAP)
    await trio.sleep(10 * REQUEST_POLL_INTERVAL)
    assert 9 <= len(reads) <= 12
    handle.cancel(force=True)
    await handle.wait()
    seen = len(reads)
    await trio.sleep(3600)
    # One more read after the end: the run's leftovers are settled before its lock is released.
    assert len(reads) <= seen + 2


async def test_a_cancel_made_before_a_run_began_is_refused_by_it(
    clock: trio.testing.MockClock, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel its run never got to (it ended first) does not stop the next run: refused."""
    handle = await runtime.start(NAP)
    handle.cancel(force=True)
    await handle.wait()
    stale = await runtime.journal.submit_request(
        handle.execution_id, RequestKind.CANCEL, cancel_body()
    )
    launched = "2999-01-01T00:00:00.000Z"
    monkeypatch.setattr(_control, "utc_timestamp", lambda: launched)
    resumed = await runtime.resume(handle.execution_id)
    await trio.sleep(2 * REQUEST_POLL_INTERVAL)
    assert not resumed.done
    [request] = await settled(runtime, handle.execution_id)
    assert request.request_id == stale.request_id
    assert (request.outcome, request.detail) == (
        "refused",
        f"made before this run of execution {handle.execution_id} began ({launched}): the run "
        "it was meant for had ended",
    )
    resumed.cancel(force=True)
    await resumed.wait()
    await trio.sleep(2 * REQUEST_POLL_INTERVAL)


async def test_a_request_of_an_execution_no_longer_live_is_left_to_its_end(
    clock: trio.testing.MockClock,
) -> None:
    """A request whose execution left the runtime (or never ran here) is not settled by it."""
    async with open_journal(None) as journal:
        await journal.create_execution(ExecutionRecord("run-1", "nap", NAP))
        request = await journal.submit_request("run-1", RequestKind.CANCEL, cancel_body())
        for live in ({}, {"run-1": ExecutionHandle("run-1", None)}):
            await ControlLoop(journal, live).dispatch(request)
        assert (await journal.requests("run-1"))[0].outcome is None


async def test_a_request_of_a_run_that_just_finished_is_refused(
    clock: trio.testing.MockClock, runtime: Runtime
) -> None:
    """A finished run still in the runtime's map gets the request refused, naming its end."""
    handle = await runtime.start(NAP)
    handle.cancel(force=True)
    await handle.wait()
    request = await runtime.journal.submit_request(
        handle.execution_id, RequestKind.CANCEL, cancel_body()
    )
    await ControlLoop(runtime.journal, {handle.execution_id: handle}).dispatch(request)
    [settled_request] = await settled(runtime, handle.execution_id)
    assert (settled_request.outcome, settled_request.detail) == (
        "refused",
        f"execution {handle.execution_id} already cancelled",
    )


async def test_a_failing_journal_is_logged_once_and_polling_goes_on(
    clock: trio.testing.MockClock,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reads that fail are logged once per spell; the loop recovers when the journal does."""
    caplog.set_level(logging.WARNING, "orchestr8.runtime")
    pending = runtime.journal.pending_requests
    failing = True

    async def flaky(*args: Any, **kwargs: Any) -> list[ControlRequest]:
        if failing:
            raise JournalError("disk on fire")
        return await pending(*args, **kwargs)

    monkeypatch.setattr(runtime.journal, "pending_requests", flaky)
    handle = await runtime.start(NAP)
    await trio.sleep(5)
    assert caplog.text.count("cannot read or settle control requests: disk on fire") == 1
    failing = False
    await runtime.journal.submit_request(
        handle.execution_id, RequestKind.CANCEL, cancel_body(force=True)
    )
    assert (await handle.wait()).status is ExecutionStatus.CANCELLED


async def test_a_failing_settle_is_logged(
    clock: trio.testing.MockClock,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A settle that fails does not stop the loop or the cancel it reports."""
    caplog.set_level(logging.WARNING, "orchestr8.runtime")

    async def failing(*args: Any, **kwargs: Any) -> None:
        raise JournalError("disk on fire")

    monkeypatch.setattr(runtime.journal, "settle_request", failing)
    handle = await runtime.start(NAP)
    await runtime.journal.submit_request(
        handle.execution_id, RequestKind.CANCEL, cancel_body(force=True)
    )
    assert (await handle.wait()).status is ExecutionStatus.CANCELLED
    assert "cannot read or settle control requests: disk on fire" in caplog.text


async def test_the_loop_forgets_runs_that_left(
    clock: trio.testing.MockClock, runtime: Runtime
) -> None:
    """When an execution leaves while another runs, its launch time is dropped at the next poll."""
    first = await runtime.start(NAP)
    second = await runtime.start(NAP)
    first.cancel(force=True)
    await first.wait()
    await trio.sleep(2 * REQUEST_POLL_INTERVAL)
    assert list(runtime._control._launched_at) == [second.execution_id]
    second.cancel(force=True)


class SettleRecorder:
    """Stands in for the journal of a control loop: records what it settles, reads nothing."""

    def __init__(self) -> None:
        self.settled: list[tuple[int, str, str | None]] = []

    async def settle_request(self, request_id: int, outcome: str, detail: str | None) -> None:
        self.settled.append((request_id, outcome, detail))


async def test_a_cancel_taken_after_the_ending_event_is_refused_naming_the_end(
    clock: trio.testing.MockClock, runtime: Runtime
) -> None:
    """A cancel dispatched once the run wrote its ending (not yet done) is refused, not applied."""
    quick = {**NAP, "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 1}}]}
    recorder = SettleRecorder()
    async with runtime.bus.subscribe() as events:
        handle = await runtime.start(quick)
        async for event in events:
            if getattr(event, "type", None) == "execution.succeeded":
                break
        assert not handle.done
        request = ControlRequest(
            7, handle.execution_id, RequestKind.CANCEL, None, cancel_body(), "2999-01-01T00:00Z"
        )
        loop = ControlLoop(cast("Journal", recorder), {handle.execution_id: handle})
        await loop.dispatch(request)
    assert not handle.cancel("too late")
    assert (await handle.wait()).status is ExecutionStatus.SUCCEEDED
    assert recorder.settled == [
        (7, "refused", f"execution {handle.execution_id} already succeeded")
    ]
