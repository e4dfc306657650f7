"""The emitter: numbering, trio-clock `elapsed`, journal before bus, order under backpressure."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
import trio
import trio.testing

from orchestr8._errors import JournalError
from orchestr8._execution._emitter import Emitter
from orchestr8._journal._events import Event, EventFactory
from orchestr8._journal._journal import ExecutionRecord, Journal, open_journal
from orchestr8._observability._redaction import default_redactor
from orchestr8._supervision._bus import EventBus


class FakeJournal:
    """Records appends; `full` makes `append_nowait` refuse and `append` wait for room."""

    lag_limit = None

    def __init__(self) -> None:
        self.written: list[Event] = []
        self.full = False
        self.refusal: JournalError | None = None
        self._room = trio.Event()

    def set_full(self, full: bool) -> None:
        self.full = full
        if full:
            self._room = trio.Event()
        else:
            self._room.set()

    def append_nowait(self, event: Event) -> None:
        if self.refusal is not None:
            raise self.refusal
        if self.full:
            raise trio.WouldBlock
        self.written.append(event)

    async def append(self, event: Event) -> None:
        while self.full:
            await self._room.wait()
        self.written.append(event)

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()


class RecordingBus:
    """A bus that checks every published event is already in the journal."""

    has_subscribers = True

    def __init__(self, journal: FakeJournal) -> None:
        self.journal = journal
        self.published: list[Event] = []

    def publish_nowait(self, event: Event) -> None:
        assert event in self.journal.written, "published before it was journaled"
        self.published.append(event)


def fake_emitter(execution_id: str = "e1") -> tuple[Emitter, FakeJournal, RecordingBus]:
    """An emitter over a fake journal and a bus that checks journal-before-bus."""
    journal = FakeJournal()
    bus = RecordingBus(journal)
    emitter = Emitter(EventFactory(execution_id), cast(Journal, journal), cast(EventBus, bus))
    return emitter, journal, bus


@asynccontextmanager
async def real_journal(queue_size: int = 1024) -> AsyncIterator[Journal]:
    """A memory journal holding one recorded execution, `e1`."""
    async with open_journal(None, queue_size=queue_size) as journal:
        await journal.create_execution(
            ExecutionRecord(execution_id="e1", workflow_name="w", workflow={})
        )
        yield journal


async def test_events_are_numbered_from_one_and_journaled_in_order() -> None:
    """`emit` stamps seq 1, 2, 3 with type, step, attempt and data, and the journal keeps them."""
    async with real_journal() as journal:
        emitter = Emitter(EventFactory("e1"), journal, EventBus())
        first = await emitter.emit("execution.started", data={"workflow": "w"})
        second = emitter.emit_nowait("attempt.started", step_id="a", attempt=1)
        third = await emitter.emit("step.succeeded", step_id="a", attempt=1, data={"output": 2})
        await emitter.flush()
        stored = await journal.events("e1")
    assert [e.seq for e in (first, second, third)] == [1, 2, 3]
    assert emitter.execution_id == "e1"
    assert stored == [first, second, third]
    assert (third.step_id, third.attempt, third.data) == ("a", 1, {"output": 2})


async def test_elapsed_is_measured_on_the_trio_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`elapsed` is virtual seconds since the factory was made."""
    emitter, journal, _ = fake_emitter()
    await trio.sleep(1.5)
    await emitter.emit("a")
    await trio.sleep(2.25)
    emitter.emit_nowait("b")
    assert [e.elapsed for e in journal.written] == [1.5, 3.75]


async def test_a_resumed_factory_carries_seq_and_elapsed_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With `next_seq` and `elapsed_offset`, numbering and time continue the earlier run."""
    async with real_journal() as journal:
        before = Emitter(EventFactory("e1"), journal, EventBus())
        await before.emit("execution.started")
        await trio.sleep(4)
        last = await before.emit("execution.failed")
        await trio.sleep(100)  # the process was down this long: not execution time
        after = Emitter(
            EventFactory("e1", next_seq=last.seq + 1, elapsed_offset=last.elapsed),
            journal,
            EventBus(),
        )
        resumed = await after.emit("execution.resumed")
        await trio.sleep(1)
        await after.emit("execution.succeeded")
        await after.flush()
        stored = await journal.events("e1")
    assert [(e.seq, e.elapsed) for e in stored] == [(1, 0.0), (2, 4.0), (3, 4.0), (4, 5.0)]
    assert resumed.seq == 3


async def test_the_journal_gets_every_event_before_the_bus() -> None:
    """Each event is published only once it is in the journal, in the same order."""
    emitter, journal, bus = fake_emitter()
    await emitter.emit("one")
    emitter.emit_nowait("two")
    await emitter.emit("three")
    assert [e.type for e in journal.written] == ["one", "two", "three"]
    assert bus.published == journal.written


async def test_events_emitted_into_a_full_journal_wait_in_order_for_the_next_emit() -> None:
    """Events refused by a full journal wait, in seq order, for the next `emit`."""
    emitter, journal, bus = fake_emitter()
    journal.set_full(True)
    emitter.emit_nowait("queued-1")
    emitter.emit_nowait("queued-2")
    assert journal.written == []
    assert bus.published == []
    journal.set_full(False)
    emitter.emit_nowait("after-room")  # still behind the queued ones
    assert journal.written == []
    await emitter.emit("next")
    assert [(e.seq, e.type) for e in journal.written] == [
        (1, "queued-1"),
        (2, "queued-2"),
        (3, "after-room"),
        (4, "next"),
    ]
    assert bus.published == journal.written


async def test_emit_waits_while_the_journal_is_full(autojump_clock: trio.testing.MockClock) -> None:
    """`emit` applies backpressure: it returns only once the journal took its event."""
    emitter, journal, _ = fake_emitter()
    journal.set_full(True)
    returned_at: list[float] = []

    async def emit_one() -> None:
        await emitter.emit("slow")
        returned_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(emit_one)
        await trio.sleep(3)
        assert returned_at == []
        journal.set_full(False)
    assert returned_at == [3.0]
    assert [e.type for e in journal.written] == ["slow"]


async def test_emitters_behind_one_drain_return_together_once_it_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Emitters waiting behind a drain all return when it empties the outbox, their events in it."""
    emitter, journal, bus = fake_emitter()
    journal.set_full(True)
    returned_at: list[tuple[str, float]] = []

    async def emit_one(name: str) -> None:
        await emitter.emit(name)
        returned_at.append((name, trio.current_time()))

    async with trio.open_nursery() as nursery:
        for name in ("first", "second", "third"):
            nursery.start_soon(emit_one, name)
            await trio.sleep(1)
        journal.set_full(False)
    assert sorted(returned_at) == [("first", 3.0), ("second", 3.0), ("third", 3.0)]
    assert [e.type for e in journal.written] == ["first", "second", "third"]
    assert bus.published == journal.written


async def test_a_cancelled_drain_leaves_the_outbox_to_an_emitter_waiting_behind_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When the draining task is cancelled, a waiting emitter drains the rest, still in order."""
    emitter, journal, bus = fake_emitter()
    journal.set_full(True)
    returned: list[str] = []

    async def drain_until_cancelled(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await emitter.emit("drains-first")
        returned.append("cancelled")

    async def wait_behind() -> None:
        await emitter.emit("waits")
        returned.append("waits")

    async with trio.open_nursery() as nursery:
        drainer = await nursery.start(drain_until_cancelled)
        nursery.start_soon(wait_behind)
        await trio.sleep(1)
        drainer.cancel()
        await trio.sleep(1)
        assert returned == ["cancelled"]
        journal.set_full(False)
    assert returned == ["cancelled", "waits"]
    assert [e.type for e in journal.written] == ["drains-first", "waits"]
    assert bus.published == journal.written


async def test_a_journal_refusing_the_outbox_fails_the_emitter_and_drops_what_waits() -> None:
    """An outbox the journal refuses while draining fails the emitter: nothing is published."""
    emitter, journal, bus = fake_emitter()
    journal.set_full(True)
    emitter.emit_nowait("waits-in-the-outbox")
    journal.refusal = JournalError("the disk is full")
    await emitter.emit("next")
    assert emitter.failure is not None
    assert journal.written == []
    assert bus.published == []
    with pytest.raises(JournalError):
        await emitter.flush()


async def test_concurrent_emitters_under_backpressure_journal_each_event_once_in_order() -> None:
    """Many tasks emitting into a one-slot journal queue write each seq once, in order."""
    async with real_journal(queue_size=1) as journal:
        emitter = Emitter(EventFactory("e1"), journal, EventBus())

        async def step(name: str) -> None:
            for index in range(5):
                emitter.emit_nowait("attempt.started", step_id=name, attempt=index + 1)
                await emitter.emit("step.progress", step_id=name, data={"i": index})

        async with trio.open_nursery() as nursery:
            for number in range(20):
                nursery.start_soon(step, f"s{number}")
        await emitter.flush()
        assert not journal.statistics().failed
        stored = await journal.events("e1")
    assert [e.seq for e in stored] == list(range(1, 201))


async def test_a_cancelled_emit_leaves_its_event_for_the_next_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancelled `emit` keeps its event for the next one, so seq stays gap-free."""
    emitter, journal, bus = fake_emitter()
    journal.set_full(True)
    with trio.move_on_after(1) as scope:
        await emitter.emit("cancelled-while-waiting")
    assert scope.cancelled_caught
    assert journal.written == []
    journal.set_full(False)
    await emitter.emit("later")
    assert [(e.seq, e.type) for e in journal.written] == [
        (1, "cancelled-while-waiting"),
        (2, "later"),
    ]
    assert bus.published == journal.written


async def test_flush_commits_everything_emitted_so_far() -> None:
    """After `flush`, the journal's readers see every event, the queued ones included."""
    async with real_journal(queue_size=1) as journal:
        emitter = Emitter(EventFactory("e1"), journal, EventBus())
        for index in range(5):
            emitter.emit_nowait("step.progress", step_id="a", data={"i": index})
        await emitter.flush()
        stored = await journal.events("e1")
    assert [e.data["i"] for e in stored] == [0, 1, 2, 3, 4]


async def test_a_full_lossless_view_does_not_hold_up_emit() -> None:
    """The journal already has the event, so a full lossless subscriber never blocks `emit`."""
    bus = EventBus()
    async with real_journal() as journal, bus.subscribe(buffer=1, lossless=True) as view:
        emitter = Emitter(EventFactory("e1"), journal, bus)
        with trio.fail_after(1):
            for index in range(3):
                await emitter.emit("step.progress", data={"i": index})
        await emitter.flush()
        assert len(await journal.events("e1")) == 3
        assert view.receive_nowait().data == {"i": 0}


async def test_views_see_the_events_in_order_when_they_listen() -> None:
    """A lossy subscriber receives the same events, in the same order, as the journal."""
    bus = EventBus()
    async with real_journal() as journal, bus.subscribe(buffer=100) as view:
        emitter = Emitter(EventFactory("e1"), journal, bus)
        await emitter.emit("a")
        emitter.emit_nowait("b")
        await emitter.emit("c")
        await emitter.flush()
        seen = [view.receive_nowait() for _ in range(3)]
        assert seen == await journal.events("e1")
        with pytest.raises(trio.WouldBlock):
            view.receive_nowait()


def test_emitting_needs_no_subscribers() -> None:
    """Without subscribers nothing is published, and events still reach the journal."""

    class SilentBus:
        has_subscribers = False

        def publish_nowait(self, event: Any) -> None:
            raise AssertionError("published with no subscribers")

    async def main() -> list[Event]:
        journal = FakeJournal()
        emitter = Emitter(EventFactory("e1"), cast(Journal, journal), cast(EventBus, SilentBus()))
        await emitter.emit("a")
        emitter.emit_nowait("b")
        return journal.written

    assert [e.type for e in trio.run(main)] == ["a", "b"]


GHOST = Event("ghost", 1, "2025-01-01T00:00:00.000Z", 0.0, "step.progress", None, None, {})
"""An event of an execution the journal never recorded: appending it fails the journal."""


async def test_a_failed_journal_stops_the_emitter_without_raising() -> None:
    """Once the journal fails, events are dropped unseen, `on_failure` runs once, flush raises."""
    failures: list[JournalError] = []
    seen: list[Event] = []

    async def scenario() -> None:
        bus = EventBus()
        async with real_journal() as journal, bus.subscribe(buffer=16) as view:
            emitter = Emitter(EventFactory("e1"), journal, bus)
            emitter.on_failure = failures.append
            stop_watching = emitter.watch_journal()
            await emitter.emit("step.progress", data={"i": 0})
            await journal.append(GHOST)
            with pytest.raises(JournalError):
                await journal.flush()
            assert emitter.failure is not None
            assert failures == [emitter.failure]
            await emitter.emit("step.progress", data={"i": 1})
            emitter.emit_nowait("step.progress", data={"i": 2})
            with pytest.raises(JournalError, match="no such execution"):
                await emitter.flush()
            stop_watching()
            assert [event.data for event in await journal.events("e1")] == [{"i": 0}]
            with contextlib.suppress(trio.WouldBlock):
                while True:
                    seen.append(view.receive_nowait())

    with pytest.raises(JournalError, match="no such execution"):
        await scenario()
    assert len(failures) == 1
    assert [event.data for event in seen] == [{"i": 0}]


async def test_an_emitter_that_does_not_watch_learns_of_the_failure_at_its_next_event() -> None:
    """Without `watch_journal`, the next emit meets the failure: it is recorded, not raised."""
    failures: list[JournalError] = []

    async def scenario() -> None:
        async with real_journal() as journal:
            await journal.append(GHOST)
            with pytest.raises(JournalError):
                await journal.flush()
            emitter = Emitter(EventFactory("e1"), journal, EventBus())
            emitter.on_failure = failures.append
            event = emitter.emit_nowait("step.progress")
            assert event.seq == 1
            assert emitter.failure is failures[0]

    with pytest.raises(JournalError, match="no such execution"):
        await scenario()
    assert len(failures) == 1


async def test_a_journal_failing_while_the_outbox_drains_ends_the_drain_quietly() -> None:
    """A drain waiting on a full queue when the journal fails returns; it pops nothing more."""
    failures: list[JournalError] = []

    async def scenario() -> None:
        async with real_journal(queue_size=1) as journal:
            emitter = Emitter(EventFactory("e1"), journal, EventBus())
            emitter.on_failure = failures.append
            stop_watching = emitter.watch_journal()
            journal.append_nowait(GHOST)
            emitter.emit_nowait("step.progress", data={"i": 0})
            await emitter.emit("step.progress", data={"i": 1})
            stop_watching()
            assert emitter.failure is not None
            assert await journal.events("e1") == []

    with pytest.raises(JournalError, match="no such execution"):
        await scenario()
    assert len(failures) == 1


# -- redaction ------------------------------------------------------------------------------------


async def test_a_step_output_that_redaction_changed_is_marked_output_redacted() -> None:
    """Only a `step.succeeded` whose output lost a secret says `output_redacted`; others stay."""
    emitter, journal, _ = fake_emitter()
    with default_redactor().lease(["value-of-a-secret-1"]):
        secret = emitter.emit_nowait(
            "step.succeeded", step_id="a", data={"output": {"k": "value-of-a-secret-1"}}
        )
        keyed = emitter.emit_nowait(
            "step.succeeded", step_id="b", data={"output": {"api_key": "not-leased-1"}}
        )
        plain = emitter.emit_nowait("step.succeeded", step_id="c", data={"output": {"k": 1}})
        progress = emitter.emit_nowait(
            "step.progress", step_id="a", data={"note": "value-of-a-secret-1"}
        )
    assert secret.data == {"output": {"k": "***"}, "output_redacted": True}
    assert keyed.data == {"output": {"api_key": "***"}, "output_redacted": True}
    assert plain.data == {"output": {"k": 1}}
    assert progress.data == {"note": "***"}
    assert journal.written == [secret, keyed, plain, progress]
